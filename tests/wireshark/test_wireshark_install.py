"""`pcapca wireshark install|uninstall|--print-paths|--lua-path`, into a
temporary HOME, where `tshark -G folders` says Wireshark looks."""
import fnmatch
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.tshark


def wireshark(home, *args):
    env = dict(os.environ, HOME=str(home), PYTHONPATH=str(ROOT))
    env.pop("XDG_CONFIG_HOME", None)
    return subprocess.run([sys.executable, "-m", "pcapca", "wireshark", *args], env=env,
                          capture_output=True, text=True, cwd=str(ROOT), timeout=120)


def folders(tshark, home):
    env = dict(os.environ, HOME=str(home))
    env.pop("XDG_CONFIG_HOME", None)
    out = subprocess.run([tshark, "-G", "folders"], env=env, capture_output=True,
                         text=True).stdout
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


def everything(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_install_writes_where_tshark_looks_and_uninstall_removes_it(tshark, tmp_path):
    f = folders(tshark, tmp_path)
    lua = os.path.join(f["Personal Lua Plugins"].strip(), "pcapca.lua")
    config = f["Personal configuration"].strip()
    extcap = os.path.join(config, "extcap", "pcapca-extcap")
    prefs = os.path.join(config, "profiles", "pcapca", "preferences")
    colors = os.path.join(config, "profiles", "pcapca", "colorfilters")
    assert wireshark(tmp_path, "--print-paths").stdout.splitlines() == [
        f"plugin       {lua}  (absent)", f"extcap       {extcap}  (absent)",
        f"preferences  {prefs}  (absent)", f"colorfilters {colors}  (absent)"]
    res = wireshark(tmp_path, "install", "--profile")
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout.splitlines() == [f"wrote {lua}", f"wrote {extcap}", f"wrote {prefs}",
                                       f"wrote {colors}", "restart Wireshark (or reload Lua "
                                       "plugins: Ctrl+Shift+L) to use them"]
    assert os.access(extcap, os.X_OK)
    assert "installed" in wireshark(tmp_path, "--print-paths").stdout.splitlines()[3]
    # the profile's columns, with the installed plugin's fields, as tshark -C shows them
    annotated = tmp_path / "basic.pcapng"
    subprocess.run([sys.executable, "-m", "pcapca", "annotate", "-q",
                    str(ROOT / "fixtures" / "basic.pcap"), str(annotated)], check=True,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    env = dict(os.environ, HOME=str(tmp_path))
    env.pop("XDG_CONFIG_HOME", None)
    rows = subprocess.run([tshark, "-C", "pcapca", "-r", str(annotated), "-Y",
                           "frame.number == 11", "-T", "fields", "-e", "_ws.col.PV",
                           "-e", "_ws.col.CA command", "-e", "_ws.col.Latency"], env=env,
                          capture_output=True, text=True).stdout
    assert rows == "FIX:dbl,FIX:dbl\tAccessRightsResponse,CreateChanResponse\t0.000621\n"
    res = wireshark(tmp_path, "uninstall")
    assert res.stdout.splitlines() == [f"removed {lua}", f"removed {extcap}",
                                       f"removed {prefs}", f"removed {colors}"]
    assert not os.path.exists(os.path.dirname(prefs))
    assert not any("pcapca" in p for p in everything(tmp_path)
                   if not p.startswith("basic.pcapng"))
    # someone's own file of the same name is neither replaced nor removed
    with open(lua, "w") as mine:
        mine.write("-- my own pcapca.lua\n")
    res = wireshark(tmp_path, "install")
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == (f"pcapca: error: {lua} exists and was not written by pcapca: move it "
                          f"away first (nothing was installed)\n")
    assert not os.path.exists(extcap)
    assert wireshark(tmp_path, "uninstall").stdout == "nothing of pcapca's was installed\n"
    assert open(lua).read() == "-- my own pcapca.lua\n"


def test_lua_path_and_usage():
    res = wireshark(ROOT, "--lua-path")
    assert res.stdout == str(ROOT / "pcapca" / "wireshark" / "pcapca.lua") + "\n"
    res = wireshark(ROOT)
    assert (res.returncode, res.stderr) == (
        2, "pcapca: error: give one of install, uninstall, --print-paths, --lua-path\n")


def test_the_plugin_is_package_data():
    """(A wheel holds pcapca/wireshark/ and its pcapca.lua: install reads it from there.)"""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert any(fnmatch.fnmatch("pcapca.wireshark", pattern)
               for pattern in config["packages"]["find"]["include"])
    assert config["package-data"]["pcapca.wireshark"] == ["pcapca.lua"]
