"""Every error pcapca reports to users as one line (the CLI maps each to an exit status)."""
from __future__ import annotations


class UsageError(Exception):
    """Reported as one line, exit status 2."""


class OutputError(Exception):
    """Writing an output failed once it was open (a full disk, an I/O
    error); the message names it.  Reported as one line, exit status 4."""


class CaptureFormatError(Exception):
    """Not a capture file pcapca can read (bad magic, missing file...)."""


class FormatError(ValueError):
    """A bad --format / --comment string."""


class FilterError(ValueError):
    """A bad filter value. ``key`` is the filter key (``'pv'``, ``'since'``...)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


class ConfigError(ValueError):
    """A bad config file; the message is one line ``FILE:LINE: ...``."""


class PlotUnavailable(Exception):
    """matplotlib is not installed."""
