"""``pcapca stats``: a health report of the CA traffic (text, JSON, a timeline plot)."""
from __future__ import annotations

import argparse
import json
import sys

from ..capture.progress import open_with_progress
from ..errors import PlotUnavailable, UsageError
from ..escape import printable, printable_json
from ..items import Problem
from ..pipeline import anchor_of
from ..stats.collector import StatsCollector
from ..stats.plot import check_matplotlib, plot
from ..stats.render import render_text
from .common import (DAMAGED, OK, add_captures, add_common, add_filter, check_numbers,
                     check_streams, decoder_of, probe_captures, report, report_unshown,
                     writing_stdout)
from .config import apply_config


def add_parser(sub) -> None:
    p = sub.add_parser("stats", help="a health report of the CA traffic",
                       description="Report on the CA traffic of one or more captures, read in "
                                   "order as one (e.g. a rotated tcpdump -C/-W set): unanswered "
                                   "searches, requests never answered (reads, puts, subscriptions, "
                                   "channel creations), subscriptions and their silences, PV "
                                   "names served twice, circuits (who closed them), receivers "
                                   "that stopped reading (flow control), servers, clients, "
                                   "per-PV counts and latencies, errors, beacons and restarts "
                                   "(docs/stats.md).")
    add_captures(p)
    p.add_argument("--json", action="store_true", default=False,
                   help="print the report as one JSON object (complete: --top does not apply)")
    p.add_argument("--top", type=int, default=20, metavar="N",
                   help="rows per table in the text report (default %(default)s; 0 = all)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also draw a timeline (messages/s by kind, searches/s, unanswered "
                        "searches/s); needs matplotlib: pip install 'pcapca[plot]'")
    add_common(p)
    add_filter(p)


def run(args) -> int:
    check_streams(args.captures, "stats's output")
    check_numbers(args)
    if args.top < 0:
        raise UsageError(f"--top {args.top}: must be 0 (all) or more")
    if args.plot:
        try:
            check_matplotlib()
        except PlotUnavailable as exc:
            raise UsageError(str(exc)) from None
    probe_captures(args.captures)
    apply_config(args)
    collector = StatsCollector(keep=None if args.filter is None else args.filter.matches,
                               timeline=bool(args.plot))
    damaged = False

    strict = getattr(args, "strict", False)

    def problem(item: Problem) -> bool:
        nonlocal damaged
        stop = strict and item.stops_strict
        if item.kind == "capture" or stop:
            damaged = True
        report(item)
        return stop              # --strict: stop at the first problem, report what was read

    bars = args.progress and not args.quiet
    decoder = decoder_of(args)
    collector.run(args.captures, decoder, on_problem=problem,
                  opener=lambda path: open_with_progress(path, enabled=bars),
                  anchor=anchor_of(args.filter))
    report_unshown(decoder)
    result = collector.report()
    with writing_stdout():
        if args.json:
            sys.stdout.write(printable_json(json.dumps(result, ensure_ascii=False,
                                                       allow_nan=False, indent=1)))
            sys.stdout.write("\n")
        else:
            sys.stdout.write(render_text(result, top=args.top))
        sys.stdout.flush()
    if args.plot:
        plot(result, collector.timeline, args.plot)
        if not args.quiet:
            print(f"pcapca: timeline written to {printable(args.plot)}", file=sys.stderr)
    return DAMAGED if damaged else OK
