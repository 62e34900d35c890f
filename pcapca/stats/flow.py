"""Flow control: circuits whose receiver stopped reading (TCP zero window, CA's EventsOff)."""
from __future__ import annotations

from typing import List

from caproto import EventsOffRequest, EventsOnRequest

from ..output.jsonout import ts_string
from ..times import iso
from .rows import addr


def handlers() -> dict:
    """Before the filter (the client's flow control is a fact of the circuit):
    (record, its CircuitStats, whose events_off/off_since/off_ns they keep)."""
    return {EventsOffRequest: _events_off, EventsOnRequest: _events_on}


def _events_off(record, circuit) -> None:
    circuit.events_off += 1                  # the client can't keep up: no more updates
    if circuit.off_since is None:
        circuit.off_since = record.ts


def _events_on(record, circuit) -> None:
    if circuit.off_since is not None:
        circuit.off_ns += max(0, record.ts - circuit.off_since)
        circuit.off_since = None


def _stall(s):
    if s is None:
        return None
    return {"episodes": s.episodes, "total_s": s.total_ns / 1e9,
            "longest_s": s.longest_ns / 1e9,
            "first": ts_string(s.first_ts), "first_iso": iso(s.first_ts)}


def rows(closed) -> List[dict]:
    """The closed circuits (CircuitStats) where a side stopped reading (a TCP
    zero window) or the client turned the server's updates off (EventsOff)."""
    out = []
    for c in sorted(closed, key=lambda c: c.number):
        if c.stalls == (None, None) and not c.events_off:
            continue
        out.append({
            "number": c.number, "client": addr(c.client), "server": addr(c.server),
            "client_not_reading": _stall(c.stalls[0]),
            "server_not_reading": _stall(c.stalls[1]),
            "events_off": c.events_off, "events_off_s": c.off_ns / 1e9,
        })
    return out
