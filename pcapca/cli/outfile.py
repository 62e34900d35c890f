"""Annotate's output files: never left half written, even by a failure or a terminating signal."""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import sys
import tempfile
from typing import Callable, List, Optional

from ..capture.pcapng_write import PcapngWriter
from ..errors import OutputError


class OutputFile:
    """One pcapng output.  A regular file (or a new one) is written to a
    temporary file next to it, next to its target when OUT is a symbolic
    link, and renamed over it when complete (``finish``), so that a failed
    run leaves no half file; a file replaced keeps its mode (and owner when
    allowed).  Anything else is written directly, never replaced: ``-``
    (standard output), a FIFO, ``>(cmd)`` (/dev/fd/N), a device."""

    def __init__(self, dst: str):
        self.dst = dst
        self.tmp_path = None
        self.name = "standard output" if dst == "-" else repr(dst)
        self.existing = None
        if dst == "-":
            self.out = sys.stdout.buffer
            live = True
        else:
            try:
                try:
                    self.existing = os.stat(dst)
                except FileNotFoundError:     # a new file (or a dangling link's target)
                    pass
                if self.existing is not None and not stat.S_ISREG(self.existing.st_mode):
                    if stat.S_ISDIR(self.existing.st_mode):
                        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
                    fd = os.open(dst, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
                    live = stat.S_ISFIFO(self.existing.st_mode)   # (a reader is waiting)
                else:
                    self.target = os.path.realpath(dst)
                    fd, self.tmp_path = tempfile.mkstemp(
                        prefix=".pcapca-", suffix=".pcapng.part",
                        dir=os.path.dirname(self.target))
                    live = False
            except OSError as exc:   # (name OUT, not the temporary file next to it)
                raise OSError(exc.errno, f"cannot write {dst!r}: {exc.strerror}") from None
            self.out = os.fdopen(fd, "wb", buffering=1 << 20)
        self.writer = PcapngWriter(self.out, flush_each=live)

    def failed(self, exc: OSError) -> BaseException:
        """What to raise for a failed write: ``OutputError`` naming OUT (a
        full disk...); a reader that went away stays a BrokenPipeError."""
        if isinstance(exc, BrokenPipeError):
            return exc
        return OutputError(f"cannot write {self.name}: {exc.strerror or exc}")

    def finish(self) -> None:
        with signals_held():
            try:
                self.writer.close()
                if self.dst != "-":
                    self.out.close()
                if self.tmp_path is not None:
                    existing = self.existing
                    if existing is None:
                        umask = os.umask(0)
                        os.umask(umask)
                        mode = 0o666 & ~umask        # as an ordinary new file
                    else:
                        mode = stat.S_IMODE(existing.st_mode)
                        if (existing.st_uid, existing.st_gid) != (os.getuid(), os.getgid()):
                            try:
                                os.chown(self.tmp_path, existing.st_uid, existing.st_gid)
                            except OSError:       # (not allowed: the file becomes ours)
                                pass
                    os.chmod(self.tmp_path, mode)
                    os.replace(self.tmp_path, self.target)
                    self.tmp_path = None
            except OSError as exc:
                raise self.failed(exc) from None

    def abort(self) -> None:
        with signals_held():
            if self.dst != "-":
                try:
                    self.out.close()
                except OSError:
                    pass
            if self.tmp_path is not None:
                try:
                    os.unlink(self.tmp_path)
                except FileNotFoundError:
                    pass
                self.tmp_path = None


class Interrupted(KeyboardInterrupt):
    """A terminating signal (SIGTERM, SIGHUP...) while annotate writes: it
    unwinds as Ctrl-C does, so that the temporary file is removed; the exit
    status is 128 + its number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# the signals whose default action ends the process and that a handler can
# catch, but the faults (SIGSEGV...: a handler returning would run the faulty
# instruction again); SIGINT is added where it is caught; Python ignores
# SIGPIPE and SIGXFSZ (a write then fails: BrokenPipeError, OutputError)
_SIGNALS = [getattr(signal, name) for name in
            ("SIGHUP", "SIGQUIT", "SIGABRT", "SIGTERM", "SIGALRM", "SIGUSR1", "SIGUSR2",
             "SIGXCPU", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR", "SIGSTKFLT")
            if hasattr(signal, name)]
if hasattr(signal, "SIGRTMIN"):
    _SIGNALS += range(signal.SIGRTMIN, signal.SIGRTMAX + 1)


# Python runs every handler in the main thread, also for a signal that the
# kernel gave to another thread (numpy's BLAS threads block none): while
# ``signals_held`` the handler keeps it here, and the section raises it at its end
_depth = 0
_deferred: Optional[int] = None


def _interrupted(signum, frame):
    global _deferred
    if _depth:
        if _deferred is None:
            _deferred = signum
        return
    raise Interrupted(signum)


def unwind_on_signals() -> Callable[[], None]:
    """Make SIGINT and each signal of ``_SIGNALS`` raise ``Interrupted`` (one
    that is ignored, as under nohup, stays ignored); returns what restores them."""
    old = {}
    for sig in _SIGNALS + [signal.SIGINT]:
        try:
            if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
                old[sig] = signal.signal(sig, _interrupted)
        except (OSError, ValueError):     # (ValueError: not the main thread)
            pass

    def restore() -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return restore


@contextlib.contextmanager
def signals_held():
    """Signals wait until the output is renamed or removed (not half done):
    blocked in this thread, or deferred by their handler (see ``_deferred``)."""
    global _depth, _deferred
    old = None
    if hasattr(signal, "pthread_sigmask"):
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS + [signal.SIGINT])
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        if not _depth and _deferred is not None:
            signum, _deferred = _deferred, None
            raise Interrupted(signum)


class Outputs:
    """The output files of a run, one per input file, begun in input order:
    beginning one finishes (renames) the ones before it; ``abort`` removes
    the temporary file of the one begun last, unless it was finished."""

    def __init__(self, destinations: List[str]):
        self.destinations = destinations
        self.current: Optional[OutputFile] = None      # of the input file begun last
        self.begun = 0

    def writer(self, index: int) -> PcapngWriter:
        """The writer of input file ``index`` (the ones before it finished)."""
        while self.begun <= index:
            if self.current is not None:
                self.current.finish()
            with signals_held():      # (its temporary file is known to abort())
                self.current = OutputFile(self.destinations[self.begun])
            self.begun += 1
        return self.current.writer

    def failed(self, exc: OSError) -> BaseException:
        """What to raise for a failed write (``OutputFile.failed``)."""
        return self.current.failed(exc)

    def finish(self) -> None:
        """Finish every output (files without packets get their file too)."""
        self.writer(len(self.destinations) - 1)
        self.current.finish()

    def abort(self) -> None:
        if self.current is not None:
            self.current.abort()
