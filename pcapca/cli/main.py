"""pcapca's command line: ``pcapca print``, ``pcapca annotate``, ``pcapca stats``.

Errors are one line on stderr (``pcapca: ...``); a traceback only with
``--debug``. Exit status: 0 success, 1 the capture was damaged (everything
readable was still processed), 2 usage error (bad arguments, unreadable or
unknown input, bad format string or config, a closed standard stream that
is needed), 3 a bug, 4 an output could not be written (a full disk: the
message names the file), 128+N ended by signal N (130: Ctrl-C).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import List, Optional

from .. import __version__
from ..ca.circuits import Decoder
from ..ca.framing import DEFAULT_MAX_MESSAGE
from ..ca.records import Decoded
from ..capture.progress import open_with_progress
from ..capture.reader import CaptureFormatError
from ..errors import FormatError, OutputError, UsageError
from ..escape import printable, printable_json
from ..filters import FilterError
from ..items import Problem
from ..output.jsonout import record_json
from ..output.template import DEFAULT_FORMAT, SHARK_TOKENS, TOKENS, Template
from .config import ConfigError, apply_config

OUTPUT_BATCH = 1 << 20     # characters of print's lines written at once (or one longer line)


@contextlib.contextmanager
def _writing_stdout():
    """A failed write to standard output is an OutputError (a reader that
    went away stays a BrokenPipeError)."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write standard output: {exc.strerror or exc}") from None


def _reopen_closed_streams() -> None:
    """Python starts with sys.stdin/stdout/stderr None when file descriptor
    0/1/2 is closed (``>&-``).  Each is opened on /dev/null, so that no file
    pcapca opens takes its number; a closed stderr makes messages go nowhere
    (never into the output); a closed stdin or stdout that a command needs
    is a usage error (``_check_streams``)."""
    for fd, stream in enumerate((sys.stdin, sys.stdout, sys.stderr)):
        if stream is None:
            null = os.open(os.devnull, os.O_RDWR)      # (the lowest free number: fd)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")


def _check_streams(args) -> None:
    inputs = args.inputs if args.cmd == "annotate" else args.captures
    if sys.stdin is None and "-" in inputs:
        raise UsageError("standard input is closed: there is no capture to read from -")
    if sys.stdout is None and (args.cmd != "annotate" or args.output == "-"):
        what = "OUT -" if args.cmd == "annotate" else f"{args.cmd}'s output"
        raise UsageError(f"standard output is closed: there is nowhere to write {what} "
                         f"(redirect it to a file or /dev/null)")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-message", type=int, default=DEFAULT_MAX_MESSAGE, metavar="BYTES",
                   help="largest CA message to reassemble (default %(default)s); "
                        "larger ones are skipped and reported")
    p.add_argument("--server-port", type=int, action="append", default=None, metavar="PORT",
                   help="a CA server/search port besides 5064 (repeatable); "
                        "ports are also learned from search replies and beacons")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no summary line at the end (problems are still reported)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first problem (damaged capture or undecodable traffic) "
                        "instead of reporting it and carrying on; exit status 1")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar (it is shown only when stderr is a terminal)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _add_filter(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "filter", "which CA messages to keep (docs/filters.md). Patterns are shell globs "
                  "(case-sensitive, whole name) or re:REGEX (searched, like grep). Any value "
                  "of one option may match; every option given must match.")
    g.add_argument("--config", metavar="FILE.yaml",
                   help="read filter: and print:/annotate: defaults from a YAML file; "
                        "options given here replace the file's value for that key")
    g.add_argument("--pv", action="append", metavar="PATTERN",
                   help="keep messages of a PV matching PATTERN (repeatable); "
                        "messages with no PV never match")
    g.add_argument("--not-pv", action="append", metavar="PATTERN",
                   help="drop messages of a PV matching PATTERN (repeatable)")
    g.add_argument("--command", action="append", metavar="PATTERN",
                   help="keep messages whose caproto class name matches PATTERN, "
                        "e.g. ReadNotifyResponse, 'ReadNotify*' (repeatable)")
    g.add_argument("--not-command", action="append", metavar="PATTERN",
                   help="drop messages whose class name matches PATTERN (repeatable)")
    g.add_argument("--host", action="append", metavar="ADDR|CIDR",
                   help="keep messages from or to this address or network (repeatable)")
    g.add_argument("--port", action="append", metavar="PORT",
                   help="keep messages from or to this TCP/UDP port (repeatable)")
    g.add_argument("--since", metavar="TIME",
                   help="keep messages at or after TIME: ISO 8601 (2026-11-29T18:44:00Z, "
                        "no offset = UTC), epoch seconds (1795977745.5) or +SECONDS after "
                        "the capture's first packet (+12.5)")
    g.add_argument("--until", metavar="TIME", help="keep messages before TIME (exclusive)")


