"""TCP circuits: who, how long, how much each way, who closed them; the client's names."""
from __future__ import annotations

from typing import Dict, List, Optional

from caproto import ClientNameRequest, HostNameRequest

from ..ca.channels import c_name
from ..ca.tcp_circuits import IDLE_NS
from ..output.jsonout import ts_string
from ..times import iso
from . import bounds
from .bounds import add_bounded
from .rows import addr, c_text, iso_or_none, t


class CircuitStats:
    __slots__ = ("key", "number", "client", "server", "host", "user", "start", "last",
                 "end", "state", "ended_by", "channels", "msgs", "bytes", "counted", "lost",
                 "stalls", "events_off", "off_since", "off_ns")

    def __init__(self, key, ts):
        self.key = key
        self.number, self.client, self.server = key
        self.host = self.user = None
        self.start = ts
        self.last = ts
        self.end = None
        self.state = "open"
        self.ended_by = None         # who sent the first FIN or RST ("client FIN"...)
        self.channels = 0
        self.msgs = [0, 0]           # [client -> server, server -> client]
        self.bytes = [0, 0]
        self.counted = 0             # messages that passed the filter
        self.lost = (0, 0)           # bytes the capture lacks, each way (known at the close)
        self.stalls = (None, None)   # events.Stall of the client, of the server (at the close)
        self.events_off = 0          # EventsOffRequests (the client's CA flow control)
        self.off_since = None        # the time of the one in force
        self.off_ns = 0              # time with events off


def _name(cmd) -> str:
    try:
        value = cmd.name
    except Exception:
        return "?"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return c_text(value)
    return c_name(str(value))


def _closed_text(ended_by: Optional[str]) -> str:
    """'circuit closed by the server', 'circuit reset by the client'... from
    the decoder's "server FIN", "client RST"."""
    if ended_by is None:
        return "circuit closed"
    who, how = ended_by.split()
    return f"circuit {'reset' if how == 'RST' else 'closed'} by the {who}"


class Circuits:
    """Live circuits by key; closed ones (at most MAX_CIRCUITS_KEPT, the rest
    counted), with a filter only those with a message that passed it. When a
    circuit ends, its ``requests`` and ``subscriptions`` waiting end too."""

    def __init__(self, capture, traffic, requests, subscriptions, filtered: bool):
        self.capture = capture
        self.traffic = traffic
        self.requests = requests
        self.subscriptions = subscriptions
        self.filtered = filtered
        self.live: Dict[tuple, CircuitStats] = {}
        self.closed: List[CircuitStats] = []
        self.dropped = 0
        self.last_packet_ts: Optional[int] = None

    def of(self, record) -> CircuitStats:
        """The circuit of a TCP message (made on its first)."""
        key = record.circuit
        circuit = self.live.get(key)
        if circuit is None:
            circuit = self.live[key] = CircuitStats(key, record.ts)
        circuit.last = record.ts
        return circuit

    def handlers(self) -> dict:
        """Before the filter (the client's names are facts of the circuit):
        (record, its CircuitStats)."""
        return {HostNameRequest: self._host, ClientNameRequest: self._user}

    def _host(self, record, circuit) -> None:
        circuit.host = _name(record.command)
        if circuit.counted:
            add_bounded(self.traffic.client(circuit.client[0]).hosts, circuit.host, 16)

    def _user(self, record, circuit) -> None:
        circuit.user = _name(record.command)
        if circuit.counted:
            add_bounded(self.traffic.client(circuit.client[0]).users, circuit.user, 16)

    def close(self, key, lost=(0, 0), stalls=(None, None), ended_by=None) -> None:
        c = self.live.pop(key, None)
        if c is None:
            return
        c.lost = lost
        c.stalls = stalls
        c.ended_by = ended_by
        if self.capture.input_done:
            c.state = "open"                 # still open when the capture ended
            until, end = "capture ended", self.capture.files[-1]["last"]
        elif self.last_packet_ts is not None and self.last_packet_ts - c.last > IDLE_NS:
            c.state = "idle"                 # dropped by the decoder after IDLE_NS of silence
            c.end = c.last
            until, end = "circuit idle", c.end
        else:
            c.state = "closed"
            c.end = self.last_packet_ts if self.last_packet_ts is not None else c.last
            until, end = _closed_text(ended_by), c.end
        if c.off_since is not None:          # events still off at the end
            c.off_ns += max(0, (end if end is not None else c.last) - c.off_since)
            c.off_since = None
        self.requests.flush(key, until, end, lost[1])
        self.subscriptions.circuit_closed(key, until, end)
        self._keep(c)

    def _keep(self, c: CircuitStats) -> None:
        if self.filtered and not c.counted:
            return
        if len(self.closed) < bounds.MAX_CIRCUITS_KEPT:
            self.closed.append(c)
        else:
            self.dropped += 1

    def end(self) -> None:
        """Circuits the decoder did not close: reading stopped early (--strict)."""
        for c in list(self.live.values()):
            self._keep(c)
        self.live.clear()

    def rows(self) -> List[dict]:
        out = []
        for c in sorted(self.closed, key=lambda c: c.number):
            out.append({
                "number": c.number, "client": addr(c.client), "server": addr(c.server),
                "host": c.host, "user": c.user,
                "start": ts_string(c.start), "start_iso": iso(c.start),
                "end": t(c.end), "end_iso": iso_or_none(c.end), "state": c.state,
                "closed_by": c.ended_by,
                "channels": c.channels,
                "messages_to_server": c.msgs[0], "messages_to_client": c.msgs[1],
                "bytes_to_server": c.bytes[0], "bytes_to_client": c.bytes[1],
                "bytes_not_captured_to_server": c.lost[0],
                "bytes_not_captured_to_client": c.lost[1],
            })
        return out
