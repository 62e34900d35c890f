"""``pcapca annotate IN... OUT``: a pcapng copy of each capture with one comment per CA message."""
from __future__ import annotations

import argparse
import os
from typing import List

from ..capture.sets import FileFrames, probe_all
from ..errors import UsageError
from ..items import Problem
from ..output.annotate import write_annotated
from ..output.comments import default_comment
from ..output.template import Template
from ..pipeline import anchor_of, decode_captures
from .common import (CAPTURE_HELP, DAMAGED, OK, add_captures, add_common, add_filter, check_numbers,
                     check_streams, decoder_of, report, summary)
from .config import apply_config
from .outfile import Outputs, signals_held, unwind_on_signals


def add_parser(sub) -> None:
    p = sub.add_parser("annotate", help="write a pcapng with one comment per CA message",
                       description="Copy every packet of IN to the pcapng file OUT, adding "
                                   "one comment per CA message (for Wireshark's frame.comment). "
                                   "Several captures (a rotated set) are read in order as one "
                                   "and each is written to the directory OUT, as NAME.pcapng.")
    add_captures(p, "inputs", "IN", CAPTURE_HELP)
    p.add_argument("output", metavar="OUT",
                   help="pcapng file to write, or - for stdout; with several IN, a directory")
    p.add_argument("--comment", default=None,
                   help="format of each comment, same tokens as print --format "
                        "(default: '{pv} {command}', the PV name only when known, then a "
                        "tag for the Wireshark plugin: docs/wireshark.md)")
    p.add_argument("--keep-all", action=argparse.BooleanOptionalAction, default=None,
                   help="with a filter: keep every packet, comment only matching messages")
    add_common(p)
    add_filter(p)


def run(args) -> int:
    """Several inputs are read in order as one capture (``capture.sets``) and
    each is written, annotated, to its own file in the output directory."""
    check_streams(args.inputs, "OUT -" if args.output == "-" else None)
    check_numbers(args)
    apply_config(args)
    decoder = decoder_of(args)
    inputs = list(args.inputs)
    destinations = _destinations(inputs, args.output)
    files = FileFrames(inputs)
    comment = Template(args.comment, files) if args.comment else default_comment
    if comment is default_comment and files.several:
        def comment(record, _starts=files.starts, _index=files.index):
            return default_comment(record, _starts[_index(record.packet.frame)])
    bars = args.progress and not args.quiet
    if files.several:
        probe_all(inputs)           # (an unreadable 3rd file: before any output)
    # (one capture: its format is checked here, before any output)
    items, tick, close = decode_captures(files, bars=bars, decoder=decoder, strict=args.strict,
                                         anchor=anchor_of(args.filter, comment))
    outputs = Outputs(destinations)
    restore_signals = unwind_on_signals()
    try:
        damaged, late, stopped = write_annotated(
            items, outputs.writer, outputs.failed, files=files, comment=comment,
            flt=args.filter, keep_all=args.keep_all, strict=args.strict, tick=tick,
            report=report)
        if not stopped:
            if close is not None:
                close()
            outputs.finish()
    finally:
        with signals_held():
            outputs.abort()
            restore_signals()
    if late:
        report(Problem(f"{late} messages were completed only at the end of the capture "
                       f"(data waiting behind a hole) and could not be attached to their "
                       f"packets, which were already written", kind="decode"))
    summary(args, decoder)
    return DAMAGED if damaged else OK


def _same_file(a: str, b: str) -> bool:
    if a == "-" or b == "-":
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


_CAPTURE_SUFFIXES = (".pcapng", ".pcap", ".cap", ".ntar", ".dmp")


def output_name(path: str) -> str:
    """The name of the annotated copy of capture ``path`` in an output
    directory: its file name with ``.pcapng`` for its capture suffix (and
    without ``.gz``)."""
    name = os.path.basename(path)
    if name.endswith(".gz"):
        name = name[:-3]
    root, ext = os.path.splitext(name)
    return (root if ext in _CAPTURE_SUFFIXES else name) + ".pcapng"


def _destinations(inputs: List[str], dst: str) -> List[str]:
    """The output file of each input, or UsageError."""
    if len(inputs) == 1:
        if _same_file(inputs[0], dst):
            raise UsageError(f"output {dst!r} is the input file: refusing to overwrite it")
        if dst != "-" and os.path.isdir(dst):
            raise UsageError(f"output {dst!r} is a directory: with one capture OUT is the "
                             f"pcapng file to write (a directory takes several captures)")
        return [dst]
    if "-" in inputs:
        raise UsageError("annotate reads stdin (-) only as its one input")
    if not os.path.isdir(dst):
        raise UsageError(f"with several captures OUT must be a directory, one annotated "
                         f"pcapng per capture: {dst!r} is not a directory")
    outputs = [os.path.join(dst, output_name(path)) for path in inputs]
    for i, out in enumerate(outputs):
        if outputs.index(out) != i:
            raise UsageError(f"{inputs[outputs.index(out)]!r} and {inputs[i]!r} would both be "
                             f"written to {out!r}")
        for path in inputs:
            if _same_file(path, out):
                raise UsageError(f"output {out!r} is an input file: refusing to overwrite it")
        if os.path.isdir(out):
            raise UsageError(f"output {out!r} is a directory")
    return outputs
