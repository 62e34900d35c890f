"""``pcapca annotate IN OUT``: every input packet, unchanged, in a pcapng file
where each packet that completes CA messages carries one comment per message.
(``pcapca annotate IN... DIR``: several captures, read in order as one, each
annotated into its own file in DIR.)

The comments are what Wireshark shows as ``frame.comment``; by default the PV
name (when known) and caproto's repr of the message, so that
``frame.comment contains "SOFT:ai"`` finds every packet about that PV.
"""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import sys
import tempfile
from typing import Callable, List

from ..ca.records import Decoded
from ..capture.pcapng import PcapngWriter
from ..capture.sets import Files, probe_all
from ..errors import OutputError, UsageError
from ..items import Passthrough, Problem
from ..pipeline import anchor_of, decode_captures
from .comments import default_comment, note_comment
from .template import Template


class _StrictStop(Exception):
    pass


def _same_file(a: str, b: str) -> bool:
    if a == "-" or b == "-":
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


class _Output:
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
        with _signals_held():
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
        with _signals_held():
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
# instruction again); SIGINT already raises KeyboardInterrupt; Python ignores
# SIGPIPE and SIGXFSZ (a write then fails: BrokenPipeError, OutputError)
_SIGNALS = [getattr(signal, name) for name in
            ("SIGHUP", "SIGQUIT", "SIGABRT", "SIGTERM", "SIGALRM", "SIGUSR1", "SIGUSR2",
             "SIGXCPU", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR", "SIGSTKFLT")
            if hasattr(signal, name)]
if hasattr(signal, "SIGRTMIN"):
    _SIGNALS += range(signal.SIGRTMIN, signal.SIGRTMAX + 1)


def _interrupted(signum, frame):
    raise Interrupted(signum)


def _unwind_on_signals() -> Callable[[], None]:
    """Make each signal of ``_SIGNALS`` raise ``Interrupted`` (one that is
    ignored, as under nohup, stays ignored); returns what restores them."""
    old = {}
    for sig in _SIGNALS:
        try:
            if signal.getsignal(sig) == signal.SIG_DFL:
                old[sig] = signal.signal(sig, _interrupted)
        except (OSError, ValueError):     # (ValueError: not the main thread)
            pass

    def restore() -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return restore


@contextlib.contextmanager
def _signals_held():
    """Signals wait until the output is renamed or removed (not half done)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS + [signal.SIGINT])
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


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


def annotate(args, *, decoder, report: Callable[[Problem], None]) -> int:
    """Run the annotate command; returns the exit status. Several inputs
    are read in order as one capture (``pcapca.capture_set``) and each is
    written, annotated, to its own file in the output directory."""
    inputs = list(args.inputs)
    destinations = _destinations(inputs, args.output)
    files = Files(inputs)
    comment = (Template(args.comment, files) if getattr(args, "comment", None)
               else default_comment)
    if comment is default_comment and files.several:
        def comment(record, _starts=files.starts, _index=files.index):
            return default_comment(record, _starts[_index(record.packet.frame)])
    flt = getattr(args, "filter", None)
    keep_all = getattr(args, "keep_all", False)
    bars = getattr(args, "progress", False) and not args.quiet
    strict = getattr(args, "strict", False)
    several = files.several
    if several:
        probe_all(inputs)           # (an unreadable 3rd file: before any output)
    # (one capture: its format is checked here, before any output)
    items, tick, close = decode_captures(files, bars=bars, decoder=decoder, strict=strict,
                                         anchor=anchor_of(flt, comment))
    output = None                     # of the input file begun last (``begun - 1``)
    begun = 0
    damaged = False
    late = 0

    def to(index: int):
        """The writer of input file ``index`` (the ones before it finished)."""
        nonlocal output, begun
        while begun <= index:
            if output is not None:
                output.finish()
            with _signals_held():      # (its temporary file is known to abort())
                output = _Output(destinations[begun])
            begun += 1
        return output.writer

    restore_signals = _unwind_on_signals()
    try:
        if not several:
            writer = to(0)
        for item in items:
            cls = item.__class__
            if cls is Decoded:
                if tick is not None:
                    tick()
                if item.late:
                    late += len(item.records)
                    continue
                if several:
                    writer = to(files.index(item.packet.frame))
                records = item.records
                if flt is not None:
                    matching = [r for r in records if flt.matches(r)]
                    if not matching and not keep_all:
                        continue
                    records = matching
                comments = [comment(r) for r in records]
                if item.notes and flt is None:
                    comments.extend(map(note_comment, item.notes))
                try:
                    writer.write_packet(item.packet, comments)
                except OSError as exc:
                    raise output.failed(exc) from None
            elif cls is Passthrough:
                if several:             # (blocks of the file being read)
                    writer = to(len(files.starts) - 1)
                try:
                    writer.write_passthrough(item)
                except OSError as exc:
                    raise output.failed(exc) from None
            elif cls is Problem:
                if item.kind == "capture":
                    damaged = True
                report(item)
                if strict and item.stops_strict:
                    # --strict: the first problem fails the run; no output file
                    raise _StrictStop()
        if close is not None:
            close()
        to(len(destinations) - 1)     # (files without packets get their file too)
        output.finish()
    except _StrictStop:
        damaged = True
    finally:
        with _signals_held():
            if output is not None:
                output.abort()
            restore_signals()
    if late:
        report(Problem(f"{late} messages were completed only at the end of the capture "
                       f"(data waiting behind a hole) and could not be attached to their "
                       f"packets, which were already written", kind="decode"))
    unshown = decoder.stats.unshown_line()        # (the problems not shown: Decoder.shown)
    if unshown:
        print(f"pcapca: {unshown}", file=sys.stderr)
    if not args.quiet:
        print(f"pcapca: {decoder.stats.summary()}", file=sys.stderr)
    return 1 if damaged else 0
