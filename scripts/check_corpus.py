#!/usr/bin/env python3
"""Compare pcapca's decoding of a corpus of captures with its EXPECTED.md.

    python scripts/check_corpus.py ../shared/corpus [--skip ca_large.pcap]

EXPECTED.md lists, per capture, CA message counts (total, by role, without a
PV), by caproto class and by PV, from an independent decoder. This prints one
line per figure that differs and a verdict per file; exit status 1 if any differ.
"""
import argparse
import collections
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pcapca.pipeline import read  # noqa: E402


def parse_expected(path):
    files = {}
    current = None
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^## (\S+)", line)
        if m:
            current = files[m.group(1)] = {}
            continue
        if current is None:
            continue
        m = re.match(r"^- messages: \*\*(\d+)\*\* \(client (\d+), server (\d+)\); messages with no PV: (\d+)", line)
        if m:
            current.update(total=int(m[1]), client=int(m[2]), server=int(m[3]), no_pv=int(m[4]))
            continue
        m = re.match(r"^- by (class|PV): ?(.*)$", line)
        if m:
            counts = {}
            for part in filter(None, (p.strip() for p in m.group(2).split(", "))):
                name, n = part.rsplit(" ", 1)
                counts[name] = int(n)
            current["by_" + m.group(1).lower()] = counts
    return files


def measure(path):
    got = dict(total=0, client=0, server=0, no_pv=0,
               by_class=collections.Counter(), by_pv=collections.Counter())
    for r in read(path):
        got["total"] += 1
        got[r.role] += 1
        got["by_class"][r.name] += 1
        if r.pv is None:
            got["no_pv"] += 1
        else:
            got["by_pv"][r.pv] += 1
    return got


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus")
    ap.add_argument("--skip", action="append", default=[])
    args = ap.parse_args()
    expected = parse_expected(os.path.join(args.corpus, "EXPECTED.md"))
    bad = 0
    for name, exp in expected.items():
        if name in args.skip:
            print(f"{name}: skipped")
            continue
        t = time.perf_counter()
        got = measure(os.path.join(args.corpus, name))
        diffs = []
        for key in ("total", "client", "server", "no_pv"):
            if got[key] != exp.get(key):
                diffs.append(f"{key}: expected {exp.get(key)}, got {got[key]}")
        for key in ("by_class", "by_pv"):
            e, g = exp.get(key, {}), got[key]
            for k in sorted(set(e) | set(g)):
                if e.get(k, 0) != g.get(k, 0):
                    diffs.append(f"{key} {k}: expected {e.get(k, 0)}, got {g.get(k, 0)}")
        verdict = "OK" if not diffs else f"{len(diffs)} DIFFERENCES"
        print(f"{name}: {got['total']} messages (client {got['client']}, server {got['server']}, "
              f"no PV {got['no_pv']}), {len(got['by_class'])} classes, {len(got['by_pv'])} PVs: "
              f"{verdict} ({time.perf_counter() - t:.1f} s)")
        for d in diffs:
            print("   ", d)
        bad += bool(diffs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
