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
