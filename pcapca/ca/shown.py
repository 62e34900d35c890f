"""Which problem lines are shown: the first few of each kind and sender, the rest only counted."""
from __future__ import annotations

from typing import Dict, Iterator

from ..items import Problem

SHOWN_PER_KIND = 10              # problem lines shown per kind of problem and sender
KINDS_SHOWN = 100                # (kind, sender) pairs shown; further ones are only counted


class ShownProblems:
    """(kind, sender) -> problem lines shown so far (at most KINDS_SHOWN pairs);
    the problems not shown go to ``counts.unshown``."""
    __slots__ = ("counts", "lines")

    def __init__(self, counts) -> None:      # (the decoder's Counts)
        self.counts = counts
        self.lines: Dict[tuple, int] = {}

    def shown(self, problem: Problem) -> bool:
        """Is ``problem`` to be shown? The first SHOWN_PER_KIND of each kind
        (``topic``, else the same text) and sender are, then they are only
        counted (``counts.unshown``): hostile traffic or a damaged file cannot
        flood the terminal. A problem that stops the reading is always shown."""
        if problem.fatal:
            return True
        key = (problem.topic or problem.message, problem.sender)
        n = self.lines.get(key, 0)
        if n < SHOWN_PER_KIND and (n or len(self.lines) < KINDS_SHOWN):
            self.lines[key] = n + 1
            return True
        self.counts.unshown[problem.topic or f"other {problem.kind} problem"] += 1
        return False

    def only_shown(self, items) -> Iterator:
        """``items`` without the problems not to be shown."""
        for item in items:
            if item.__class__ is not Problem or self.shown(item):
                yield item
