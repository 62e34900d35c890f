"""Messages and bytes per PV, server and client; the per-PV counts and latencies."""
from __future__ import annotations

import random
from typing import Dict, List, Optional, Tuple

from caproto import (CreateChanRequest, CreateChanResponse, CreateChFailResponse, EventAddRequest,
                     EventAddResponse, ReadNotifyRequest, ReadNotifyResponse, ReadRequest,
                     ReadResponse, WriteNotifyRequest, WriteNotifyResponse, WriteRequest)

from . import bounds
from .bounds import add_bounded, fold
from .rows import Latencies, addr

# The tables fold bounds: report name -> (what their weight counts, the
# weight of a row, by which the rows with the lowest are dropped first)
FOLDED = {
    "servers": ("messages_and_search_replies", lambda s: s.messages + s.search_replies),
    "clients": ("messages", lambda c: c.messages),
    "pvs": ("messages", lambda p: p.messages),
}


class PVStats:
    __slots__ = ("searches", "search_replies", "creates", "create_failures", "reads",
                 "writes", "puts_notify", "subscriptions", "updates", "errors",
                 "messages", "bytes", "latency")

    def __init__(self, rng):
        self.searches = self.search_replies = self.creates = self.create_failures = 0
        self.reads = self.writes = self.puts_notify = self.subscriptions = 0
        self.updates = self.errors = self.messages = self.bytes = 0
        self.latency = Latencies(rng)


class ServerStats:
    __slots__ = ("circuits", "channels", "messages", "bytes", "search_replies", "errors",
                 "latency")

    def __init__(self, rng):
        self.circuits = self.channels = self.messages = self.bytes = 0
        self.search_replies = self.errors = 0
        self.latency = Latencies(rng)


class ClientStats:
    __slots__ = ("searches", "messages", "bytes", "circuits", "ports", "hosts", "users")

    def __init__(self):
        self.searches = self.messages = self.bytes = self.circuits = 0
        self.ports: Dict[int, None] = {}
        self.hosts: Dict[str, None] = {}
        self.users: Dict[str, None] = {}


def message_size(cmd) -> int:
    """Bytes of a CA message on the wire: header (16 or 24) + payload."""
    try:
        return len(cmd)
    except Exception:
        return 0


