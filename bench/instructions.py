#!/usr/bin/env python3
"""Instructions executed by each bench case, in this tree and in a git revision (valgrind).

    python bench/instructions.py --rev REV [CAPTURE] [--packets N] [--cases a,b] [-j N]

Wall-clock ratios on a shared machine move by 10 % from run to run; the count
of instructions a process executes (cachegrind's ``I refs``, the hash seed
fixed) moves by well under 1 %, so one run tells a 2 % regression from noise.
It does not see cache misses or I/O: ``make bench`` stays the measure of
speed, this one the check that a change costs what it should
(docs/performance.md). The cases are bench.py's (``build_cases``), and
start-up. The revision's ``pcapca/`` is taken with ``git archive`` into a
temporary directory; both trees are byte-compiled first, as an installed
package is; the hash seed is 0 (a random one alone moves start-up by 4 %).
Without CAPTURE: the first --packets packets of
../shared/corpus/ca_large.pcap (editcap), else bench/synthetic.pcap.
"""
from __future__ import annotations

import argparse
import compileall
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench import (CA_LARGE, SYNTHETIC, SYNTHETIC_PACKETS, build_cases,  # noqa: E402
                   ensure_synthetic, pcapca_cmd)


START_UP = "start-up (fixtures/basic.pcap)"


def commands(capture: Path, work: Path) -> dict:
    """case name -> command: bench.py's pcapca cases (caproto-shark and the
    unavailable left out), their files in ``work``, then start-up alone."""
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    found = {c.name: c.cmd for c in build_cases(capture, work, env, None)
             if c.cmd and not c.unavailable and c.name != "caproto-shark"}
    found[START_UP] = pcapca_cmd("print", str(ROOT / "fixtures" / "basic.pcap"))
    return found


def instructions(tree: Path, cmd: list) -> int:
    """I refs of ``cmd`` (``python -m pcapca ...``) with ``tree`` first on the path."""
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0")
    p = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no",
                        "--cachegrind-out-file=/dev/null", *cmd],
                       env=env, cwd=str(tree), stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", p.stderr)
    if p.returncode not in (0, 1) or not found:
        raise SystemExit(f"instructions.py: {cmd[3:]} in {tree} failed: {p.stderr[-500:]}")
    return int(found.group(1).replace(",", ""))


def checkout(rev: str, into: Path) -> None:
    """``pcapca/`` of ``rev`` into ``into``."""
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "pcapca"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("capture", nargs="?", type=Path)
    ap.add_argument("--rev", required=True, help="the git revision to compare with")
    ap.add_argument("--packets", type=int, default=100_000,
                    help="packets of ca_large.pcap when no CAPTURE is given (default 100000)")
    ap.add_argument("--cases", help="comma-separated case names (default: all)")
    ap.add_argument("-j", type=int, default=os.cpu_count() or 1, help="processes at once")
    args = ap.parse_args(argv)
    if not shutil.which("valgrind"):
        print("instructions.py: needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="pcapca-instr-") as tmp:
        work = Path(tmp)
        capture = args.capture
        if capture is None:
            if CA_LARGE.exists() and shutil.which("editcap"):
                capture = work / "part.pcap"
                subprocess.run(["editcap", "-F", "pcap", "-r", str(CA_LARGE), str(capture),
                                f"1-{args.packets}"], check=True)
            else:
                capture = SYNTHETIC
                ensure_synthetic(capture, SYNTHETIC_PACKETS)
        old = work / "rev"
        checkout(args.rev, old)
        for tree in (ROOT, old):
            compileall.compile_dir(str(tree / "pcapca"), quiet=1)
        tables = {tree: commands(capture, work / f"cases-{tree.name}") for tree in (ROOT, old)}
        names = args.cases.split(",") if args.cases else list(tables[ROOT])
        jobs = [(tree, name) for name in names for tree in (old, ROOT)]
        with ThreadPoolExecutor(max(1, args.j)) as pool:
            counts = dict(zip(jobs, pool.map(lambda j: instructions(j[0], tables[j[0]][j[1]]),
                                             jobs)))
        pv = tables[ROOT].get("print --pv", ["(none)"])[-1]
    print(f"Instructions (valgrind cachegrind, I refs) on {args.capture or capture.name}"
          f"{'' if args.capture else f' ({args.packets:,} packets)'}; --pv {pv}\n")
    print(f"| case | {args.rev} | this tree | change |\n|---|---|---|---|")
    for name in names:
        before, after = counts[old, name], counts[ROOT, name]
        print(f"| {name} | {before / 1e9:.3f} G | {after / 1e9:.3f} G | "
              f"{100 * (after / before - 1):+.2f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
