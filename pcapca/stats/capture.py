"""What the stats report says of the capture files: packets and first/last time per file."""
from __future__ import annotations

from typing import List, Optional

from ..items import Packet


class CaptureFiles:
    """The files read so far, as report rows, and which one is being read.
    ``frames``: the capture set's frame map (file of a frame, its number there)."""

    def __init__(self):
        self.frames = None
        self.files: List[dict] = []
        self.current = 0
        self.input_done = False

    def start(self, frames) -> None:
        self.frames = frames

    def see(self, item) -> None:
        """A reader item: the file it is in has begun; a packet is counted."""
        begun = len(self.frames.starts)
        if len(self.files) < begun:
            self._begin(begun)
        if item.__class__ is Packet:
            info = self.files[-1]
            info["packets"] += 1
            if info["first"] is None:
                info["first"] = item.ts
            info["last"] = item.ts

    def _begin(self, begun: int) -> None:
        while len(self.files) < begun:
            self.files.append({"path": self.frames.paths[len(self.files)], "packets": 0,
                               "first": None, "last": None})
        self.current = begun - 1

    def name(self) -> Optional[str]:
        """The path of the file being read."""
        return self.files[self.current]["path"] if self.files else None

    def path(self, index: int) -> Optional[str]:
        return self.files[index]["path"] if self.files else None

    def local(self, frame: int) -> int:
        """A frame's number in its own file (frames are numbered across the files)."""
        return frame if self.frames is None else self.frames.local(frame)

    def done(self) -> None:
        """The reader's items ended: the whole capture was read."""
        self.input_done = True
        self.end()

    def end(self) -> None:
        """Reading stopped: every file begun has its row (an empty one too)."""
        if self.frames is not None:
            self._begin(len(self.frames.starts))
