"""What every command shares: its options, exit statuses, one-line reports and standard streams."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import List, Optional

from ..ca.circuits import Decoder
from ..ca.framing import DEFAULT_MAX_MESSAGE
from ..capture.sets import probe_all
from ..errors import (CaptureFormatError, ConfigError, FilterError, FormatError, OutputError,
                      UsageError)
from ..escape import printable
from ..items import Problem

# exit statuses
OK = 0
DAMAGED = 1       # the capture was damaged (everything readable was still processed)
USAGE = 2         # bad arguments, unreadable or unknown input, bad format string or config,
                  # a closed standard stream that is needed
BUG = 3
OUTPUT = 4        # an output could not be written (a full disk: the message names the file)
SIGNALLED = 128   # + N: ended by signal N (130: Ctrl-C)

USAGE_ERRORS = (CaptureFormatError, FormatError, UsageError, ConfigError, FilterError)

CAPTURE_HELP = "pcap or pcapng file (gzip-compressed or not), or - for stdin"


def add_captures(p: argparse.ArgumentParser, dest: str = "captures", metavar: str = "CAPTURE",
                 help: str = CAPTURE_HELP + " (once)") -> None:
    p.add_argument(dest, nargs="+", metavar=metavar, help=help)


def add_common(p: argparse.ArgumentParser) -> None:
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


def add_filter(p: argparse.ArgumentParser) -> None:
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


def check_numbers(args) -> None:
    """argparse checks that a number is an integer; its range is checked here
    (--top: by stats). A value out of range is a usage error, not a run that
    skips every message."""
    if args.max_message < 1:
        raise UsageError(f"--max-message {args.max_message}: must be 1 or more (bytes of "
                         f"a message's payload)")
    for port in args.server_port or ():
        if not 1 <= port <= 65535:
            raise UsageError(f"--server-port {port}: expected a port 1..65535")


def check_streams(inputs: List[str], stdout_use: Optional[str]) -> None:
    """A closed stdin that ``inputs`` read (``-``), or a closed stdout that the
    command writes (``stdout_use``: what it writes there, or None), is a
    usage error (``main`` opened them on /dev/null)."""
    if sys.stdin is None and "-" in inputs:
        raise UsageError("standard input is closed: there is no capture to read from -")
    if sys.stdout is None and stdout_use is not None:
        raise UsageError(f"standard output is closed: there is nowhere to write {stdout_use} "
                         f"(redirect it to a file or /dev/null)")


@contextlib.contextmanager
def writing_stdout():
    """A failed write to standard output is an OutputError (a reader that
    went away stays a BrokenPipeError)."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write standard output: {exc.strerror or exc}") from None


def report(problem: Problem) -> None:
    # (file names and texts from the capture: escaped, as every message)
    print(f"pcapca: {printable(str(problem))}", file=sys.stderr, flush=True)


def report_unshown(decoder: Decoder) -> None:
    """The one line that counts the problems not shown (``Decoder.shown``)."""
    line = decoder.counts.unshown_line()
    if line:
        print(f"pcapca: {line}", file=sys.stderr)


def summary(args, decoder: Decoder) -> None:
    """The problems not shown, then the summary line (not with --quiet)."""
    report_unshown(decoder)
    if not args.quiet:
        print(f"pcapca: {decoder.counts.summary()}", file=sys.stderr)


def decoder_of(args) -> Decoder:
    ports = [5064] + (args.server_port or [])
    return Decoder(max_message=args.max_message, server_ports=ports)


def probe_captures(paths: List[str]) -> None:
    """Refuse several captures with stdin twice, or a file that cannot be read
    as a capture, before reading any (not at the 10th file)."""
    if paths.count("-") > 1:
        raise UsageError("stdin (-) can be read only once")
    probe_all(paths)


def error_status(exc: Exception) -> int:
    """Report an error that ended a command in one line; its exit status."""
    if isinstance(exc, USAGE_ERRORS):
        print(f"pcapca: error: {printable(str(exc))}", file=sys.stderr)
        return USAGE
    if isinstance(exc, OutputError):
        print(f"pcapca: error: {exc}", file=sys.stderr)
        try:
            if sys.stdout is not None:
                sys.stdout.flush()
        except OSError:      # (what stdout still holds cannot be written either: drop it)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return OUTPUT
    if isinstance(exc, OSError):
        where = f"cannot open {exc.filename!r}: " if exc.filename else ""
        print(f"pcapca: error: {printable(where + str(exc.strerror or exc))}", file=sys.stderr)
        return USAGE
    print(f"pcapca: internal error: {type(exc).__name__}: {printable(str(exc))} "   # a bug
          f"(run with --debug for the traceback, and please report it)", file=sys.stderr)
    return BUG
