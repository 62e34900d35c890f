"""Several captures read in order as one (``pcapca print a.pcapng b.pcapng``).

A capture rotated by ``tcpdump -C/-W`` or ``dumpcap -b`` is a set of files
that together hold one stretch of traffic: a channel created in the first
file is monitored in the next. Read one by one, the later files would lose
the PV names, the request/reply pairs and the TCP circuits that began
before them; read through this module, the decoder and the channel state
see one stream of packets.

Frames are numbered across the files, as ``mergecap -a`` would number the
packets of the files joined in this order (so ``{frame}`` and
``{request_frame}`` name one packet each); ``FileFrames`` says in which file a
frame is and what its number is there, which is what Wireshark shows when
that file is opened (``{file}``, ``{file_frame}``). Problems name their file
and count frames and byte offsets from its start, as ``pcapca stats`` does.
"""
from __future__ import annotations

import bisect
import dataclasses
import os
import stat
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from ..items import Packet, Problem
from ..times import iso
from .bulk import Skim
from .reader import labelled, offsets_in, probe, read_capture
from .sources import ByteSource


@dataclasses.dataclass
class FileSummary:
    """One file of a set as read: its packets (those the shortcut skipped
    included) and the time stamps of its first and last packet yielded."""
    path: str
    packets: int = 0
    first: Optional[int] = None
    last: Optional[int] = None


class FileFrames:
    """Where each file's frames start in the numbering across the files, and
    what was read of each (``read_captures`` fills it as it reads)."""

    def __init__(self, paths: Sequence[str]):
        self.paths = [str(p) for p in paths]
        self.starts: List[int] = [1]        # first frame of each file read so far
        self.offsets: List[str] = []        # what each file's byte offsets count
        self.summaries: List[FileSummary] = []   # of each file read so far
        self.several = len(self.paths) > 1

    @property
    def current(self) -> int:
        """The index of the file being read (the last one begun)."""
        return len(self.starts) - 1

    def index(self, frame: int) -> int:
        return bisect.bisect_right(self.starts, frame) - 1 if self.several else 0

    def name(self, frame: int) -> str:
        """The path (as given) of the file that holds ``frame``."""
        return self.paths[self.index(frame)]

    def local(self, frame: int) -> int:
        """``frame``'s number in its own file."""
        return frame - self.starts[self.index(frame)] + 1 if self.several else frame

    def locate(self, frame: int) -> Tuple[str, int]:
        i = self.index(frame)
        return self.paths[i], frame - self.starts[i] + 1

    def label(self, problem: Problem, current: int) -> Problem:
        """``problem`` told in the terms of one file: its path, its frame
        number there. A problem with a frame is in that frame's file, one
        without (a reader's count of lost packets) in file ``current``.
        (Of a single file: only what its byte offsets count.)"""
        if not self.several:
            return labelled(problem, self.offsets[0]) if self.offsets else problem
        if problem.source:
            return problem
        i = current if problem.frame is None else self.index(problem.frame)
        frame = None if problem.frame is None else problem.frame - self.starts[i] + 1
        problem = dataclasses.replace(problem, source=self.paths[i], frame=frame)
        return labelled(problem, self.offsets[i]) if i < len(self.offsets) else problem


def probe_all(paths: Sequence[str]) -> None:
    """Raise (CaptureFormatError, OSError) for the first file of ``paths``
    that cannot be read as a capture, before any is read: not at the 10th.
    A pipe (``-``, ``<(tcpdump ...)``, a FIFO) is not opened here: what a
    probe read from it would be lost to the reading that follows."""
    for path in paths:
        if path == "-" or not stat.S_ISREG(os.stat(path).st_mode):
            continue                  # (a pipe: read once, when its turn comes)
        with open(path, "rb") as f:
            probe(ByteSource(f, path))


def read_captures(files: FileFrames, *, opener: Callable, strict: bool = False,
                  skim: Optional[Skim] = None) -> Iterator:
    """The items of ``files``' captures in order, frames numbered across them
    (``files.starts`` grows as each file begins, ``files.summaries`` as each
    ends), problems labelled with their file (``FileFrames.label``).
    ``opener(path)``: a ``capture.progress.Progress`` for the file (its bar
    moves per packet); ``skim``: the filtered print's shortcut, or None."""
    frame = 1
    last = None                 # (time stamp, path) of the latest packet of the files before
    for i, path in enumerate(files.paths):
        progress = opener(path)
        tick = progress.update if progress.active else None
        src = progress.src
        files.offsets.append(offsets_in(src))
        if i:
            files.starts.append(frame)
        skipped = skim.skipped if skim is not None else 0
        taken = 0
        latest = None
        summary = FileSummary(path)
        files.summaries.append(summary)
        ts = None
        try:
            for item in read_capture(src, strict=strict, skim=skim, first_frame=frame):
                cls = item.__class__
                if cls is Packet:
                    ts = item.ts
                    if not taken:
                        summary.first = ts
                        if last is not None and ts < last[0]:
                            yield files.label(_out_of_order(item, last), i)
                    taken += 1
                    if latest is None or ts > latest:
                        latest = ts
                    if tick is not None:
                        tick()
                elif cls is Problem:
                    item = files.label(item, i)
                yield item
        finally:
            # (the packets the skimmer accounted for were not yielded)
            summary.packets = taken + (skim.skipped - skipped if skim is not None else 0)
            summary.last = ts
        progress.close()
        if latest is not None and (last is None or latest > last[0]):
            last = (latest, path)
        frame += summary.packets


def _out_of_order(packet: Packet, last: Tuple[int, str]) -> Problem:
    """The note that a file's first packet is older than the latest one of
    the files before it (``last``: its time stamp and file)."""
    return Problem(f"its first packet ({iso(packet.ts)}) is older than the last one of "
                   f"{last[1]} ({iso(last[0])}): the files are not in time order, or they "
                   f"overlap; they are read in the order given (a tcpdump -C set sorts right "
                   f"with ls -v)", frame=packet.frame, kind="order")
