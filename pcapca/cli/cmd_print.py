"""``pcapca print``: one line (or JSON object) per CA message."""
from __future__ import annotations

import argparse
import sys

from ..ca.records import Decoded
from ..capture.sets import FileFrames
from ..errors import UsageError
from ..items import Problem
from ..output.jsonout import record_json
from ..output.template import DEFAULT_FORMAT, SHARK_TOKENS, TOKENS, Template
from ..pipeline import anchor_of, decode_captures
from .common import (DAMAGED, OK, add_captures, add_common, add_filter, check_numbers,
                     check_streams, decoder_of, probe_captures, report, summary, writing_stdout)
from .config import apply_config

OUTPUT_BATCH = 1 << 20     # characters of print's lines written at once (or one longer line)


def _tokens(names) -> str:
    return " ".join("{" + name + "}" for name in names)


def add_parser(sub) -> None:
    p = sub.add_parser("print", help="one line per CA message",
                       description="Print one line per CA message of a capture, or of several "
                                   "read in order as one (e.g. a rotated tcpdump -C/-W or "
                                   "dumpcap -b set: PV names and circuits carry over; frames "
                                   "are numbered across the files as mergecap -a would).")
    add_captures(p)
    p.add_argument("--format", "-f", default=None,
                   help=f"Python format string; tokens: {_tokens(SHARK_TOKENS)} (as "
                        f"caproto-shark) and {_tokens(TOKENS[len(SHARK_TOKENS):])}. "
                        f"Default: {DEFAULT_FORMAT!r}")
    p.add_argument("--json", action=argparse.BooleanOptionalAction, default=None,
                   help="one JSON object per message")
    add_common(p)
    add_filter(p)


def run(args) -> int:
    check_streams(args.captures, "print's output")
    check_numbers(args)
    if args.json and args.format:
        raise UsageError("--json and --format cannot be used together")
    several = len(args.captures) > 1
    if several:
        probe_captures(args.captures)
    apply_config(args)
    files = FileFrames(args.captures)
    template = None if args.json else Template(args.format or DEFAULT_FORMAT, files)
    decoder = decoder_of(args)
    bars = args.progress and not args.quiet
    live = "-" in args.captures
    keep = None if args.filter is None else args.filter.matches
    # a filter by PV or command: packets it would drop wholly are skipped in
    # bulk (pcapca.fast.skim), except on live input, where each packet is
    # shown as soon as it arrives
    drops = None if args.filter is None or live else args.filter.drops
    stream, tick, close = decode_captures(files, bars=bars, decoder=decoder, strict=args.strict,
                                          drops=drops, anchor=anchor_of(args.filter, template))
    out = sys.stdout
    write = out.write
    damaged = False
    if template is not None:
        render = template
    elif several:
        def render(record, _files=files):
            return record_json(record, _files)
    else:
        render = record_json
    lines: list = []          # written in batches: one write per line costs as much as the line
    size = 0                  # their characters: a batch is written beyond OUTPUT_BATCH

    def write_lines(flush: bool = False) -> None:
        nonlocal size
        lines.append("")
        with writing_stdout():
            write("\n".join(lines))
            if flush:
                out.flush()
        lines.clear()
        size = 0

    for item in stream:
        cls = item.__class__
        if cls is Decoded:
            if tick is not None:
                tick()
            records = item.records
            if not records:
                continue
            if keep is not None:          # filter before formatting: that is the costly part
                records = [r for r in records if keep(r)]
                if not records:
                    continue
            for record in records:
                line = render(record)
                size += len(line)
                lines.append(line)
            if live or len(lines) >= 512 or size > OUTPUT_BATCH:
                write_lines(flush=live)
        elif cls is Problem:
            if lines:                     # (keep the order of output and messages)
                write_lines()
            if item.kind == "capture":
                damaged = True
            report(item)
            if args.strict and item.stops_strict:
                damaged = True
                break
    if lines:
        write_lines()
    if close is not None:
        close()
    with writing_stdout():
        out.flush()
    summary(args, decoder)
    return DAMAGED if damaged else OK
