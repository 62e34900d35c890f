"""Shared test helpers: the recorded fixtures, the CLI, tshark, independent
readers. Builders of bytes are in tests/builders.py (bench/ and scripts/ use
them too). Test files import both as ``tests.conftest`` and ``tests.builders``:
every test folder is a package, so test files may share a name."""
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, settings

from pcapca.ca._caproto import CLIENT, SERVER
from pcapca.ca.framing import build
from pcapca.ca.records import CLIENT_ROLE
from tests.builders import FIXTURES, ROOT, fixture  # noqa: F401 (the tests use them from here)

FAST = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def run_cli(*args, input=None, check=None, timeout=120):
    """Run ``python -m pcapca ARGS``; returns the CompletedProcess (bytes)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-m", "pcapca", *map(str, args)], input=input,
                         capture_output=True, timeout=timeout, env=env, cwd=str(ROOT))
    if check is not None:
        assert res.returncode == check, res.stderr.decode(errors="replace")
    return res


def live_print(first: bytes, rest: bytes, *args):
    """``pcapca print - ARGS`` fed ``first``, then (once it printed a line,
    or after 20 s) ``rest``, as a slow writer such as ``tcpdump -U -w -``:
    (the line printed before ``rest`` was written or None, the rest of the
    output, exit status)."""
    import threading
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "pcapca", "print", "-", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    first_line = []
    reader = threading.Thread(target=lambda: first_line.append(proc.stdout.readline()))
    reader.start()
    proc.stdin.write(first)
    proc.stdin.flush()
    reader.join(timeout=20)
    before = first_line[0] if first_line else None
    proc.stdin.write(rest)
    proc.stdin.close()
    after = proc.stdout.read()
    return before, after, proc.wait(timeout=20)


def run_closed(fd, *args, stdout=subprocess.PIPE):
    """``pcapca ARGS`` with file descriptor ``fd`` (0, 1 or 2) closed, as by
    ``<&-``, ``>&-``, ``2>&-``: (exit status, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "pcapca", *map(str, args)],
                          stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                          preexec_fn=lambda: os.close(fd), env=env, cwd=str(ROOT), timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def device(tmp_path, name, minor):
    """A character device node like /dev/null (minor 3) or /dev/full (7),
    made in tmp_path when allowed (as root: then a regression would replace
    that node, not the machine's), else the machine's (which an unprivileged
    run cannot replace anyway)."""
    node = tmp_path / name
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
        with open(node, "wb"):       # (a nodev mount refuses to open it)
            pass
        return node
    except OSError:
        if node.exists():
            node.unlink()
        if os.geteuid() == 0:
            pytest.skip("cannot make a device node where the tests run")
        return Path("/dev") / name


def needs_tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("tshark is required in CI (.ci/run installs it)")
        pytest.skip("tshark not installed")
    return path


@pytest.fixture
def tshark():
    return needs_tshark()


# ------------------------------------------------------------ tshark


def frames(tshark, path):
    """{frame number: (epoch string, raw bytes hex, comments, interface)} as tshark sees them."""
    cmd = [tshark, "-r", str(path), "-T", "json", "-x",
           "-e", "frame.number", "-e", "frame.time_epoch", "-e", "frame.comment",
           "-e", "frame.interface_id", "-e", "frame.len"]
    res = subprocess.run(cmd, capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr.decode()
    out = {}
    for rec in json.loads(res.stdout):
        layers = rec["_source"]["layers"]
        number = int(layers["frame.number"][0])
        out[number] = (layers["frame.time_epoch"][0], layers.get("frame_raw", [""])[0],
                       layers.get("frame.comment", []), layers.get("frame.interface_id", ["0"])[0],
                       layers["frame.len"][0])
    return out


def expected_comments(path, starts=(1,)):
    """What `pcapca print --format '{pv} {command}'` prints, per frame, each
    with its tag (docs/wireshark.md: the fixtures' PV names need no escape).
    ``starts``: the first frame of each file of a set annotated into a
    directory (req= is a frame of the message's own file)."""
    out = run_cli("print", path, "-q", "--format",
                  "{frame}\t{role}\t{name}\t{pv}\t{request_frame}\t{latency}\t{pv} {command}",
                  check=0)
    per_frame = {}
    for line in out.stdout.decode().splitlines():
        frame, role, name, pv, req, lat, text = line.split("\t", 6)
        first = max(f for f in starts if f <= int(frame))
        req = str(int(req) - first + 1) if req and int(req) >= first else ""
        tag = (f" [pcapca/1 role={role} cmd={name}" + (f" pv={pv}" if pv else "")
               + (f" req={req}" if req else "") + (f" lat={lat}" if lat else "") + "]")
        per_frame.setdefault(int(frame), []).append(text.lstrip(" ") + tag)
    return per_frame


# ------------------------------------------------ independent references


def built_now(record):
    """The caproto object made at once from the record's bytes, as the decoder
    builds the messages it does not leave for later."""
    role = CLIENT if record.role == CLIENT_ROLE else SERVER
    msg, hsize = record.msg, record.hsize
    return build(role, record.fields[0], bytearray(msg[:hsize]), bytearray(msg[hsize:]))


def tcp_holes(path, sport):
    """[(frame, bytes)] of the holes in the sequence numbers of the TCP data
    sent from ``sport`` (one connection, no reordering), read with dpkt."""
    holes, expect = [], None
    with open(path, "rb") as f:
        for frame, (_, buf) in enumerate(dpkt.pcap.Reader(f), 1):
            tcp = dpkt.ethernet.Ethernet(buf).data.data
            if not isinstance(tcp, dpkt.tcp.TCP) or tcp.sport != sport:
                continue
            if tcp.flags & dpkt.tcp.TH_SYN:
                expect = tcp.seq + 1
                continue
            if tcp.data and expect is not None:
                if tcp.seq != expect:
                    holes.append((frame, (tcp.seq - expect) % 2**32))
                expect = tcp.seq + len(tcp.data)
    return holes
