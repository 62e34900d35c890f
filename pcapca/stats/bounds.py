"""The bounds of the stats tables, and the two helpers that keep them.

Collectors read these as ``bounds.NAME`` when a table grows, so a test can
lower one with monkeypatch.
"""
from __future__ import annotations

from typing import Callable

from ..ca.channels import MAX_PENDING  # noqa: F401  (requests / live subscriptions per circuit)

RESERVOIR_SIZE = 10_000      # latency samples kept per PV/server and kind
MAX_CLIENTS_LISTED = 1_000   # clients kept per searched name / per conflicting server
MAX_ERRORS = 10_000          # error entries kept (all are counted)
MAX_CIRCUITS_KEPT = 100_000  # closed circuits kept for the report (the rest are summed)
MAX_ROWS = 50_000            # rows per table of names/servers/clients/beacon servers (see fold)
MAX_HOST_PORTS = 256         # server ports kept per beacon host (other_ports_of_host)
MAX_BINS = 20_000            # timeline bins kept (--plot); coarsened x10 beyond
SEED = 0x5CA                 # reservoir sampling seed (deterministic reports)


def fold(table: dict, weight: Callable, folded: list) -> None:
    """Make room in a table of MAX_ROWS rows (a heavy-hitters bound): drop
    the half with the lowest ``weight`` (the oldest first among equals) and
    add to ``folded`` [rows dropped, their summed weight]. One sort per
    MAX_ROWS / 2 new rows."""
    order = sorted(table, key=lambda k: weight(table[k]))    # (stable: oldest first)
    for k in order[:len(table) - MAX_ROWS // 2]:
        folded[0] += 1
        folded[1] += weight(table.pop(k))


def add_bounded(d: dict, key, limit: int) -> bool:
    """Add ``key`` to the ordered set ``d`` if there is room; True if new."""
    if key in d:
        return False
    if len(d) < limit:
        d[key] = None
    return True