def _tokens(names) -> str:
    return " ".join("{" + name + "}" for name in names)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pcapca",
        description="Read EPICS Channel Access traffic in packet captures (pcap, pcapng).")
    parser.add_argument("--version", action="version", version=f"pcapca {__version__}")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("print", help="one line per CA message",
                       description="Print one line per CA message of a capture, or of several "
                                   "read in order as one (e.g. a rotated tcpdump -C/-W or "
                                   "dumpcap -b set: PV names and circuits carry over; frames "
                                   "are numbered across the files as mergecap -a would).")
    p.add_argument("captures", nargs="+", metavar="CAPTURE",
                   help="pcap or pcapng file (gzip-compressed or not), or - for stdin (once)")
    p.add_argument("--format", "-f", default=None,
                   help=f"Python format string; tokens: {_tokens(SHARK_TOKENS)} (as "
                        f"caproto-shark) and {_tokens(TOKENS[len(SHARK_TOKENS):])}. "
                        f"Default: {DEFAULT_FORMAT!r}")
    p.add_argument("--json", action=argparse.BooleanOptionalAction, default=None,
                   help="one JSON object per message")
    _add_common(p)
    _add_filter(p)

    a = sub.add_parser("annotate", help="write a pcapng with one comment per CA message",
                       description="Copy every packet of IN to the pcapng file OUT, adding "
                                   "one comment per CA message (for Wireshark's frame.comment). "
                                   "Several captures (a rotated set) are read in order as one "
                                   "and each is written to the directory OUT, as NAME.pcapng.")
    a.add_argument("inputs", nargs="+", metavar="IN",
                   help="pcap or pcapng file (gzip-compressed or not), or - for stdin")
    a.add_argument("output", metavar="OUT",
                   help="pcapng file to write, or - for stdout; with several IN, a directory")
    a.add_argument("--comment", default=None,
                   help="format of each comment, same tokens as print --format "
                        "(default: '{pv} {command}', the PV name only when known, then a "
                        "tag for the Wireshark plugin: docs/wireshark.md)")
    a.add_argument("--keep-all", action=argparse.BooleanOptionalAction, default=None,
                   help="with a filter: keep every packet, comment only matching messages")
    _add_common(a)
    _add_filter(a)

    s = sub.add_parser("stats", help="a health report of the CA traffic",
                       description="Report on the CA traffic of one or more captures, read in "
                                   "order as one (e.g. a rotated tcpdump -C/-W set): unanswered "
                                   "searches, requests never answered (reads, puts, subscriptions, "
                                   "channel creations), subscriptions and their silences, PV "
                                   "names served twice, circuits (who closed them), receivers "
                                   "that stopped reading (flow control), servers, clients, "
                                   "per-PV counts and latencies, errors, beacons and restarts "
                                   "(docs/stats.md).")
    s.add_argument("captures", nargs="+", metavar="CAPTURE",
                   help="pcap or pcapng file (gzip-compressed or not), or - for stdin (once)")
    s.add_argument("--json", action="store_true", default=False,
                   help="print the report as one JSON object (complete: --top does not apply)")
    s.add_argument("--top", type=int, default=20, metavar="N",
                   help="rows per table in the text report (default %(default)s; 0 = all)")
    s.add_argument("--plot", metavar="FILE.png",
                   help="also draw a timeline (messages/s by kind, searches/s, unanswered "
                        "searches/s); needs matplotlib: pip install 'pcapca[plot]'")
    _add_common(s)
    _add_filter(s)
    from ..wireshark.install import add_parser as add_wireshark_parser
    add_wireshark_parser(sub)
    return parser


def _report(problem: Problem) -> None:
    # (file names and texts from the capture: escaped, as every message)
    print(f"pcapca: {printable(str(problem))}", file=sys.stderr, flush=True)


def _check_numbers(args) -> None:
    """argparse checks that a number is an integer; its range is checked here
    (--top: by stats). A value out of range is a usage error, not a run that
    skips every message."""
    if args.max_message < 1:
        raise UsageError(f"--max-message {args.max_message}: must be 1 or more (bytes of "
                         f"a message's payload)")
    for port in args.server_port or ():
        if not 1 <= port <= 65535:
            raise UsageError(f"--server-port {port}: expected a port 1..65535")


def _report_unshown(decoder: Decoder) -> None:
    """The one line that counts the problems not shown (``Decoder.shown``)."""
    line = decoder.stats.unshown_line()
    if line:
        print(f"pcapca: {line}", file=sys.stderr)


def _decoder(args) -> Decoder:
    ports = [5064] + (args.server_port or [])
    return Decoder(max_message=args.max_message, server_ports=ports)


def _probe_all(paths: List[str]) -> None:
    """Refuse several captures with stdin twice, or a file that cannot be read
    as a capture, before reading any (not at the 10th file)."""
    from ..capture.sets import probe_all
    if paths.count("-") > 1:
        raise UsageError("stdin (-) can be read only once")
    probe_all(paths)


