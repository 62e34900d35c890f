"""Requests a server never answered: reads, puts with completion, subscriptions, creations, echoes."""
from __future__ import annotations

from typing import Dict, List, Optional

from ..ca.commands import ANSWER_ID, REQUEST_ID, message_id, quoted_id
from ..output.jsonout import ts_string
from ..times import iso
from . import bounds
from .rows import addr


class Requests:
    """The requests waiting for their answer, per circuit (at most
    MAX_PENDING), and the groups of those never answered (at most MAX_ERRORS
    groups listed; all counted). ``capture``: the CaptureFiles."""

    def __init__(self, capture):
        self.capture = capture
        # circuit -> (id name, id) -> (request, pv, frame, ts, file index)
        self.pending: Dict[tuple, Dict[tuple, tuple]] = {}
        self.echoes: Dict[tuple, List[int]] = {}       # circuit -> [echoes sent, answered]
        # (pv, request, circuit, until, lost) -> [count, first frame, first ts,
        # first file, last frame, last ts, last file, longest wait]
        self.groups: Dict[tuple, list] = {}
        self.total = 0

    def handlers(self) -> dict:
        """After the filter: (record, its PV's row or None, its CircuitStats or None)."""
        return {cls: self._request for cls in REQUEST_ID}

    def answer_handlers(self) -> dict:
        """Before the filter (an answer counts whatever the filter: a request it
        keeps may have an answer it drops): (record, its CircuitStats)."""
        return {cls: self._answered for cls in ANSWER_ID}

    def _request(self, record, pv, circuit) -> None:
        if circuit is None:
            return
        key = circuit.key
        id_name = REQUEST_ID[record.cls]
        table = self.pending.get(key)
        if table is None:
            table = self.pending[key] = {}
        ts = record.ts
        if id_name == "echo":
            echoes = self.echoes.get(key)
            if echoes is None:
                echoes = self.echoes[key] = [0, 0]
            pending_key = ("echo", echoes[0])
            echoes[0] += 1
        else:
            pending_key = (id_name, message_id(record, id_name))
        old = table.pop(pending_key, None)
        if old is not None:                 # its answer can no longer be told apart
            self._not_answered(key, old, "its id was used again", ts)
        table[pending_key] = (record.name, record.pv, record.frame, ts, self.capture.current)
        if len(table) > bounds.MAX_PENDING:     # (memory stays bounded)
            for k in list(table)[:len(table) // 2]:
                self._not_answered(key, table.pop(k), f"over {bounds.MAX_PENDING} pending", ts)

    def _answered(self, record, circuit) -> None:
        key = circuit.key
        table = self.pending.get(key)
        if table is None:
            return
        id_name = ANSWER_ID[record.cls]
        if id_name is None:                 # an ErrorResponse: the request it quotes
            try:
                quoted = quoted_id(record.command.original_request)
            except Exception:
                return
            if quoted is None:
                return
            id_name, value = quoted
        elif id_name == "echo":
            echoes = self.echoes.get(key)
            if echoes is None or echoes[1] == echoes[0]:
                return                      # (its request was not captured)
            value = echoes[1]
            echoes[1] += 1
        else:
            value = message_id(record, id_name)
        table.pop((id_name, value), None)

    def _not_answered(self, key, entry: tuple, until: str, end: Optional[int],
                      lost: int = 0) -> None:
        name, pv, frame, ts, file_index = entry
        self.total += 1
        wait = max(end - ts, 0) if end is not None else 0
        group_key = (pv, name, key, until, lost)
        g = self.groups.get(group_key)
        if g is None:
            if len(self.groups) >= bounds.MAX_ERRORS:
                return                      # counted, not listed
            g = self.groups[group_key] = [0, frame, ts, file_index, frame, ts, file_index, wait]
        g[0] += 1
        if ts < g[2]:
            g[1:4] = frame, ts, file_index
        if ts >= g[5]:
            g[4:7] = frame, ts, file_index
        g[7] = max(g[7], wait)

    def flush(self, key, until: str, end: Optional[int], lost: int = 0) -> None:
        """The circuit ended: its requests waiting are not answered. ``lost``:
        bytes of the server's side the capture lacks (an answer may be among them)."""
        self.echoes.pop(key, None)
        for entry in self.pending.pop(key, {}).values():
            self._not_answered(key, entry, until, end, lost)

    def end(self, until: str, end: Optional[int]) -> None:
        for key in list(self.pending):
            self.flush(key, until, end)

    # ---------------------------------------------------------------- the report
    def rows(self) -> List[dict]:
        out = []
        local, path = self.capture.local, self.capture.path
        for (pv, name, key, until, lost), g in sorted(self.groups.items(),
                                                      key=lambda kv: (-kv[1][0], kv[1][2])):
            count, frame, ts, file_index, last_frame, last_ts, last_file, wait = g
            out.append({
                "pv": pv, "request": name, "count": count,
                "client": addr(key[1]), "server": addr(key[2]), "until": until,
                "first": ts_string(ts), "first_iso": iso(ts), "first_frame": local(frame),
                "first_file": path(file_index),
                "last": ts_string(last_ts), "last_iso": iso(last_ts),
                "last_frame": local(last_frame), "last_file": path(last_file),
                "longest_wait_s": wait / 1e9,
                "server_bytes_not_captured": lost,
            })
        return out
