"""A progress bar on stderr (tqdm), only when stderr is a terminal and the
input is a regular file whose size is known."""
from __future__ import annotations

import os
import sys

from ..escape import printable
from .sources import ByteSource, open_source


class Progress:
    """Wraps the capture's ByteSource; ``update()`` is cheap to call often."""
    EVERY = 4096

    def __init__(self, src: ByteSource, bar):
        self.src = src
        self._bar = bar
        self._n = 0

    @property
    def active(self) -> bool:
        """Is a bar shown? (callers may skip ``update`` when not)"""
        return self._bar is not None

    def update(self) -> None:
        self._n += 1
        if self._bar is not None and self._n % self.EVERY == 0:
            self._bar.update(self.src.offset - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.update(self.src.offset - self._bar.n)
            self._bar.close()


def open_with_progress(path: str, *, enabled: bool = True) -> Progress:
    src = open_source(path)
    bar = None
    if enabled and path != "-" and sys.stderr.isatty():
        try:
            size = os.path.getsize(path)
        except OSError:
            size = None
        if size:
            from tqdm import tqdm     # (only for a bar: its import costs ~50 ms of start-up)
            bar = tqdm(total=size, unit="B", unit_scale=True, leave=False,
                       desc=printable(os.path.basename(path)), file=sys.stderr)
    return Progress(src, bar)
