"""The progress bar (tqdm) on stderr: shown only when stderr is a terminal
and the input a file of known size; its total is the file's size, so for a
gzip-compressed capture the compressed bytes."""
import gzip
import os
import sys

import pytest

from tests.conftest import ROOT, fixture, run_cli

pty = pytest.importorskip("pty")


def on_a_terminal(*args) -> str:
    """stderr of ``python -m pcapca ARGS`` run with stderr on a 100-column
    pseudo-terminal (stdout to /dev/null)."""
    import fcntl
    import struct
    import subprocess
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("TQDM_DISABLE", None)
    proc = subprocess.Popen([sys.executable, "-m", "pcapca", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:                 # (Linux: EIO once the child closed it)
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0
    return out.decode("utf-8", "replace")


def test_a_bar_on_a_terminal_sized_by_the_file(tmp_path):
    err = on_a_terminal("print", fixture("bigarray.pcap"))
    assert "bigarray.pcap:   0%|" in err and "/2.41M [" in err
    assert err.rstrip().splitlines()[-1].startswith("pcapca: 108 packets;")


def test_the_bar_of_a_compressed_capture_counts_the_compressed_bytes(tmp_path):
    packed = tmp_path / "bigarray.pcap.gz"
    packed.write_bytes(gzip.compress(fixture("bigarray.pcap").read_bytes(), mtime=0))
    total = packed.stat().st_size
    assert total < 2_000_000
    err = on_a_terminal("print", packed)
    assert "bigarray.pcap.gz:   0%|" in err
    shown = f"{total / 1e6:.2f}M" if total >= 1e6 else f"{total / 1e3:.0f}k"
    assert f"/{shown} [" in err, err


@pytest.mark.parametrize("args", [("--no-progress",), ("-q",)])
def test_no_bar_when_asked_or_quiet(args):
    err = on_a_terminal("print", *args, fixture("bigarray.pcap"))
    assert "%|" not in err


def test_no_bar_when_stderr_is_not_a_terminal():
    res = run_cli("print", fixture("bigarray.pcap"), check=0)
    assert res.stderr.decode().splitlines() == [
        line for line in res.stderr.decode().splitlines() if line.startswith("pcapca: ")]
    assert "%|" not in res.stderr.decode()


def test_stats_shows_a_bar_per_file():
    err = on_a_terminal("stats", fixture("bigarray.pcap"), fixture("basic.pcap"))
    assert "bigarray.pcap:   0%|" in err and "/2.41M [" in err
    assert "basic.pcap:   0%|" in err and "/5.36k [" in err
    assert "%|" not in on_a_terminal("stats", "--no-progress", fixture("basic.pcap"))