class Traffic:
    """Rows per PV, server and client (each at most MAX_ROWS: see bounds.fold)
    and the messages counted, by command class."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.counted = 0
        self.by_command: Dict[type, int] = {}
        self.pvs: Dict[str, PVStats] = {}
        self.servers: Dict[Tuple[str, int], ServerStats] = {}
        self.clients: Dict[str, ClientStats] = {}
        self.folded = {table: [0, 0] for table in FOLDED}   # [rows dropped, their weight]

    def pv(self, name: str) -> PVStats:
        s = self.pvs.get(name)
        if s is None:
            if len(self.pvs) >= bounds.MAX_ROWS:
                fold(self.pvs, FOLDED["pvs"][1], self.folded["pvs"])
            s = self.pvs[name] = PVStats(self.rng)
        return s

    def server(self, key) -> ServerStats:
        s = self.servers.get(key)
        if s is None:
            if len(self.servers) >= bounds.MAX_ROWS:
                fold(self.servers, FOLDED["servers"][1], self.folded["servers"])
            s = self.servers[key] = ServerStats(self.rng)
        return s

    def client(self, ip: str) -> ClientStats:
        s = self.clients.get(ip)
        if s is None:
            if len(self.clients) >= bounds.MAX_ROWS:
                fold(self.clients, FOLDED["clients"][1], self.folded["clients"])
            s = self.clients[ip] = ClientStats()
        return s

    def count(self, record, circuit) -> Optional[PVStats]:
        """A message that passed the filter; its PV's row (None: no PV)."""
        msg = record.msg            # (the bytes of a TCP message)
        size = len(msg) if msg is not None else message_size(record.command)
        self.counted += 1
        cls = record.cls
        self.by_command[cls] = self.by_command.get(cls, 0) + 1
        from_client = record.role == "client"
        if circuit is not None:
            side = 0 if from_client else 1
            if not circuit.counted:          # the circuit's first message that is counted
                self.server(circuit.server).circuits += 1
                c = self.client(circuit.client[0])
                c.circuits += 1
                if circuit.host is not None:
                    add_bounded(c.hosts, circuit.host, 16)
                if circuit.user is not None:
                    add_bounded(c.users, circuit.user, 16)
            circuit.counted += 1
            circuit.msgs[side] += 1
            circuit.bytes[side] += size
            server = self.server(circuit.server)
            server.messages += 1
            server.bytes += size
            client_ip = circuit.client[0]
        else:
            client_ip = record.src if from_client else None
        if from_client and client_ip is not None:
            c = self.client(client_ip)
            c.messages += 1
            c.bytes += size
            if circuit is None:
                add_bounded(c.ports, record.sport, 64)
        pv_name = record.pv
        if pv_name is None:
            return None
        pv = self.pv(pv_name)
        pv.messages += 1
        pv.bytes += size
        return pv

    # ---------------------------------------------------------------- per command
    def handlers(self) -> dict:
        """After the filter: (record, its PV's row or None, its CircuitStats or None)."""
        return {(ReadNotifyRequest, ReadRequest): self._read,
                WriteNotifyRequest: self._put_notify, WriteRequest: self._write,
                EventAddResponse: self._update, EventAddRequest: self._subscription,
                CreateChanRequest: self._create, CreateChFailResponse: self._create_failure,
                (ReadNotifyResponse, ReadResponse): self._read_latency,
                WriteNotifyResponse: self._write_latency,
                CreateChanResponse: self._create_latency}

    def _read(self, record, pv, circuit) -> None:
        if pv is not None:
            pv.reads += 1

    def _put_notify(self, record, pv, circuit) -> None:
        if pv is not None:
            pv.puts_notify += 1

    def _write(self, record, pv, circuit) -> None:
        if pv is not None:
            pv.writes += 1

    def _update(self, record, pv, circuit) -> None:
        if pv is not None:
            pv.updates += 1

    def _subscription(self, record, pv, circuit) -> None:
        if pv is not None:
            pv.subscriptions += 1

    def _create(self, record, pv, circuit) -> None:
        if pv is not None:
            pv.creates += 1
        if circuit is not None:
            circuit.channels += 1
            self.server(circuit.server).channels += 1

    def _create_failure(self, record, pv, circuit) -> None:
        if pv is not None:
            pv.create_failures += 1

    def _latency(self, kind: str, record, pv, circuit) -> None:
        """One latency sample for the PV and, when known, its server."""
        latency = record.latency
        if pv is not None and latency is not None:
            pv.latency.add(kind, latency)
            if circuit is not None:
                self.server(circuit.server).latency.add(kind, latency)

    def _read_latency(self, record, pv, circuit) -> None:
        self._latency("read", record, pv, circuit)

    def _write_latency(self, record, pv, circuit) -> None:
        self._latency("write", record, pv, circuit)

    def _create_latency(self, record, pv, circuit) -> None:
        self._latency("create", record, pv, circuit)

    # ---------------------------------------------------------------- the report
    def by_command_row(self) -> dict:
        counts: Dict[str, int] = {}
        for cls, n in self.by_command.items():
            counts[cls.__name__] = counts.get(cls.__name__, 0) + n
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def server_rows(self) -> List[dict]:
        return [{"server": addr(key), "circuits": s.circuits, "channels": s.channels,
                 "messages": s.messages, "bytes": s.bytes,
                 "search_replies": s.search_replies, "errors": s.errors,
                 "latency": s.latency.summary()}
                for key, s in sorted(self.servers.items())]

    def client_rows(self) -> List[dict]:
        out = [{"client": ip, "hosts": list(c.hosts), "users": list(c.users),
                "udp_ports": list(c.ports), "circuits": c.circuits,
                "searches": c.searches, "messages": c.messages, "bytes": c.bytes}
               for ip, c in self.clients.items()]
        out.sort(key=lambda e: (-e["messages"], e["client"]))
        return out

    def pv_rows(self) -> List[dict]:
        out = [{"pv": name, "messages": p.messages, "bytes": p.bytes,
                "searches": p.searches, "search_replies": p.search_replies,
                "creates": p.creates, "create_failures": p.create_failures,
                "reads": p.reads, "writes": p.writes, "puts_notify": p.puts_notify,
                "subscriptions": p.subscriptions, "updates": p.updates,
                "errors": p.errors, "latency": p.latency.summary()}
               for name, p in self.pvs.items()]
        out.sort(key=lambda e: (-e["messages"], e["pv"]))
        return out
