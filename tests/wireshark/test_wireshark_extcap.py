"""The extcap program (pcapca/wireshark/extcap.py): its answers to Wireshark,
tshark listing and capturing from it, its errors, and stopping it."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.tshark

EXTCAP = ROOT / "pcapca" / "wireshark" / "extcap.py"
HERE = Path(__file__).resolve().parent


def extcap(*args, env=None):
    code = ("import importlib.util as u, sys; s = u.spec_from_file_location('x', sys.argv[1]); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); sys.exit(m.main(sys.argv[2:]))")
    return subprocess.run([sys.executable, "-c", code, str(EXTCAP), *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_extcap_interfaces():
    res = extcap("--extcap-interfaces")
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout == ("extcap {version=1}{help=https://github.com/pcapca}\n"
                          "interface {value=pcapca}{display=Channel Access (pcapca)}\n")


def test_extcap_dlts():
    res = extcap("--extcap-dlts", "--extcap-interface", "pcapca")
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout == ("dlt {number=1}{name=EN10MB}{display=Ethernet (or the link type of "
                          "the captured interface)}\n")


def test_extcap_config_lists_the_network_interfaces():
    res = extcap("--extcap-config", "--extcap-interface", "pcapca")
    assert (res.returncode, res.stderr) == (0, "")
    names = ["any"] + sorted(os.listdir("/sys/class/net"))
    assert res.stdout.splitlines() == [
        "arg {number=0}{call=--iface}{display=Network interface}{type=selector}"
        "{tooltip=The interface dumpcap captures on (any: all of them)}",
        *(f"value {{arg=0}}{{value={n}}}{{display={n}}}" + ("{default=true}" if n == "any"
                                                           else "") for n in names),
        "arg {number=1}{call=--pv}{display=PV filter}{type=string}{tooltip=Only packets with "
        "messages of PVs matching this glob or re:REGEX (as pcapca --pv); empty: every packet}",
        "arg {number=2}{call=--server-port}{display=Other CA server ports}{type=string}"
        "{tooltip=Comma-separated UDP/TCP ports besides 5064 (EPICS_CA_SERVER_PORT of your "
        "servers)}{validation=^[0-9, ]*$}"]


def test_another_interface_is_refused():
    res = extcap("--extcap-dlts", "--extcap-interface", "eth0")
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == "pcapca: unknown extcap interface 'eth0' (this program has 'pcapca')\n"


def test_unknown_network_interface_is_one_line(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    res = extcap("--capture", "--extcap-interface", "pcapca", "--fifo", str(tmp_path / "fifo"),
                 "--iface", "nosuch0")
    names = ", ".join(["any"] + sorted(os.listdir("/sys/class/net")))
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == f"pcapca: there is no network interface 'nosuch0' (there are: {names})\n"


def test_no_dumpcap_nor_tcpdump_is_one_line(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    res = extcap("--capture", "--extcap-interface", "pcapca", "--fifo", str(tmp_path / "fifo"),
                 "--iface", "lo", env=dict(os.environ, PATH=str(tmp_path)))
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == ("pcapca: neither dumpcap nor tcpdump was found on PATH: install "
                          "Wireshark's dumpcap (Debian: wireshark-common)\n")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv")
                    or not os.path.exists("/usr/bin/python3"),
                    reason="needs root to run the extcap as an unprivileged user")
def test_no_permission_to_capture_is_one_line(tshark):
    tmp_path = Path(tempfile.mkdtemp(prefix="pcapca-nobody-"))   # (nobody reaches it)
    os.chmod(tmp_path, 0o777)
    os.mkfifo(tmp_path / "fifo")
    os.chmod(tmp_path / "fifo", 0o666)
    reader = subprocess.Popen(["cat", str(tmp_path / "fifo")], stdout=subprocess.DEVNULL)
    # (the system's python: a virtual environment's may live where nobody may go)
    res = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                          "/usr/bin/python3", "-c",
                          "import importlib.util as u, sys; s = u.spec_from_file_location('x', "
                          "sys.argv[1]); m = u.module_from_spec(s); s.loader.exec_module(m); "
                          "sys.exit(m.main(sys.argv[2:]))", str(EXTCAP), "--capture",
                          "--extcap-interface", "pcapca", "--fifo", str(tmp_path / "fifo"),
                          "--iface", "lo"], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    reader.wait(timeout=30)
    shutil.rmtree(tmp_path)
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == ('pcapca: dumpcap: You do not have permission to capture on device '
                          '"lo". (socket: Operation not permitted)\n')


def install_into(home):
    env = dict(os.environ, HOME=str(home))
    env.pop("XDG_CONFIG_HOME", None)
    subprocess.run([sys.executable, "-m", "pcapca", "wireshark", "install"], env=env,
                   check=True, capture_output=True, cwd=str(ROOT))
    return env


def test_tshark_lists_the_installed_interface(tshark, tmp_path):
    env = install_into(tmp_path)
    out = subprocess.run([tshark, "-D"], env=env, capture_output=True, text=True).stdout
    assert [line.split(". ", 1)[1] for line in out.splitlines() if "pcapca" in line] == [
        "pcapca (Channel Access (pcapca))"]
    # and the unknown interface through tshark: Wireshark's message is ours
    res = subprocess.run([tshark, "-i", "pcapca", "-o", "extcap.pcapca.iface:nosuch0",
                          "-a", "duration:3", "-w", str(tmp_path / "x.pcapng")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert "pcapca: there is no network interface 'nosuch0'" in res.stderr
    assert res.returncode != 0


def test_live_capture_through_tshark_is_annotated_and_stops_cleanly(tshark, tmp_path):
    """In new network and PID namespaces: an IOC and a client on 127.0.0.1,
    tshark capturing from the pcapca interface (live_capture.py)."""
    probe = subprocess.run(["unshare", "-rnpm", "--fork", "--mount-proc", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make namespaces here: {probe.stderr.decode().strip()}")
    install_into(tmp_path)
    out = tmp_path / "live.pcapng"
    res = subprocess.run(["unshare", "-rnpm", "--fork", "--mount-proc", sys.executable,
                          str(HERE / "live_capture.py"), str(tmp_path), str(out), "10"],
                         capture_output=True, text=True, timeout=180,
                         env=dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep
                                  + os.environ["PATH"]))
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["get"] == "LIVE:dbl                                  [3.25]\n" \
                            "LIVE:str                                  [hello]\n"
    assert result["tshark_status"] == 0 and result["left_after_tshark"] == []
    assert result["signal_head"] == "0a0d0d0a"              # a pcapng came through the fifo
    running = result["running_before_signal"]        # (the extcap and its two children)
    assert len(running) == 3, running
    assert sum("pcapca-extcap --capture" in cmd for cmd in running) == 1, running
    assert sum(cmd.split()[0].endswith("dumpcap") for cmd in running) == 1, running
    assert sum(cmd.endswith("-m pcapca annotate - - --quiet --no-progress")
               for cmd in running) == 1, running
    assert (result["extcap_status"], result["extcap_stderr"]) == (0, "")
    assert result["left_after_signal"] == []
    # the packets' comments are the CA messages of that traffic, as annotate
    # of the same capture writes them, and the plugin's fields are there
    again = tmp_path / "again.pcapng"
    run_cli("annotate", out, again, "-q", check=0)
    fields = ["-T", "fields", "-e", "frame.number", "-e", "frame.comment", "-e", "pcapca.pv"]
    plugin = f"lua_script:{ROOT / 'pcapca' / 'wireshark' / 'pcapca.lua'}"
    live = subprocess.run([tshark, "-X", plugin, "-r", str(out), *fields], capture_output=True,
                          text=True, check=True).stdout
    assert live == subprocess.run([tshark, "-X", plugin, "-r", str(again), *fields],
                                  capture_output=True, text=True, check=True).stdout
    pvs = [line.split("\t")[2] for line in live.splitlines()]
    assert "LIVE:dbl" in pvs and "LIVE:str" in pvs
    commands = [c for line in live.splitlines() for c in line.split("\t")[1:2] if c]
    assert any(c.startswith("LIVE:str ReadNotifyResponse(data=[b'hello']") for c in commands), \
        commands
