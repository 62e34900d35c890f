"""``pcapca annotate IN OUT``: every input packet, unchanged, in a pcapng file
where each packet that completes CA messages carries one comment per message.
(``pcapca annotate IN... DIR``: several captures, read in order as one, each
annotated into its own file in DIR.)

The comments are what Wireshark shows as ``frame.comment``; by default the PV
name (when known) and caproto's repr of the message, so that
``frame.comment contains "SOFT:ai"`` finds every packet about that PV.
"""
from __future__ import annotations

import functools
import os
import sys
import tempfile
from urllib.parse import quote
from typing import Callable, List

from .capture_set import Files, probe_all
from .formatting import Template, record_repr
from .events import Passthrough, Problem
from .pcapng_io import MAX_OPTION_LEN, PcapngWriter
from .pipeline import anchor_of, decode_captures
from .records import Decoded


class _StrictStop(Exception):
    pass


# The machine-readable tag that ends each default comment and note, read by
# the Wireshark plugin (pcapca/wireshark/pcapca.lua); format in docs/wireshark.md,
# choice in docs/design.md. Bump TAG_VERSION on any incompatible change.
TAG_VERSION = 1
_TAG = f" [pcapca/{TAG_VERSION} "
NOTE_TAG = f" [pcapca/{TAG_VERSION} problem]"
# PV bytes written as themselves in the tag; any other byte (space, %, [, ],
# controls, non-ASCII) is %XX, so the tag holds no space or bracket of the wire
_PV_SAFE = "!\"#$&'()*+,/:;<=>?@\\^`{|}"


@functools.lru_cache(maxsize=4096)
def tag_pv(pv: str) -> str:
    """``pv`` percent-encoded for the tag (UTF-8; surrogate escapes back to bytes)."""
    try:
        return quote(pv, safe=_PV_SAFE, errors="surrogateescape")
    except UnicodeEncodeError:
        return quote(pv, safe=_PV_SAFE, errors="replace")


# (role, class, PV) -> the tag's start, memoised: the tag must cost little
# beside the repr. At most _MAX_STARTS entries (then cleared), PV names of
# at most 256 characters (longer ones, rare and maybe hostile, are not kept)
_starts: dict = {}
_MAX_STARTS = 16384


def comment_tag(record, first: int = 1) -> str:
    """`` [pcapca/1 role=R cmd=NAME pv=ESCAPED req=FRAME lat=SECONDS]``; pv, req
    and lat only when known. ``first``: the first frame of the output file
    (several captures): req is a frame of that file, absent when the request
    is in an earlier file (Wireshark opens one file at a time)."""
    pv = record.pv
    key = (record.role, record.cls, pv)
    start = _starts.get(key)
    if start is None:
        start = f"{_TAG}role={record.role} cmd={record.cls.__name__}"
        if pv is not None:
            start += f" pv={tag_pv(pv)}"
        if pv is None or len(pv) <= 256:
            if len(_starts) >= _MAX_STARTS:
                _starts.clear()
            _starts[key] = start
    req = record.request_frame
    if first != 1 and req is not None:
        req = req - first + 1 if req >= first else None
    if req is None:
        return start + "]" if record.latency is None else f"{start} lat={record.latency:.6f}]"
    if record.latency is None:
        return f"{start} req={req}]"
    return f"{start} req={req} lat={record.latency:.6f}]"


def _fit(text: str, tag: str) -> str:
    """``text + tag``, the text cut as pcapng_io.cut_comment cuts (which would
    cut the tag) so that the tag survives pcapng's 65535-byte option limit."""
    whole = text + tag
    if len(whole) * 4 <= MAX_OPTION_LEN:       # (no UTF-8 encoding needed)
        return whole
    room = MAX_OPTION_LEN - len(tag.encode("utf-8"))
    enc = text.encode("utf-8", "replace")
    if len(enc) <= room:
        return whole
    n = len(enc) - room
    while True:                    # (the tail's length depends on n)
        tail = f"…[cut by pcapca: {n} bytes]"
        keep = room - len(tail.encode("utf-8"))
        while keep > 0 and (enc[keep] & 0xC0) == 0x80:
            keep -= 1              # (never split a UTF-8 character)
        if len(enc) - keep == n:
            return enc[:keep].decode("utf-8") + tail + tag
        n = len(enc) - keep


def default_comment(record, first: int = 1) -> str:
    """``{pv} {command}``, without the PV (and its space) when it is unknown,
    then the tag (``first``: see comment_tag)."""
    text = record_repr(record)
    if record.pv is not None:
        text = f"{record.pv} {text}"
    return _fit(text, comment_tag(record, first))


def note_comment(note: str) -> str:
    """A decode problem's comment (``pcapca: TEXT``) with its tag."""
    return _fit(note, NOTE_TAG)


def _same_file(a: str, b: str) -> bool:
    if a == "-" or b == "-":
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


class _Output:
    """One pcapng output: written to a temporary file next to it and renamed
    when complete (``finish``), so that a failed run leaves no half file;
    ``-`` is standard output."""

    def __init__(self, dst: str):
        self.dst = dst
        if dst == "-":
            self.out = sys.stdout.buffer
            self.tmp_path = None
        else:
            directory = os.path.dirname(os.path.abspath(dst))
            try:
                fd, self.tmp_path = tempfile.mkstemp(prefix=".pcapca-", suffix=".pcapng.part",
                                                     dir=directory)
            except OSError as exc:   # (name OUT, not the temporary file next to it)
                raise OSError(exc.errno, f"cannot write {dst!r}: {exc.strerror}") from None
            self.out = os.fdopen(fd, "wb", buffering=1 << 20)
        self.writer = PcapngWriter(self.out, flush_each=(dst == "-"))

    def finish(self) -> None:
        self.writer.close()
        if self.tmp_path is not None:
            self.out.close()
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp_path, 0o666 & ~umask)    # as an ordinary new file
            os.replace(self.tmp_path, self.dst)
            self.tmp_path = None

    def abort(self) -> None:
        if self.tmp_path is not None:
            try:
                self.out.close()
            except OSError:
                pass
            os.unlink(self.tmp_path)
            self.tmp_path = None


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
    from .cli import UsageError
    if len(inputs) == 1:
        if _same_file(inputs[0], dst):
            raise UsageError(f"output {dst!r} is the input file: refusing to overwrite it")
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
            output = _Output(destinations[begun])
            begun += 1
        return output.writer

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
                writer.write_packet(item.packet, comments)
            elif cls is Passthrough:
                if several:             # (blocks of the file being read)
                    writer = to(len(files.starts) - 1)
                writer.write_passthrough(item)
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
        if output is not None:
            output.abort()
    if late:
        report(Problem(f"{late} messages were completed only at the end of the capture "
                       f"(data waiting behind a hole) and could not be attached to their "
                       f"packets, which were already written", kind="decode"))
    if not args.quiet:
        print(f"pcapca: {decoder.stats.summary()}", file=sys.stderr)
    return 1 if damaged else 0
