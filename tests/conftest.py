"""Shared test helpers: the recorded fixtures, the CLI, tshark."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def fixture(name: str) -> Path:
    path = FIXTURES / name
    assert path.exists(), f"missing fixture {path} (record it with `make fixtures`)"
    return path


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
