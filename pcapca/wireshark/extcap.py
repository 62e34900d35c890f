"""pcapca's extcap program: the capture interface "Channel Access (pcapca)"
that Wireshark and tshark list next to the network interfaces.

Wireshark runs it with ``--extcap-interfaces``, ``--extcap-dlts``,
``--extcap-config`` and ``--capture --fifo PATH``; a capture runs dumpcap
(or tcpdump) with a capture filter wide enough for CA, pipes its packets
through ``pcapca annotate - -`` and writes the annotated pcapng into the fifo.
Errors are one line on stderr and exit status 1, which Wireshark shows in a
dialog. The protocol and the filter are described in docs/wireshark.md.
(Imports only the standard library: Wireshark runs ``--extcap-interfaces``
of every extcap at start-up.)
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
from typing import List, Optional

INTERFACE = "pcapca"
DISPLAY = "Channel Access (pcapca)"
VERSION = "1"
# UDP searches and replies (5064), beacons and the repeater (5065), every
# TCP segment (servers listen on ports learned at run time from search
# replies, which a BPF cannot follow: pcapca decides which streams are CA)
# and IPv4 fragments after the first (no UDP header to match a port on)
BASE_FILTER = "udp port 5064 or udp port 5065 or tcp or (ip[6:2] & 0x1fff != 0)"


class ExtcapError(Exception):
    """One line for Wireshark's dialog; exit status 1."""


def capture_filter(extra_ports: List[int]) -> str:
    return BASE_FILTER + "".join(f" or udp port {p}" for p in extra_ports)


def network_interfaces() -> Optional[List[str]]:
    """The names capture can use (``any`` first), or None when unknown (not Linux)."""
    try:
        names = sorted(os.listdir("/sys/class/net"))
    except OSError:
        return None
    return ["any"] + names


def _print_interfaces(out) -> None:
    out.write(f"extcap {{version={VERSION}}}{{help=https://github.com/pcapca}}\n")
    out.write(f"interface {{value={INTERFACE}}}{{display={DISPLAY}}}\n")


def _print_dlts(out) -> None:
    # (the pcapng written to the fifo names its own link types, one per
    # captured interface; this one is what Wireshark shows before the start)
    out.write("dlt {number=1}{name=EN10MB}{display=Ethernet (or the link type of the "
              "captured interface)}\n")


def _print_config(out) -> None:
    names = network_interfaces()
    # (a selector where the names are known; Wireshark 4.0 keeps no
    # preference for an editselector, so tshark -o could not set it)
    kind = "string}{default=any" if names is None else "selector"
    out.write(f"arg {{number=0}}{{call=--iface}}{{display=Network interface}}{{type={kind}}}"
              f"{{tooltip=The interface dumpcap captures on (any: all of them)}}\n")
    for name in names or []:
        if not any(c in name for c in "{}\n"):
            default = "{default=true}" if name == "any" else ""
            out.write(f"value {{arg=0}}{{value={name}}}{{display={name}}}{default}\n")
    out.write("arg {number=1}{call=--pv}{display=PV filter}{type=string}"
              "{tooltip=Only packets with messages of PVs matching this glob or re:REGEX "
              "(as pcapca --pv); empty: every packet}\n")
    out.write("arg {number=2}{call=--server-port}{display=Other CA server ports}{type=string}"
              "{tooltip=Comma-separated UDP/TCP ports besides 5064 (EPICS_CA_SERVER_PORT "
              "of your servers)}{validation=^[0-9, ]*$}\n")


def _ports(text: Optional[str]) -> List[int]:
    ports = []
    for part in (text or "").replace(" ", "").split(","):
        if not part:
            continue
        if not part.isdigit() or not 0 < int(part) < 65536:
            raise ExtcapError(f"pcapca: other CA server ports: {part!r} is not a port number")
        ports.append(int(part))
    return ports


def capture_command(iface: str, bpf: str) -> List[str]:
    """dumpcap (or tcpdump) writing the capture to stdout, packet by packet."""
    known = network_interfaces()
    if known is not None and iface not in known:
        raise ExtcapError(f"pcapca: there is no network interface {iface!r} "
                          f"(there are: {', '.join(known)})")
    dumpcap = shutil.which("dumpcap")
    if dumpcap is not None:
        return [dumpcap, "-q", "-i", iface, "-f", bpf, "-w", "-"]
    tcpdump = shutil.which("tcpdump")
    if tcpdump is not None:
        return [tcpdump, "-i", iface, "-U", "-s", "0", "-w", "-", bpf]
    raise ExtcapError("pcapca: neither dumpcap nor tcpdump was found on PATH: install "
                      "Wireshark's dumpcap (Debian: wireshark-common)")


def _die_with_parent() -> None:
    """(Linux, in the child) SIGTERM when the extcap dies, even by SIGKILL."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _first_error(text: str, program: str) -> str:
    """dumpcap's/tcpdump's error (its first lines, without advice) as one line."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("Capturing on",
                                                                     "tcpdump: listening"))]
    if not lines:
        return f"pcapca: {program} stopped without saying why"
    words = lines[0]
    if len(lines) > 1 and lines[1].startswith("("):
        words += " " + lines[1]
    return "pcapca: " + words


