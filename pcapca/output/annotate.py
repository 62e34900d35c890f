"""What goes into an annotated pcapng: every packet unchanged, with one comment per CA message it completes."""
from __future__ import annotations

from typing import Callable, Iterable, Tuple

from ..ca.records import Decoded
from ..items import Passthrough, Problem
from .comments import note_comment


def write_annotated(items: Iterable, writer_of: Callable, failed: Callable, *, files,
                    comment: Callable, flt=None, keep_all: bool = False, strict: bool = False,
                    tick=None, report: Callable[[Problem], None]) -> Tuple[bool, int, bool]:
    """Write ``items`` (``pipeline.decode_captures``'): each packet with one
    comment per CA message that ``flt`` keeps (only the packets with one,
    unless ``keep_all``), every other pcapng block as it is, to
    ``writer_of(index)``: the pcapng writer of input file ``index`` of
    ``files``. A failed write raises ``failed(exc)``; problems go to
    ``report``. Returns (damaged, late, stopped): a capture problem was
    seen; the messages completed only after their packet was written;
    ``strict`` stopped at a problem (the output is not to be kept)."""
    several = files.several
    damaged = False
    late = 0
    if not several:
        writer = writer_of(0)
    for item in items:
        cls = item.__class__
        if cls is Decoded:
            if tick is not None:
                tick()
            if item.late:
                late += len(item.records)
                continue
            if several:
                writer = writer_of(files.index(item.packet.frame))
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
                raise failed(exc) from None
        elif cls is Passthrough:
            if several:             # (blocks of the file being read)
                writer = writer_of(len(files.starts) - 1)
            try:
                writer.write_passthrough(item)
            except OSError as exc:
                raise failed(exc) from None
        elif cls is Problem:
            if item.kind == "capture":
                damaged = True
            report(item)
            if strict and item.stops_strict:
                return True, late, True       # --strict: the first problem fails the run
    return damaged, late, False
