"""``pcapca wireshark install|uninstall|--print-paths``: the Lua plugin, the
extcap launcher and (``--profile``) a configuration profile "pcapca", put
where the installed Wireshark looks for personal ones (``tshark -G folders``).

Every file written starts with ``MARK`` in a comment; uninstall removes only
files that have it, so a file of the same name written by someone else is
never removed (and install refuses to replace it).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Dict, List, Optional

from ..errors import UsageError

MARK = "written by pcapca wireshark install"
HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN_SOURCE = os.path.join(HERE, "pcapca.lua")
EXTCAP_SOURCE = os.path.join(HERE, "extcap.py")
PROFILE = "pcapca"
WINDOWS = sys.platform.startswith("win")


class InstallError(Exception):
    """One line on stderr, exit status 2."""


def wireshark_folders(tshark: Optional[str] = None) -> Dict[str, str]:
    """``tshark -G folders`` as {name: path} (its "Name:<tab>path" lines)."""
    program = tshark or shutil.which("tshark")
    if program is None:
        raise InstallError("tshark not found on PATH: pcapca asks `tshark -G folders` where "
                           "this Wireshark reads personal plugins (give --tshark PATH)")
    try:
        res = subprocess.run([program, "-G", "folders"], capture_output=True, timeout=60,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"cannot run {program!r} -G folders: {exc}") from None
    folders: Dict[str, str] = {}
    for line in res.stdout.decode("utf-8", "replace").splitlines():
        name, sep, path = line.partition(":")
        if sep and path.strip() and name.strip() not in folders:
            folders[name.strip()] = path.strip()
    if "Personal configuration" not in folders or "Personal Lua Plugins" not in folders:
        raise InstallError(f"{program} -G folders names no personal configuration or Lua "
                           f"plugin folder (exit status {res.returncode})")
    return folders


def target_paths(folders: Dict[str, str]) -> Dict[str, str]:
    """{what: file path} of everything install may write."""
    config = folders["Personal configuration"]
    # Wireshark 4.2+ names its personal extcap folder; 3.x/4.0 read CONFIG/extcap
    extcap_dir = folders.get("Personal Extcap path") or os.path.join(config, "extcap")
    profile = os.path.join(config, "profiles", PROFILE)
    return {
        "plugin": os.path.join(folders["Personal Lua Plugins"], "pcapca.lua"),
        "extcap": os.path.join(extcap_dir, "pcapca-extcap.bat" if WINDOWS else "pcapca-extcap"),
        "preferences": os.path.join(profile, "preferences"),
        "colorfilters": os.path.join(profile, "colorfilters"),
    }


def _plugin_text() -> str:
    with open(PLUGIN_SOURCE, encoding="utf-8") as f:
        return f"-- {MARK}\n" + f.read()


def _extcap_text() -> str:
    if WINDOWS:
        return (f"@rem {MARK}\r\n@\"{sys.executable}\" -c \"import importlib.util as u, "
                f"sys; s = u.spec_from_file_location('pcapca_extcap', r'{EXTCAP_SOURCE}'); "
                f"m = u.module_from_spec(s); s.loader.exec_module(m); sys.exit(m.main())\" %*\r\n")
    # (the extcap module by its path: importing the pcapca package takes a
    # second, and Wireshark runs every extcap when it starts)
    return (f"#!{sys.executable}\n"
            f"# {MARK}: Wireshark's extcap program of pcapca\n"
            f"import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('pcapca_extcap', {EXTCAP_SOURCE!r})\n"
            f"module = importlib.util.module_from_spec(spec)\n"
            f"spec.loader.exec_module(module)\n"
            f"sys.exit(module.main())\n")


PREFERENCES = f"""# {MARK}: the columns of the profile "pcapca"
gui.column.format:
\t"No.", "%m",
\t"Time", "%t",
\t"Source", "%s",
\t"Destination", "%d",
\t"Protocol", "%p",
\t"PV", "%Cus:pcapca.pv:0:R",
\t"CA command", "%Cus:pcapca.command:0:R",
\t"Latency", "%Cus:pcapca.latency:0:R",
\t"Info", "%i"
"""

# pale red behind packets with a pcapca problem, ahead of Wireshark's own rules
COLOR_RULE = "@pcapca problem@pcapca.problem@[0,0,0][65535,49344,49344]\n"


def _colorfilters_text(folders: Dict[str, str]) -> str:
    """Our rule, then the global rules (a profile's colorfilters replaces them)."""
    rules = ""
    global_dir = folders.get("Global configuration")
    if global_dir:
        try:
            with open(os.path.join(global_dir, "colorfilters"), encoding="utf-8") as f:
                rules = f.read()
        except OSError:
            pass
    return f"# {MARK}\n{COLOR_RULE}{rules}"


def _ours(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return MARK in f.read(4096)
    except OSError:
        return False


def install(folders: Dict[str, str], profile: bool) -> List[str]:
    """Write the files; returns their paths."""
    paths = target_paths(folders)
    contents = {"plugin": _plugin_text(), "extcap": _extcap_text()}
    if profile:
        contents["preferences"] = PREFERENCES
        contents["colorfilters"] = _colorfilters_text(folders)
    for what, path in paths.items():
        if what in contents and os.path.lexists(path) and not _ours(path):
            raise InstallError(f"{path} exists and was not written by pcapca: move it "
                               f"away first (nothing was installed)")
    written = []
    for what, text in contents.items():
        path = paths[what]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".pcapca-tmp"
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, 0o755 if what == "extcap" else 0o644)
        os.replace(tmp, path)
        written.append(path)
    return written


def uninstall(folders: Dict[str, str]) -> List[str]:
    """Remove the files install wrote (those with MARK); returns their paths."""
    removed = []
    paths = target_paths(folders)
    for path in paths.values():
        if os.path.isfile(path) and _ours(path):
            os.unlink(path)
            removed.append(path)
    try:
        os.rmdir(os.path.dirname(paths["preferences"]))   # (only if nothing else is there)
    except OSError:
        pass
    return removed


def add_parser(sub) -> None:
    w = sub.add_parser("wireshark", help="install the Wireshark plugin and capture interface",
                       description="Install (or uninstall) pcapca's Lua plugin (typed fields "
                                   "pcapca.pv, pcapca.latency, ... from annotate's comments) and "
                                   "its extcap capture interface \"Channel Access (pcapca)\" "
                                   "into the personal folders of the Wireshark that tshark "
                                   "belongs to (docs/wireshark.md).")
    w.add_argument("action", nargs="?", choices=["install", "uninstall"])
    w.add_argument("--profile", action="store_true",
                   help="install: also a configuration profile \"pcapca\" (PV, CA command "
                        "and latency columns; problems coloured)")
    w.add_argument("--print-paths", action="store_true",
                   help="print where the files go (or are) and whether they are there")
    w.add_argument("--lua-path", action="store_true",
                   help="print the path of the plugin shipped with pcapca, for "
                        "tshark -X lua_script:PATH without installing it")
    w.add_argument("--tshark", metavar="PATH", help="the tshark to ask (default: on PATH)")
    w.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args) -> int:

    if [args.action is not None, args.print_paths, args.lua_path].count(True) != 1:
        raise UsageError("give one of install, uninstall, --print-paths, --lua-path")
    if args.lua_path:
        print(PLUGIN_SOURCE)
        return 0
    try:
        folders = wireshark_folders(args.tshark)
        if args.print_paths:
            for what, path in target_paths(folders).items():
                state = "installed" if _ours(path) else "absent" if not os.path.lexists(
                    path) else "not pcapca's"
                print(f"{what:12} {path}  ({state})")
            return 0
        if args.action == "install":
            for path in install(folders, args.profile):
                print(f"wrote {path}")
            print("restart Wireshark (or reload Lua plugins: Ctrl+Shift+L) to use them")
        else:
            removed = uninstall(folders)
            for path in removed:
                print(f"removed {path}")
            if not removed:
                print("nothing of pcapca's was installed")
    except InstallError as exc:
        raise UsageError(str(exc)) from None
    return 0