def run_capture(fifo: str, iface: str, pv: Optional[str], ports: List[int],
                bpf: Optional[str]) -> int:
    """dumpcap | pcapca annotate - - > fifo, until either ends or a signal comes."""
    command = capture_command(iface, bpf or capture_filter(ports))
    annotate = [sys.executable, "-m", "pcapca", "annotate", "-", "-", "--quiet",
                "--no-progress"]
    for port in ports:
        annotate += ["--server-port", str(port)]
    if pv:
        annotate += ["--pv", pv]
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"]
                                        if env.get("PYTHONPATH") else "")
    stop = threading.Event()
    children: list = []

    def on_signal(signum, frame):
        # the capture program first: annotate then ends at its end of input,
        # after its last whole packet
        stop.set()
        if children and children[0].poll() is None:
            children[0].terminate()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, on_signal)
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    try:
        out = open(fifo, "wb", buffering=0)
    except OSError as exc:
        raise ExtcapError(f"pcapca: cannot write to Wireshark's fifo {fifo!r}: "
                          f"{exc.strerror}") from None
    with out:
        try:
            capture = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       stdin=subprocess.DEVNULL, preexec_fn=preexec)
        except OSError as exc:
            raise ExtcapError(f"pcapca: cannot run {command[0]}: {exc.strerror}") from None
        children.append(capture)
        errors: list = []
        reader = threading.Thread(target=lambda: errors.append(capture.stderr.read(1 << 16)),
                                  daemon=True)
        reader.start()
        try:
            annotator = subprocess.Popen(annotate, stdin=capture.stdout, stdout=out,
                                         stderr=subprocess.PIPE, env=env, preexec_fn=preexec)
        except OSError as exc:
            capture.kill()
            capture.wait()
            raise ExtcapError(f"pcapca: cannot run {sys.executable} -m pcapca annotate: "
                              f"{exc.strerror}") from None
        children.append(annotator)
        capture.stdout.close()
        if stop.is_set():                   # (a signal before the children were listed)
            on_signal(None, None)
        last_error = b""                    # (problems of a long capture: kept the last)
        for line in annotator.stderr:
            last_error = line[:4096]
        annotator.wait()
        if capture.poll() is None:          # (the fifo's reader went away)
            capture.terminate()
        try:
            status = capture.wait(timeout=10)
        except subprocess.TimeoutExpired:
            capture.kill()
            status = capture.wait()
        reader.join(timeout=5)
    if stop.is_set():
        return 0
    if status not in (0, -signal.SIGTERM, -signal.SIGPIPE):
        text = (errors[0] if errors else b"").decode("utf-8", "replace")
        sys.stderr.write(_first_error(text, os.path.basename(command[0])) + "\n")
        return 1
    if annotator.returncode not in (0, 1):
        text = last_error.decode("utf-8", "replace").strip()
        sys.stderr.write((text or "pcapca: annotate failed") + "\n")
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pcapca-extcap", description=__doc__.split("\n\n")[0])
    p.add_argument("--extcap-interfaces", action="store_true")
    p.add_argument("--extcap-version")
    p.add_argument("--extcap-interface")
    p.add_argument("--extcap-dlts", action="store_true")
    p.add_argument("--extcap-config", action="store_true")
    p.add_argument("--extcap-capture-filter")
    p.add_argument("--extcap-reload-option")
    p.add_argument("--capture", action="store_true")
    p.add_argument("--fifo")
    p.add_argument("--iface", default="any")
    p.add_argument("--pv")
    p.add_argument("--server-port")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args, _unknown = _parser().parse_known_args(argv)   # (newer Wireshark options: ignored)
    out = sys.stdout
    try:
        if args.extcap_interfaces:
            _print_interfaces(out)
            return 0
        if args.extcap_interface not in (None, INTERFACE):
            raise ExtcapError(f"pcapca: unknown extcap interface {args.extcap_interface!r} "
                              f"(this program has {INTERFACE!r})")
        if args.extcap_dlts:
            _print_dlts(out)
            return 0
        if args.extcap_config:
            _print_config(out)
            return 0
        if args.capture:
            if not args.fifo:
                raise ExtcapError("pcapca: --capture needs --fifo PATH")
            return run_capture(args.fifo, args.iface or "any", args.pv or None,
                               _ports(args.server_port), args.extcap_capture_filter or None)
        raise ExtcapError("pcapca: this is Wireshark's extcap program of pcapca: give "
                          "--extcap-interfaces, --extcap-dlts, --extcap-config or --capture")
    except ExtcapError as exc:
        sys.stderr.write(f"{exc}\n")
        sys.stderr.flush()
        if args.capture and args.fifo:
            _release(args.fifo)
        return 1


def _release(fifo: str) -> None:
    """Open and close the fifo: dumpcap waits for its writer to open it, and
    would wait forever for an extcap that failed before."""
    import errno
    import time
    for _ in range(50):             # (5 s for the reader to be there)
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            return
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                return
            time.sleep(0.1)
