"""Shared pieces of the stats collectors: addresses, percentiles, latency reservoirs."""
from __future__ import annotations

import math
import random
from typing import Dict, List, Optional, Sequence

from ..output.jsonout import ts_string
from ..times import iso
from . import bounds

LATENCY_KINDS = ("read", "write", "search", "create")


def addr(pair) -> str:
    ip, port = pair
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p % of the
    values at or below it."""
    n = len(sorted_values)
    rank = max(1, math.ceil(p / 100.0 * n))
    return sorted_values[min(rank, n) - 1]


def c_text(raw) -> str:
    """Text of a CA string field: up to its first NUL, stripped."""
    return bytes(raw).split(b"\0", 1)[0].decode("latin-1").strip()


def t(ts: Optional[int]) -> Optional[str]:
    return None if ts is None else ts_string(ts)


def iso_or_none(ts: Optional[int]) -> Optional[str]:
    return None if ts is None else iso(ts)


class Reservoir:
    """Up to ``RESERVOIR_SIZE`` values chosen uniformly (Algorithm R); exact count and max."""
    __slots__ = ("count", "max", "values", "_rng")

    def __init__(self, rng: random.Random):
        self.count = 0
        self.max = None
        self.values: List[float] = []
        self._rng = rng

    def add(self, value: float) -> None:
        self.count += 1
        if self.max is None or value > self.max:
            self.max = value
        if len(self.values) < bounds.RESERVOIR_SIZE:
            self.values.append(value)
        else:
            j = self._rng.randrange(self.count)
            if j < bounds.RESERVOIR_SIZE:
                self.values[j] = value

    def summary(self) -> dict:
        values = sorted(self.values)
        return {"count": self.count, "p50": percentile(values, 50),
                "p95": percentile(values, 95), "max": self.max,
                "sampled": self.count > len(values)}


class Latencies:
    """A reservoir per latency kind, made on first use."""
    __slots__ = ("kinds", "_rng")

    def __init__(self, rng):
        self.kinds: Dict[str, Reservoir] = {}
        self._rng = rng

    def add(self, kind: str, value: float) -> None:
        r = self.kinds.get(kind)
        if r is None:
            r = self.kinds[kind] = Reservoir(self._rng)
        r.add(value)

    def summary(self) -> dict:
        return {k: self.kinds[k].summary() for k in LATENCY_KINDS if k in self.kinds}
