#!/usr/bin/env python3
"""Prove a change leaves pcapca's outputs byte-identical: run the same commands
with this tree and with the tree of a git revision, on every fixture and every
capture of ../shared/corpus, and compare stdout, stderr, exit status and the
annotated files.

    python scripts/compare_outputs.py              # against HEAD
    python scripts/compare_outputs.py --rev db54e95 --quick

Each case is one command on one capture: print (default, --json, a format with
every token, a --pv filter, which takes the shortcut), annotate, stats (text and
--json), and, per capture, its gzip copy and standard input. Outputs are kept as
SHA-256 digests; a mismatch prints the command to run again.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
EVERY_TOKEN = ("{frame} {file} {file_frame} {timestamp} {ts} {time} {time_relative} "
               "{src}:{sport}->{dst}:{dport} {proto} {transport.sport} {role} {name} {pv} "
               "{latency} {request_frame} {command}")
PRINT_CASES = {
    "print": [],
    "json": ["--json"],
    "tokens": ["--format", EVERY_TOKEN],
    "pv": ["--pv", "*a*", "--format", "{frame} {pv} {name} {latency} {command}"],
}
BIG = 10 * 1024 * 1024


def captures(quick: bool):
    found = sorted(p for p in (ROOT / "fixtures").rglob("*") if p.suffix in (".pcap", ".pcapng"))
    if CORPUS.is_dir():
        found += sorted(p for p in CORPUS.iterdir() if p.suffix in (".pcap", ".pcapng"))
    return [p for p in found if not (quick and p.stat().st_size > BIG)]


def cases(capture: Path, work: Path):
    """(name, argv, stdin path or None, annotated output path or None)."""
    name = str(capture.relative_to(capture.parents[1]))
    for case, extra in PRINT_CASES.items():
        yield f"{name} {case}", ["print", str(capture), "--quiet", *extra], None, None
    out = work / "annotated.pcapng"
    yield f"{name} annotate", ["annotate", str(capture), str(out), "--no-progress"], None, out
    yield f"{name} stats", ["stats", str(capture), "--quiet"], None, None
    yield f"{name} stats-json", ["stats", str(capture), "--json", "--quiet"], None, None
    zipped = work / (capture.name + ".gz")
    if not zipped.exists():
        with open(capture, "rb") as src, gzip.open(zipped, "wb") as dst:
            shutil.copyfileobj(src, dst)
    yield f"{name} gzip", ["print", str(zipped), "--quiet", "--json"], None, None
    yield f"{name} stdin", ["print", "-", "--quiet", "--format", EVERY_TOKEN], capture, None
    yield f"{name} stdin-annotate", ["annotate", "-", "-", "--no-progress"], capture, None


def run(tree: Path, argv, stdin, annotated, work: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(tree))
    env.pop("PCAPCA_DEBUG", None)
    with open(stdin or os.devnull, "rb") as fin:
        res = subprocess.run([sys.executable, "-m", "pcapca", *argv], stdin=fin,
                             capture_output=True, env=env, cwd=work)
    digest = hashlib.sha256(res.stdout).hexdigest()[:16]
    parts = [f"rc={res.returncode}", f"out={digest}",
             f"err={hashlib.sha256(res.stderr).hexdigest()[:16]}"]
    if annotated is not None:
        data = annotated.read_bytes() if annotated.exists() else b""
        parts.append(f"file={hashlib.sha256(data).hexdigest()[:16]}")
        annotated.unlink(missing_ok=True)
    return " ".join(parts)


def checkout(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "pcapca"],
                             capture_output=True, check=True).stdout
    tree = into / "base"
    tree.mkdir()
    archive_path = into / "base.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(tree)
    return tree


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="HEAD", help="the revision to compare with (HEAD)")
    ap.add_argument("--quick", action="store_true", help="skip captures over 10 MB")
    ap.add_argument("--only", help="only captures whose path contains this text")
    args = ap.parse_args()
    failed = total = 0
    with tempfile.TemporaryDirectory(prefix="pcapca-compare-") as tmp:
        tmp = Path(tmp)
        base = checkout(args.rev, tmp)
        work = tmp / "work"
        work.mkdir()
        for capture in captures(args.quick):
            if args.only and args.only not in str(capture):
                continue
            for name, argv, stdin, annotated in cases(capture, work):
                total += 1
                before = run(base, argv, stdin, annotated, work)
                after = run(ROOT, argv, stdin, annotated, work)
                if before != after:
                    failed += 1
                    print(f"DIFFERS {name}: {args.rev}: {before} | now: {after}\n"
                          f"    pcapca {' '.join(argv)}", flush=True)
        print(f"{total - failed} identical, {failed} different "
              f"(against {args.rev})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
