"""Subscriptions (EventAddRequest) and the updates each got: the monitors that went silent."""
from __future__ import annotations

from typing import Dict, List, Optional

from caproto import EventAddRequest, EventAddResponse, EventCancelRequest

from ..ca.commands import message_id
from ..output.jsonout import ts_string
from ..output.values import type_name
from . import bounds
from .rows import addr, t


class SubStats:
    """One subscription and the updates it got."""
    __slots__ = ("pv", "circuit", "data_type", "start", "frame", "file", "updates", "first",
                 "last", "gap", "gap_at")

    def __init__(self, record, circuit, file_index):
        self.pv = record.pv
        self.circuit = circuit               # CircuitStats
        self.data_type = record.fields[2]
        self.start = record.ts
        self.frame = record.frame
        self.file = file_index
        self.updates = 0
        self.first = self.last = None        # times of the first and the last update
        self.gap = 0                         # longest wait for an update (from the request)
        self.gap_at = None                   # when that wait began

    def update(self, ts: int) -> None:
        since = self.start if self.last is None else self.last
        if ts - since > self.gap:
            self.gap, self.gap_at = ts - since, since
        if self.first is None:
            self.first = ts
        self.last = ts
        self.updates += 1


class Subscriptions:
    """Live subscriptions by circuit and subscription id (at most MAX_PENDING
    per circuit), ended ones as report rows (at most MAX_ERRORS; all counted)."""

    def __init__(self, capture):
        self.capture = capture
        self.live: Dict[tuple, Dict[int, SubStats]] = {}
        self.rows: List[dict] = []
        self.total = 0

    def handlers(self) -> dict:
        """After the filter: (record, its PV's row or None, its CircuitStats or None)."""
        return {EventAddRequest: self._subscribe}

    def update_handlers(self) -> dict:
        """Before the filter (a subscription's updates and its cancel count
        whatever the filter): (record, its CircuitStats)."""
        return {EventAddResponse: self._update, EventCancelRequest: self._cancel}

    def _subscribe(self, record, pv, circuit) -> None:
        if circuit is None:
            return
        subs = self.live.get(circuit.key)
        if subs is None:
            subs = self.live[circuit.key] = {}
        sid = message_id(record, "subscriptionid")
        old = subs.pop(sid, None)
        if old is not None:
            self.ended(old, "its id was used again", record.ts)
        subs[sid] = SubStats(record, circuit, self.capture.current)
        if len(subs) > bounds.MAX_PENDING:      # (memory stays bounded)
            for k in list(subs)[:len(subs) // 2]:
                self.ended(subs.pop(k), f"over {bounds.MAX_PENDING} live", record.ts)

    def _update(self, record, circuit) -> None:
        subs = self.live.get(circuit.key)
        if subs is not None:
            sub = subs.get(message_id(record, "subscriptionid"))
            if sub is not None:
                sub.update(record.ts)

    def _cancel(self, record, circuit) -> None:
        subs = self.live.get(circuit.key)
        if subs is not None:
            sub = subs.pop(message_id(record, "subscriptionid"), None)
            if sub is not None:
                self.ended(sub, "cancelled", record.ts)

    def ended(self, sub: SubStats, until: str, end: Optional[int]) -> None:
        self.total += 1
        if len(self.rows) >= bounds.MAX_ERRORS:
            return                          # counted, not listed
        quiet_since = sub.last if sub.last is not None else sub.start
        if end is None:
            end = quiet_since
        silent = max(0, end - quiet_since)
        c = sub.circuit
        self.rows.append({
            "pv": sub.pv, "client": addr(c.client), "server": addr(c.server),
            "circuit": c.number,
            "data_type": type_name(sub.data_type),
            "start": ts_string(sub.start), "start_frame": self.capture.local(sub.frame),
            "start_file": self.capture.path(sub.file),
            "updates": sub.updates, "first_update": t(sub.first), "last_update": t(sub.last),
            "longest_gap_s": sub.gap / 1e9, "longest_gap_from": t(sub.gap_at),
            "silent_at_end_s": silent / 1e9, "ended": until, "end": t(end),
        })

    def circuit_closed(self, key, until: str, end: Optional[int]) -> None:
        for sub in self.live.pop(key, {}).values():
            self.ended(sub, until, end)

    def end(self, until: str, end: Optional[int]) -> None:
        for subs in self.live.values():
            for sub in subs.values():
                self.ended(sub, until, end)
        self.live.clear()

    def report_rows(self) -> List[dict]:
        return sorted(self.rows, key=lambda r: (
            -max(r["longest_gap_s"], r["silent_at_end_s"]), r["circuit"], r["start"]))
