"""The --plot timeline: message counts per time bin and kind, and the searches never answered."""
from __future__ import annotations

from typing import Dict, List

from ..ca.commands import KINDS
from . import bounds

FIRST_BIN_NS = 10 * 10**6    # timeline resolution to start with (10 ms)


class Timeline:
    """Message counts per time bin and kind, for --plot. The bin width starts
    at FIRST_BIN_NS and grows x10 whenever there would be more than MAX_BINS."""

    def __init__(self):
        self.width = FIRST_BIN_NS
        self.bins: Dict[int, List[int]] = {}
        self.pending: Dict[str, Dict[int, int]] = {}   # name -> bin -> searches not answered (yet)
        self.answered_names: Dict[str, None] = {}   # (ordered: the oldest are forgotten first)

    def add(self, ts: int, kind: int) -> None:
        idx = ts // self.width
        row = self.bins.get(idx)
        if row is None:
            if len(self.bins) >= bounds.MAX_BINS:
                self._coarsen()
                idx = ts // self.width
                row = self.bins.get(idx)
            if row is None:
                row = self.bins[idx] = [0] * len(KINDS)
        row[kind] += 1

    def search(self, ts: int, name: str) -> None:
        if name in self.answered_names:
            return
        bins = self.pending.get(name)
        if bins is None:
            if len(self.pending) >= bounds.MAX_ROWS:
                self._fold_pending()
            bins = self.pending[name] = {}
        idx = ts // self.width
        bins[idx] = bins.get(idx, 0) + 1

    def answered(self, name: str) -> None:
        if name not in self.answered_names:
            if len(self.answered_names) >= bounds.MAX_ROWS:    # (a name forgotten counts again)
                for old in list(self.answered_names)[:bounds.MAX_ROWS // 2]:
                    del self.answered_names[old]
            self.answered_names[name] = None
        self.pending.pop(name, None)

    def _fold_pending(self) -> None:
        """Past MAX_ROWS names: the searches of the oldest half are summed
        under None, as never answered (even if the name is answered later)."""
        other = self.pending.pop(None, {})
        for name in list(self.pending)[:bounds.MAX_ROWS // 2]:
            for idx, n in self.pending.pop(name).items():
                other[idx] = other.get(idx, 0) + n
        self.pending[None] = other

    def _coarsen(self) -> None:
        self.width *= 10
        merged: Dict[int, List[int]] = {}
        for idx, row in self.bins.items():
            m = merged.get(idx // 10)
            if m is None:
                merged[idx // 10] = list(row)
            else:
                for i, v in enumerate(row):
                    m[i] += v
        self.bins = merged
        for name, bins in self.pending.items():
            new: Dict[int, int] = {}
            for idx, n in bins.items():
                new[idx // 10] = new.get(idx // 10, 0) + n
            self.pending[name] = new

    def unanswered(self) -> Dict[int, int]:
        out: Dict[int, int] = {}
        for bins in self.pending.values():
            for idx, n in bins.items():
                out[idx] = out.get(idx, 0) + n
        return out