def cmd_print(args) -> int:
    from ..capture.sets import Files
    from ..pipeline import anchor_of, decode_captures
    if args.json and args.format:
        raise UsageError("--json and --format cannot be used together")
    several = len(args.captures) > 1
    if several:
        _probe_all(args.captures)
    apply_config(args)
    files = Files(args.captures)
    template = None if args.json else Template(args.format or DEFAULT_FORMAT, files)
    decoder = _decoder(args)
    bars = args.progress and not args.quiet
    live = "-" in args.captures
    keep = None if args.filter is None else args.filter.matches
    # a filter by PV or command: packets it would drop wholly are skipped in
    # bulk (pcapca.skim), except on live input, where each packet is shown
    # as soon as it arrives
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
        with _writing_stdout():
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
            _report(item)
            if args.strict and item.stops_strict:
                damaged = True
                break
    if lines:
        write_lines()
    if close is not None:
        close()
    with _writing_stdout():
        out.flush()
    _report_unshown(decoder)
    if not args.quiet:
        print(f"pcapca: {decoder.stats.summary()}", file=sys.stderr)
    return 1 if damaged else 0


def cmd_annotate(args) -> int:
    apply_config(args)
    from ..output.annotate import annotate
    return annotate(args, decoder=_decoder(args), report=_report)


def cmd_stats(args) -> int:
    from ..pipeline import anchor_of
    from ..stats.collector import StatsCollector
    from ..stats.plot import PlotUnavailable, check_matplotlib, plot
    from ..stats.render import render_text
    if args.top < 0:
        raise UsageError(f"--top {args.top}: must be 0 (all) or more")
    if args.plot:
        try:
            check_matplotlib()
        except PlotUnavailable as exc:
            raise UsageError(str(exc)) from None
    _probe_all(args.captures)
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
        _report(item)
        return stop              # --strict: stop at the first problem, report what was read

    bars = args.progress and not args.quiet
    decoder = _decoder(args)
    collector.run(args.captures, decoder, on_problem=problem,
                  opener=lambda path: open_with_progress(path, enabled=bars),
                  anchor=anchor_of(args.filter))
    _report_unshown(decoder)
    report = collector.report()
    with _writing_stdout():
        if args.json:
            import json
            sys.stdout.write(printable_json(json.dumps(report, ensure_ascii=False,
                                                       allow_nan=False, indent=1)))
            sys.stdout.write("\n")
        else:
            sys.stdout.write(render_text(report, top=args.top))
        sys.stdout.flush()
    if args.plot:
        plot(report, collector.timeline, args.plot)
        if not args.quiet:
            print(f"pcapca: timeline written to {printable(args.plot)}", file=sys.stderr)
    return 1 if damaged else 0


def main(argv: Optional[List[str]] = None) -> int:
    _reopen_closed_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    # numpy wraps long arrays over several lines; one message is one line
    import numpy
    numpy.set_printoptions(linewidth=sys.maxsize)
    if not args.debug:
        # caproto warns (deprecated ReadResponse) and logs tracebacks (an invalid
        # alarm status in a value) while formatting hostile input: pcapca's own
        # one-line reports are what the user needs
        import logging
        import warnings
        warnings.filterwarnings("ignore", module="caproto")
        warnings.filterwarnings("ignore", category=UserWarning, message=".*[Dd]eprecated.*")
        logging.getLogger("caproto").setLevel(logging.CRITICAL)
    try:
        if args.cmd != "wireshark":        # (the capture commands' inputs and options)
            _check_streams(args)
            _check_numbers(args)
        if args.cmd == "print":
            code = cmd_print(args)
        elif args.cmd == "stats":
            code = cmd_stats(args)
        elif args.cmd == "wireshark":
            from ..wireshark.install import run as cmd_wireshark
            code = cmd_wireshark(args)
        else:
            code = cmd_annotate(args)
    except BrokenPipeError:
        # `pcapca print ... | head`: the reader went away; end quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 0
    except KeyboardInterrupt as exc:    # (annotate.Interrupted: SIGTERM, SIGHUP...)
        return 128 + getattr(exc, "signum", 2)
    except (CaptureFormatError, FormatError, UsageError, ConfigError, FilterError) as exc:
        if args.debug:
            raise
        print(f"pcapca: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except OutputError as exc:
        if args.debug:
            raise
        print(f"pcapca: error: {exc}", file=sys.stderr)
        try:
            if sys.stdout is not None:
                sys.stdout.flush()
        except OSError:      # (what stdout still holds cannot be written either: drop it)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return 4
    except OSError as exc:
        if args.debug:
            raise
        where = f"cannot open {exc.filename!r}: " if exc.filename else ""
        print(f"pcapca: error: {printable(where + str(exc.strerror or exc))}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: say so in one line
        if args.debug:
            raise
        print(f"pcapca: internal error: {type(exc).__name__}: {printable(str(exc))} "
              f"(run with --debug for the traceback, and please report it)", file=sys.stderr)
        return 3
    return code


def entry() -> None:
    sys.exit(main())
