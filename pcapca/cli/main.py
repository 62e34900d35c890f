"""``pcapca COMMAND``: the table of commands, and the process around one (streams, warnings, exit status)."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import warnings
from typing import List, Optional

import numpy

from .. import __version__
from .common import OK, SIGNALLED, error_status

# name -> module with add_parser(subparsers), which adds the command of that
# name and its options, and run(args) -> exit status; a run imports only the
# module of its command (start-up: docs/design.md)
COMMANDS = {
    "print": ".cmd_print",
    "annotate": ".cmd_annotate",
    "stats": ".cmd_stats",
    "wireshark": "..wireshark.install",
}


def command(name: str):
    return importlib.import_module(COMMANDS[name], __package__)


def build_parser(argv: Optional[List[str]] = None) -> argparse.ArgumentParser:
    """The parser of every command, or of the one ``argv`` starts with."""
    parser = argparse.ArgumentParser(
        prog="pcapca",
        description="Read EPICS Channel Access traffic in packet captures (pcap, pcapng).")
    parser.add_argument("--version", action="version", version=f"pcapca {__version__}")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True
    for name in [argv[0]] if argv and argv[0] in COMMANDS else COMMANDS:
        command(name).add_parser(sub)
    return parser


def _reopen_closed_streams() -> None:
    """Python starts with sys.stdin/stdout/stderr None when file descriptor
    0/1/2 is closed (``>&-``).  Each is opened on /dev/null, so that no file
    pcapca opens takes its number; a closed stderr makes messages go nowhere
    (never into the output); a closed stdin or stdout that a command needs
    is a usage error (``common.check_streams``)."""
    for fd, stream in enumerate((sys.stdin, sys.stdout, sys.stderr)):
        if stream is None:
            null = os.open(os.devnull, os.O_RDWR)      # (the lowest free number: fd)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")


def _quiet_libraries() -> None:
    """caproto warns (deprecated ReadResponse) and logs tracebacks (an invalid
    alarm status in a value) while formatting hostile input: pcapca's own
    one-line reports are what the user needs."""
    warnings.filterwarnings("ignore", module="caproto")
    warnings.filterwarnings("ignore", category=UserWarning, message=".*[Dd]eprecated.*")
    logging.getLogger("caproto").setLevel(logging.CRITICAL)


def main(argv: Optional[List[str]] = None) -> int:
    _reopen_closed_streams()
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser(argv).parse_args(argv)
    # numpy wraps long arrays over several lines; one message is one line
    numpy.set_printoptions(linewidth=sys.maxsize)
    if not args.debug:
        _quiet_libraries()
    try:
        return command(args.cmd).run(args)
    except BrokenPipeError:
        # `pcapca print ... | head`: the reader went away; end quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return OK
    except KeyboardInterrupt as exc:    # (outfile.Interrupted: SIGTERM, SIGHUP...)
        return SIGNALLED + getattr(exc, "signum", signal.SIGINT)
    except Exception as exc:
        if args.debug:
            raise
        return error_status(exc)


def entry() -> None:
    sys.exit(main())
