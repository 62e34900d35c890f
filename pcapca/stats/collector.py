"""``pcapca stats``: a health report of the CA traffic in one or more captures.

One pass over the decoded messages, aggregating as it goes (see
docs/stats.md): unanswered searches, requests never answered (reads, puts
with completion, subscriptions, channel creations), PV names answered by several servers,
TCP circuits, per-PV counts and latency percentiles, servers, clients,
errors, beacons and IOC restarts. Nothing is kept per message except

* latency samples: a bounded reservoir per PV/server and kind
  (``RESERVOIR_SIZE`` values, reservoir sampling with a fixed seed, so the
  same input gives the same report; count and max are exact);
* error entries, up to ``MAX_ERRORS`` (all are counted);
* the requests waiting for their answer (up to ``MAX_PENDING`` per
  circuit), and rows of the unanswered ones, up to ``MAX_ERRORS``;
* with ``--plot``, a binned timeline (at most ``MAX_BINS`` bins, coarsened
  as the capture grows).

Every table per name, server, client or beacon server holds at most
``MAX_ROWS`` rows: past that, the half with the lowest counts is folded into
a total (``not_kept`` in the report; see docs/stats.md, "Bounds").

Usage from Python::

    from pcapca.stats import collect
    report = collect(["a.pcap", "b.pcap"])      # a JSON-able dict

"""
from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections import Counter
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..ca._caproto import CLIENT, command_class, eca_value_to_status, reads_status_from_header
from ..ca.channels import MAX_PENDING, ChannelTracker, c_name, message_id, quoted_id
from ..ca.circuits import IDLE_NS, Decoder
from ..ca.records import Decoded
from ..capture.reader import labelled, offsets_in, read_capture
from ..items import CircuitClosed, Packet, Problem
from ..output.jsonout import ts_string
from ..output.values import type_name
from ..times import iso

RESERVOIR_SIZE = 10_000      # latency samples kept per PV/server and kind
MAX_CLIENTS_LISTED = 1_000   # clients kept per searched name / per conflicting server
MAX_ERRORS = 10_000          # error entries kept (all are counted)
MAX_CIRCUITS_KEPT = 100_000  # closed circuits kept for the report (the rest are summed)
MAX_ROWS = 50_000            # rows per table of names/servers/clients/beacon servers (see _fold)
MAX_HOST_PORTS = 256         # server ports kept per beacon host (other_ports_of_host)
BEACON_COPY_NS = 250 * 10**6  # the same beacon id of a server again within this: a copy
MAX_BINS = 20_000            # timeline bins kept (--plot); coarsened x10 beyond
FIRST_BIN_NS = 10 * 10**6    # timeline resolution to start with (10 ms)
SEED = 0x5CA                 # reservoir sampling seed (deterministic reports)

ANY_ADDRESS = ("255.255.255.255", "0.0.0.0")
LATENCY_KINDS = ("read", "write", "search", "create")
TIMELINE_KINDS = ("search", "search reply", "read", "write", "monitor", "beacon", "other")
# Requests a server must answer, by the id its answer carries (unanswered
# requests), and the answers: an ErrorResponse answers the request it quotes
# (channels.quoted_id); an EchoResponse answers the circuit's oldest
# EchoRequest (they carry no id).
_REQUEST_ID = {"ReadNotifyRequest": "ioid", "ReadRequest": "ioid", "WriteNotifyRequest": "ioid",
               "EventAddRequest": "subscriptionid", "CreateChanRequest": "cid",
               "EchoRequest": "echo"}
_ANSWER_ID = {"ReadNotifyResponse": "ioid", "ReadResponse": "ioid", "WriteNotifyResponse": "ioid",
              "EventAddResponse": "subscriptionid", "EventCancelResponse": "subscriptionid",
              "CreateChanResponse": "cid", "CreateChFailResponse": "cid", "ErrorResponse": None,
              "EchoResponse": "echo"}
# The tables _fold bounds: report name -> (what their weight counts, the
# weight of a row, by which the rows with the lowest are dropped first)
_FOLDED = {
    "searched_names": ("searches", lambda s: s.searches),
    "answers": ("search_replies", lambda servers: sum(a.replies for a in servers.values())),
    "servers": ("messages_and_search_replies", lambda s: s.messages + s.search_replies),
    "clients": ("messages", lambda c: c.messages),
    "pvs": ("messages", lambda p: p.messages),
    "beacons": ("beacons", lambda b: b.count),
}
_TIMELINE_KIND = {
    "SearchRequest": "search", "SearchResponse": "search reply", "NotFoundResponse": "search reply",
    "ReadNotifyRequest": "read", "ReadNotifyResponse": "read", "ReadRequest": "read",
    "ReadResponse": "read", "WriteRequest": "write", "WriteNotifyRequest": "write",
    "WriteNotifyResponse": "write", "EventAddResponse": "monitor", "Beacon": "beacon",
}


# ------------------------------------------------------------------ helpers

def addr(pair) -> str:
    ip, port = pair
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p % of the
    values at or below it."""
    n = len(sorted_values)
    rank = max(1, math.ceil(p / 100.0 * n))
    return sorted_values[min(rank, n) - 1]


def message_size(cmd) -> int:
    """Bytes of a CA message on the wire: header (16 or 24) + payload."""
    try:
        return len(cmd)
    except Exception:
        return 0


def _status(cmd):
    try:
        return cmd.status
    except Exception:
        return None


def _status_name(status) -> Optional[str]:
    if status is None:
        return None
    return getattr(status, "name", None) or str(status)


def _text(raw) -> str:
    return bytes(raw).split(b"\0", 1)[0].decode("latin-1").strip()


def _name(cmd) -> str:
    try:
        value = cmd.name
    except Exception:
        return "?"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _text(value)
    return c_name(str(value))


def _add_latency(kind: str, latency, pv, server) -> None:
    """One latency sample for the PV and, when known, its server."""
    if latency is not None:
        pv.latency.add(kind, latency)
        if server is not None:
            server.latency.add(kind, latency)


class Reservoir:
    """Up to ``size`` values chosen uniformly (Algorithm R); exact count and max."""
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
        if len(self.values) < RESERVOIR_SIZE:
            self.values.append(value)
        else:
            j = self._rng.randrange(self.count)
            if j < RESERVOIR_SIZE:
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


# ------------------------------------------------------------------ aggregates
class SearchedName:
    __slots__ = ("searches", "clients", "clients_total", "first", "last", "answered",
                 "not_found", "not_found_by")

    def __init__(self, ts):
        self.searches = 0
        self.clients: Dict[str, None] = {}
        self.clients_total = 0
        self.first = ts
        self.last = ts
        self.answered = 0
        self.not_found = 0
        self.not_found_by: Dict[str, None] = {}


class Answer:
    __slots__ = ("replies", "first", "last", "clients")

    def __init__(self, ts):
        self.replies = 0
        self.first = ts
        self.last = ts
        self.clients: Dict[str, None] = {}


class PVStats:
    __slots__ = ("searches", "search_replies", "creates", "create_failures", "reads",
                 "writes", "puts_notify", "subscriptions", "updates", "errors",
                 "messages", "bytes", "latency")

    def __init__(self, rng):
        self.searches = self.search_replies = self.creates = self.create_failures = 0
        self.reads = self.writes = self.puts_notify = self.subscriptions = 0
        self.updates = self.errors = self.messages = self.bytes = 0
        self.latency = Latencies(rng)


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


class SubStats:
    """One subscription (EventAddRequest) and the updates it got."""
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


class BeaconServer:
    __slots__ = ("count", "copies", "first", "last", "first_id", "last_id", "recent",
                 "intervals", "senders", "restarts", "prev_ts")

    def __init__(self, ts, rng):
        self.count = self.copies = 0
        self.first = self.last = ts
        self.first_id = self.last_id = None
        self.recent: List[Tuple[int, int]] = []     # (beacon id, ts) of the last few beacons
        self.intervals = Reservoir(rng)
        self.senders: Dict[str, None] = {}
        self.restarts: List[dict] = []
        self.prev_ts = None


def _fold(table: dict, weight: Callable, folded: list) -> None:
    """Make room in a table of MAX_ROWS rows (a heavy-hitters bound): drop
    the half with the lowest ``weight`` (the oldest first among equals) and
    add to ``folded`` [rows dropped, their summed weight]. One sort per
    MAX_ROWS / 2 new rows."""
    order = sorted(table, key=lambda k: weight(table[k]))    # (stable: oldest first)
    for k in order[:len(table) - MAX_ROWS // 2]:
        folded[0] += 1
        folded[1] += weight(table.pop(k))


def _add_bounded(d: dict, key, limit: int) -> bool:
    """Add ``key`` to the ordered set ``d`` if there is room; True if new."""
    if key in d:
        return False
    if len(d) < limit:
        d[key] = None
    return True


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
            if len(self.bins) >= MAX_BINS:
                self._coarsen()
                idx = ts // self.width
                row = self.bins.get(idx)
            if row is None:
                row = self.bins[idx] = [0] * len(TIMELINE_KINDS)
        row[kind] += 1

    def search(self, ts: int, name: str) -> None:
        if name in self.answered_names:
            return
        bins = self.pending.get(name)
        if bins is None:
            if len(self.pending) >= MAX_ROWS:
                self._fold_pending()
            bins = self.pending[name] = {}
        idx = ts // self.width
        bins[idx] = bins.get(idx, 0) + 1

    def answered(self, name: str) -> None:
        if name not in self.answered_names:
            if len(self.answered_names) >= MAX_ROWS:    # (a name forgotten counts again)
                for old in list(self.answered_names)[:MAX_ROWS // 2]:
                    del self.answered_names[old]
            self.answered_names[name] = None
        self.pending.pop(name, None)

    def _fold_pending(self) -> None:
        """Past MAX_ROWS names: the searches of the oldest half are summed
        under None, as never answered (even if the name is answered later)."""
        other = self.pending.pop(None, {})
        for name in list(self.pending)[:MAX_ROWS // 2]:
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


# ------------------------------------------------------------------ the collector
class StatsCollector:
    """Feed it the items of ``ChannelTracker.run(Decoder.run(...))``; call
    ``report()`` at the end. ``keep`` is the filter predicate (or None)."""

    def __init__(self, *, keep: Optional[Callable] = None, timeline: bool = False):
        self.keep = keep
        self.rng = random.Random(SEED)
        self.files: List[dict] = []
        self.current_file = 0
        self.input_done = False
        self.first_ts: Optional[int] = None
        self.last_ts: Optional[int] = None
        self.last_packet_ts: Optional[int] = None
        self.counted = 0
        self.by_command: Counter = Counter()
        self.searched: Dict[str, SearchedName] = {}
        self.answers: Dict[str, Dict[Tuple[str, int], Answer]] = {}
        self.unnamed_replies = 0
        self.pvs: Dict[str, PVStats] = {}
        self.circuits: Dict[tuple, CircuitStats] = {}      # live
        self.closed: List[CircuitStats] = []
        self.closed_dropped = 0
        self.servers: Dict[Tuple[str, int], ServerStats] = {}
        self.clients: Dict[str, ClientStats] = {}
        self.errors: List[dict] = []
        self.errors_total = 0
        # requests waiting for their answer: circuit -> (id name, id) ->
        # (request, pv, frame, ts, file index); and those never answered:
        # (pv, request, circuit, until) -> [count, first frame, first ts,
        # first file, last frame, last ts, last file, longest wait]
        self.pending: Dict[tuple, Dict[tuple, tuple]] = {}
        self.echoes: Dict[tuple, List[int]] = {}       # circuit -> [echoes sent, answered]
        self.unanswered_groups: Dict[tuple, list] = {}
        self.unanswered_total = 0
        # subscriptions: live ones by circuit and subscription id, ended ones as rows
        self.subscriptions: Dict[tuple, Dict[int, SubStats]] = {}
        self.subscription_rows: List[dict] = []
        self.subscriptions_total = 0
        self.beacons: Dict[Tuple[str, int], BeaconServer] = {}
        self.beacon_hosts: Dict[str, Dict[int, int]] = {}  # ip -> server port -> first ts
        # rows dropped by _fold, per table: [rows, their summed weight]
        self.folded = {table: [0, 0] for table in _FOLDED}
        self.problems = 0
        self.offsets_in = ""           # what the current file's problem offsets count
        self.timeline = Timeline() if timeline else None

    # ---------------------------------------------------------------- input plumbing
    def read(self, paths: Sequence[str], opener: Optional[Callable] = None) -> Iterator:
        """The packets of several captures, in order, as one stream.
        ``opener(path)``: a ``pcapca.progress.Progress`` for each file (a bar)."""
        from ..capture.sources import open_source

        def one(i, path):
            info = {"path": str(path), "packets": 0, "first": None, "last": None}
            self.files.append(info)
            self.current_file = i
            progress = opener(path) if opener is not None else None
            src = progress.src if progress is not None else open_source(path)
            tick = progress.update if progress is not None and progress.active else None
            self.offsets_in = offsets_in(src)      # (a gzip-compressed capture)
            for item in read_capture(src):
                if item.__class__ is Packet:
                    info["packets"] += 1
                    ts = item.ts
                    if info["first"] is None:
                        info["first"] = ts
                    info["last"] = ts
                    if tick is not None:
                        tick()
                yield item
            if progress is not None:
                progress.close()

        yield from itertools.chain.from_iterable(one(i, p) for i, p in enumerate(paths))
        self.input_done = True

    def watch(self, items: Iterable) -> Iterator:
        """Between the decoder and the channel tracker: sees the circuit closes
        (which the tracker does not pass on) and the time of each packet."""
        for item in items:
            cls = item.__class__
            if cls is Decoded:
                self.last_packet_ts = item.packet.ts
            elif cls is CircuitClosed:
                self._circuit_closed(item.key, item.lost, item.stalls, item.ended_by)
            yield item

    def run(self, paths: Sequence[str], decoder: Decoder,
            tracker: Optional[ChannelTracker] = None,
            on_problem: Optional[Callable[[Problem], Optional[bool]]] = None,
            opener: Optional[Callable] = None, anchor: Optional[Callable] = None) -> None:
        """Read ``paths`` in order; ``on_problem`` gets every Problem and may
        return True to stop reading (the report then covers what was read).
        ``opener``: see ``read``; ``anchor``: ``pipeline.first_packet``'s."""
        tracker = tracker or ChannelTracker()
        items = self.read(paths, opener)
        if anchor is not None:
            from ..pipeline import first_packet
            items = first_packet(items, anchor)
        for item in tracker.run(self.watch(decoder.run(items))):
            cls = item.__class__
            if cls is Decoded:
                for record in item.records:
                    self.add(record)
            elif cls is Problem:
                item = labelled(item, self.offsets_in)
                if len(paths) > 1 and (item.frame is not None or item.offset is not None):
                    item = dataclasses.replace(item, source=self.files[self.current_file]["path"])
                if on_problem is not None and on_problem(item):
                    break                       # the caller wants to stop (--strict)
        self.decoder_stats = decoder.stats

    # ---------------------------------------------------------------- per message
    def _pv(self, name: str) -> PVStats:
        s = self.pvs.get(name)
        if s is None:
            if len(self.pvs) >= MAX_ROWS:
                _fold(self.pvs, _FOLDED["pvs"][1], self.folded["pvs"])
            s = self.pvs[name] = PVStats(self.rng)
        return s

    def _server(self, key) -> ServerStats:
        s = self.servers.get(key)
        if s is None:
            if len(self.servers) >= MAX_ROWS:
                _fold(self.servers, _FOLDED["servers"][1], self.folded["servers"])
            s = self.servers[key] = ServerStats(self.rng)
        return s

    def _client(self, ip: str) -> ClientStats:
        s = self.clients.get(ip)
        if s is None:
            if len(self.clients) >= MAX_ROWS:
                _fold(self.clients, _FOLDED["clients"][1], self.folded["clients"])
            s = self.clients[ip] = ClientStats()
        return s

    def add(self, record) -> None:
        # (header fields where they serve: most messages' caproto objects are
        # never built, see ca_decode.build_later)
        name = record.name
        circuit = None
        tcp = record.proto == "tcp"
        if tcp:
            key = record.circuit
            circuit = self.circuits.get(key)
            if circuit is None:
                circuit = self.circuits[key] = CircuitStats(key, record.ts)
            circuit.last = record.ts
            # the client's names are facts of the circuit: taken even when filtered out
            if name == "HostNameRequest":
                circuit.host = _name(record.command)
                if circuit.counted:
                    _add_bounded(self._client(circuit.client[0]).hosts, circuit.host, 16)
            elif name == "ClientNameRequest":
                circuit.user = _name(record.command)
                if circuit.counted:
                    _add_bounded(self._client(circuit.client[0]).users, circuit.user, 16)
            elif name == "EventsOffRequest":     # the client can't keep up: no more updates
                circuit.events_off += 1
                if circuit.off_since is None:
                    circuit.off_since = record.ts
            elif name == "EventsOnRequest":
                if circuit.off_since is not None:
                    circuit.off_ns += max(0, record.ts - circuit.off_since)
                    circuit.off_since = None
            # a subscription's updates and its cancel count whatever the filter
            if name == "EventAddResponse" and key in self.subscriptions:
                sub = self.subscriptions[key].get(message_id(record, "subscriptionid"))
                if sub is not None:
                    sub.update(record.ts)
            elif name == "EventCancelRequest" and key in self.subscriptions:
                sub = self.subscriptions[key].pop(message_id(record, "subscriptionid"), None)
                if sub is not None:
                    self._subscription_ended(sub, "cancelled", record.ts)
            # an answer counts whatever the filter (a request it keeps may
            # have an answer it drops, e.g. --command ReadNotifyRequest)
            if name in _ANSWER_ID and key in self.pending:
                self._answered(record, key, _ANSWER_ID[name])
        if self.keep is not None and not self.keep(record):
            return
        if tcp and name in _REQUEST_ID:
            self._request(record, key, name, _REQUEST_ID[name])
            if name == "EventAddRequest":
                self._subscribe(record, key, circuit)

        ts = record.ts
        msg = record.msg            # (the bytes of a TCP message)
        size = len(msg) if msg is not None else message_size(record.command)
        self.counted += 1
        self.by_command[name] += 1
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts
        if self.timeline is not None:
            self.timeline.add(ts, TIMELINE_KINDS.index(_TIMELINE_KIND.get(name, "other")))

        from_client = record.role == "client"
        server = None
        if circuit is not None:
            side = 0 if from_client else 1
            if not circuit.counted:          # the circuit's first message that is counted
                self._server(circuit.server).circuits += 1
                c = self._client(circuit.client[0])
                c.circuits += 1
                if circuit.host is not None:
                    _add_bounded(c.hosts, circuit.host, 16)
                if circuit.user is not None:
                    _add_bounded(c.users, circuit.user, 16)
            circuit.counted += 1
            circuit.msgs[side] += 1
            circuit.bytes[side] += size
            server = self._server(circuit.server)
            server.messages += 1
            server.bytes += size
            client_ip = circuit.client[0]
        else:
            client_ip = record.src if from_client else None
        if from_client and client_ip is not None:
            c = self._client(client_ip)
            c.messages += 1
            c.bytes += size
            if not tcp:
                _add_bounded(c.ports, record.sport, 64)

        pv_name = record.pv
        pv = None
        if pv_name is not None:
            pv = self._pv(pv_name)
            pv.messages += 1
            pv.bytes += size
        latency = record.latency

        if name == "SearchRequest":
            self._search(record, pv_name, ts)       # (the tracker's name: up to its NUL)
        elif name == "SearchResponse":
            self._search_reply(record, record.command, pv_name, ts)
        elif name == "NotFoundResponse":
            s = self.searched.get(pv_name) if pv_name is not None else None
            if s is not None:
                s.not_found += 1
                _add_bounded(s.not_found_by, addr((record.src, record.sport)), MAX_CLIENTS_LISTED)
        elif pv is None:
            if name in ("ErrorResponse", "CreateChFailResponse"):
                self._error(record, circuit, server)
            elif name in ("WriteNotifyResponse", "ReadNotifyResponse"):
                self._status_error(record, circuit, server)
            elif name == "CreateChanRequest" and circuit is not None:
                circuit.channels += 1
                server.channels += 1
            elif name == "Beacon":
                self._beacon(record, record.command, ts)
        elif name in ("ReadNotifyRequest", "ReadRequest"):
            pv.reads += 1
        elif name in ("ReadNotifyResponse", "ReadResponse"):
            _add_latency("read", latency, pv, server)
            if name == "ReadNotifyResponse":
                self._status_error(record, circuit, server)
        elif name == "WriteNotifyRequest":
            pv.puts_notify += 1
        elif name == "WriteNotifyResponse":
            _add_latency("write", latency, pv, server)
            self._status_error(record, circuit, server)
        elif name == "WriteRequest":
            pv.writes += 1
        elif name == "EventAddResponse":
            pv.updates += 1
        elif name == "EventAddRequest":
            pv.subscriptions += 1
        elif name == "CreateChanRequest":
            pv.creates += 1
            if circuit is not None:
                circuit.channels += 1
                server.channels += 1
        elif name == "CreateChanResponse":
            _add_latency("create", latency, pv, server)
        elif name in ("ErrorResponse", "CreateChFailResponse"):
            if name == "CreateChFailResponse":
                pv.create_failures += 1
            self._error(record, circuit, server)

    # ---------------------------------------------------------------- unanswered requests
    def _request(self, record, key, name: str, id_name: str) -> None:
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
        table[pending_key] = (name, record.pv, record.frame, ts, self.current_file)
        if len(table) > MAX_PENDING:        # (memory stays bounded)
            for k in list(table)[:len(table) // 2]:
                self._not_answered(key, table.pop(k), f"over {MAX_PENDING} pending", ts)

    def _answered(self, record, key, id_name: Optional[str]) -> None:
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
        self.pending[key].pop((id_name, value), None)

    def _subscribe(self, record, key, circuit) -> None:
        subs = self.subscriptions.get(key)
        if subs is None:
            subs = self.subscriptions[key] = {}
        sid = message_id(record, "subscriptionid")
        old = subs.pop(sid, None)
        if old is not None:
            self._subscription_ended(old, "its id was used again", record.ts)
        subs[sid] = SubStats(record, circuit, self.current_file)
        if len(subs) > MAX_PENDING:         # (memory stays bounded)
            for k in list(subs)[:len(subs) // 2]:
                self._subscription_ended(subs.pop(k), f"over {MAX_PENDING} live", record.ts)

    def _subscription_ended(self, sub: SubStats, until: str, end: Optional[int]) -> None:
        self.subscriptions_total += 1
        if len(self.subscription_rows) >= MAX_ERRORS:
            return                          # counted, not listed
        quiet_since = sub.last if sub.last is not None else sub.start
        if end is None:
            end = quiet_since
        silent = max(0, end - quiet_since)
        c = sub.circuit
        self.subscription_rows.append({
            "pv": sub.pv, "client": addr(c.client), "server": addr(c.server),
            "circuit": c.number,
            "data_type": type_name(sub.data_type),
            "start": ts_string(sub.start), "start_frame": sub.frame,
            "start_file": self.files[sub.file]["path"] if self.files else None,
            "updates": sub.updates, "first_update": _t(sub.first), "last_update": _t(sub.last),
            "longest_gap_s": sub.gap / 1e9, "longest_gap_from": _t(sub.gap_at),
            "silent_at_end_s": silent / 1e9, "ended": until, "end": _t(end),
        })

    def _not_answered(self, key, entry: tuple, until: str, end: Optional[int],
                      lost: int = 0) -> None:
        name, pv, frame, ts, file_index = entry
        self.unanswered_total += 1
        wait = max(end - ts, 0) if end is not None else 0
        group_key = (pv, name, key, until, lost)
        g = self.unanswered_groups.get(group_key)
        if g is None:
            if len(self.unanswered_groups) >= MAX_ERRORS:
                return                      # counted, not listed
            g = self.unanswered_groups[group_key] = [0, frame, ts, file_index,
                                                     frame, ts, file_index, wait]
        g[0] += 1
        if ts < g[2]:
            g[1:4] = frame, ts, file_index
        if ts >= g[5]:
            g[4:7] = frame, ts, file_index
        g[7] = max(g[7], wait)

    def _flush_pending(self, key, until: str, end: Optional[int], lost: int = 0) -> None:
        """``lost``: bytes of the server's side of the circuit the capture
        lacks (an answer may be among them)."""
        self.echoes.pop(key, None)
        for entry in self.pending.pop(key, {}).values():
            self._not_answered(key, entry, until, end, lost)

    # ---------------------------------------------------------------- searches
    def _search(self, record, name: str, ts: int) -> None:
        s = self.searched.get(name)
        if s is None:
            if len(self.searched) >= MAX_ROWS:
                _fold(self.searched, _FOLDED["searched_names"][1],
                      self.folded["searched_names"])
            s = self.searched[name] = SearchedName(ts)
        s.searches += 1
        if ts < s.first:
            s.first = ts
        if ts > s.last:
            s.last = ts
        if _add_bounded(s.clients, addr((record.src, record.sport)), MAX_CLIENTS_LISTED):
            s.clients_total += 1
        self._pv(name).searches += 1
        if record.proto == "udp":
            self._client(record.src).searches += 1
        elif record.circuit is not None:
            self._client(record.circuit[1][0]).searches += 1
        if self.timeline is not None:
            self.timeline.search(ts, name)

    def _search_reply(self, record, cmd, pv_name: Optional[str], ts: int) -> None:
        try:
            ip = cmd.ip
        except Exception:
            ip = None
        if not ip or ip in ANY_ADDRESS:
            ip = record.src
        server_key = (ip, cmd.port)
        srv = self._server(server_key)
        srv.search_replies += 1
        if pv_name is None:
            self.unnamed_replies += 1       # the request was not captured
            return
        pv = self._pv(pv_name)
        pv.search_replies += 1
        if record.latency is not None:
            pv.latency.add("search", record.latency)
            srv.latency.add("search", record.latency)
        s = self.searched.get(pv_name)
        if s is not None:
            s.answered += 1
        servers = self.answers.get(pv_name)
        if servers is None:
            if len(self.answers) >= MAX_ROWS:
                _fold(self.answers, _FOLDED["answers"][1], self.folded["answers"])
            servers = self.answers[pv_name] = {}
        a = servers.get(server_key)
        if a is None and len(servers) >= MAX_CLIENTS_LISTED:   # (servers kept per name)
            self.folded["answers"][1] += 1
            a = Answer(ts)                  # (counted, not kept)
        elif a is None:
            a = servers[server_key] = Answer(ts)
        a.replies += 1
        a.first = min(a.first, ts)
        a.last = max(a.last, ts)
        _add_bounded(a.clients, addr((record.dst, record.dport)), MAX_CLIENTS_LISTED)
        if self.timeline is not None:
            self.timeline.answered(pv_name)

    # ---------------------------------------------------------------- errors
    def _error_entry(self, record, circuit, status, text, request=None) -> None:
        self.errors_total += 1
        if record.pv is not None:
            self._pv(record.pv).errors += 1
        if circuit is not None:
            self._server(circuit.server).errors += 1
            client, server = addr(circuit.client), addr(circuit.server)
        elif record.role == "server":
            client, server = addr((record.dst, record.dport)), addr((record.src, record.sport))
        else:
            client, server = addr((record.src, record.sport)), addr((record.dst, record.dport))
        if len(self.errors) >= MAX_ERRORS:
            return
        self.errors.append({
            "time": ts_string(record.ts), "iso": iso(record.ts),
            "file": self._file_name(), "frame": record.frame,
            "command": record.command.__class__.__name__, "pv": record.pv,
            "status": _status_name(status), "text": text, "request": request,
            "client": client, "server": server, "latency": record.latency,
        })

    def _file_name(self) -> Optional[str]:
        return self.files[self.current_file]["path"] if self.files else None

    def _error(self, record, circuit, server) -> None:
        cmd = record.command
        if cmd.__class__.__name__ == "CreateChFailResponse":
            self._error_entry(record, circuit, None, "channel creation failed (CreateChFailResponse)")
            return
        status = _status(cmd)
        try:
            text = _text(cmd.error_message)
        except Exception:
            text = ""
        if not text and status is not None:
            text = getattr(status, "description", "") or ""
        request = None
        try:
            cls = command_class(CLIENT, cmd.original_request.command)
            request = cls.__name__ if cls is not None else f"command {cmd.original_request.command}"
        except Exception:
            pass
        self._error_entry(record, circuit, status, text, request)

    def _status_error(self, record, circuit, server) -> None:
        if record._command is None and reads_status_from_header(record.cls):
            status = eca_value_to_status.get(record.fields[4])   # (what caproto's does)
        else:
            status = _status(record.command)
        if status is None or getattr(status, "success", 1):
            return
        text = getattr(status, "description", "") or ""
        request = record.command.__class__.__name__.replace("Response", "Request")
        self._error_entry(record, circuit, status, text, request)

    # ---------------------------------------------------------------- beacons
    def _beacon(self, record, cmd, ts: int) -> None:
        ip = cmd.address
        if not ip or ip in ANY_ADDRESS:
            ip = record.src
        key = (ip, cmd.server_port)
        b = self.beacons.get(key)
        if b is None:
            if len(self.beacons) >= MAX_ROWS:
                self._fold_beacons()
            b = self.beacons[key] = BeaconServer(ts, self.rng)
            ports = self.beacon_hosts.setdefault(ip, {})
            if len(ports) < MAX_HOST_PORTS:
                ports.setdefault(cmd.server_port, ts)
        bid = cmd.beacon_id
        for rid, rts in b.recent:
            if rid == bid and ts - rts <= BEACON_COPY_NS:
                b.copies += 1                # forwarded by a repeater, or sent twice
                return
        b.recent.append((bid, ts))
        if len(b.recent) > 8:
            del b.recent[0]
        b.count += 1
        _add_bounded(b.senders, addr((record.src, record.sport)), 16)
        sender = addr((record.src, record.sport))
        if b.first_id is None:
            b.first_id = bid
        elif bid < b.last_id:
            b.restarts.append({"time": ts_string(ts), "iso": iso(ts), "file": self._file_name(),
                               "frame": record.frame, "from_id": b.last_id, "to_id": bid,
                               "sender": sender, "reason": "beacon id went back"})
        if b.prev_ts is not None:
            b.intervals.add((ts - b.prev_ts) / 1e9)
        b.prev_ts = ts
        b.last_id = bid
        b.last = ts

    def _fold_beacons(self) -> None:
        """_fold for the beacon servers; the hosts' ports follow the rows kept."""
        _fold(self.beacons, _FOLDED["beacons"][1], self.folded["beacons"])
        hosts = self.beacon_hosts
        self.beacon_hosts = {}
        for ip, port in self.beacons:
            first = hosts[ip].get(port)
            if first is not None:
                self.beacon_hosts.setdefault(ip, {})[port] = first

    # ---------------------------------------------------------------- circuits
    def _circuit_closed(self, key, lost=(0, 0), stalls=(None, None), ended_by=None) -> None:
        c = self.circuits.pop(key, None)
        if c is None:
            return
        c.lost = lost
        c.stalls = stalls
        c.ended_by = ended_by
        if self.input_done:
            c.state = "open"                 # still open when the capture ended
            until, end = "capture ended", self.files[-1]["last"]
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
        self._flush_pending(key, until, end, lost[1])
        for sub in self.subscriptions.pop(key, {}).values():
            self._subscription_ended(sub, until, end)
        self._keep_circuit(c)

    def _keep_circuit(self, c: CircuitStats) -> None:
        if self.keep is not None and not c.counted:
            return
        if len(self.closed) < MAX_CIRCUITS_KEPT:
            self.closed.append(c)
        else:
            self.closed_dropped += 1

    # ---------------------------------------------------------------- the report
    def report(self) -> dict:
        st = getattr(self, "decoder_stats", None)
        first = min((f["first"] for f in self.files if f["first"] is not None), default=None)
        last = max((f["last"] for f in self.files if f["last"] is not None), default=None)
        # circuits the decoder did not close: reading stopped early (--strict)
        for c in list(self.circuits.values()):
            self._keep_circuit(c)
        self.circuits.clear()
        for key in list(self.pending):
            self._flush_pending(key, "capture ended" if self.input_done else "reading stopped",
                                last)
        for subs in self.subscriptions.values():
            for sub in subs.values():
                self._subscription_ended(sub, "capture ended" if self.input_done
                                         else "reading stopped", last)
        self.subscriptions.clear()
        capture = {
            "files": [dict(f, first=_t(f["first"]), last=_t(f["last"])) for f in self.files],
            "first": _t(first), "first_iso": _iso(first),
            "last": _t(last), "last_iso": _iso(last),
            "span_s": (last - first) / 1e9 if first is not None else None,
            "files_in_time_order": all(
                a["last"] is None or b["first"] is None or a["last"] <= b["first"]
                for a, b in zip(self.files, self.files[1:])),
            "packets": st.packets if st else None,
            "messages": st.messages if st else None,
            "messages_counted": self.counted,
            "decode_problems": st.problems if st else None,
            "capture_problems": st.capture_problems if st else None,
            "packets_dropped_by_capture": st.dropped if st else None,
            "packets_skipped": sum(st.skipped.values()) if st else None,
            "tcp_bytes_missing": st.lost_bytes if st else None,
            "search_replies_without_request": self.unnamed_replies,
            "by_command": dict(sorted(self.by_command.items(), key=lambda kv: (-kv[1], kv[0]))),
        }
        out = {
            "capture": capture,
            "unanswered_searches": self._unanswered(),
            "unanswered_requests": self._unanswered_requests(),
            "unanswered_requests_total": self.unanswered_total,
            "subscriptions": sorted(self.subscription_rows, key=lambda r: (
                -max(r["longest_gap_s"], r["silent_at_end_s"]), r["circuit"], r["start"])),
            "subscriptions_total": self.subscriptions_total,
            "name_conflicts": self._conflicts(),
            "circuits": self._circuits(),
            "flow_control": self._flow_control(),
            "servers": self._servers(),
            "clients": self._clients(),
            "pvs": self._pvs(),
            "errors": list(self.errors),
            "errors_total": self.errors_total,
            "beacons": self._beacons(),
        }
        not_kept = self._not_kept()
        if not_kept:                        # (a bound was reached: see _fold)
            out["not_kept"] = not_kept
        return out

    def _not_kept(self) -> dict:
        """Per table that reached its bound: the rows dropped and what they counted."""
        out = {table: {"rows": rows, _FOLDED[table][0]: total}
               for table, (rows, total) in self.folded.items() if rows or total}
        if self.closed_dropped:
            out["circuits"] = {"rows": self.closed_dropped}
        return out

    def _unanswered(self) -> List[dict]:
        out = []
        for name, s in self.searched.items():
            if s.answered:
                continue
            span = (s.last - s.first) / 1e9
            out.append({
                "pv": name, "searches": s.searches,
                "clients": list(s.clients), "clients_total": s.clients_total,
                "first": ts_string(s.first), "first_iso": iso(s.first),
                "last": ts_string(s.last), "last_iso": iso(s.last),
                "span_s": span,
                "rate_per_s": (s.searches - 1) / span if s.searches > 1 and span > 0 else None,
                "not_found": s.not_found, "not_found_by": list(s.not_found_by),
            })
        out.sort(key=lambda e: (-e["searches"], e["pv"]))
        return out

    def _unanswered_requests(self) -> List[dict]:
        out = []
        for (pv, name, key, until, lost), g in sorted(self.unanswered_groups.items(),
                                                      key=lambda kv: (-kv[1][0], kv[1][2])):
            count, frame, ts, file_index, last_frame, last_ts, last_file, wait = g
            out.append({
                "pv": pv, "request": name, "count": count,
                "client": addr(key[1]), "server": addr(key[2]), "until": until,
                "first": ts_string(ts), "first_iso": iso(ts), "first_frame": frame,
                "first_file": self.files[file_index]["path"] if self.files else None,
                "last": ts_string(last_ts), "last_iso": iso(last_ts), "last_frame": last_frame,
                "last_file": self.files[last_file]["path"] if self.files else None,
                "longest_wait_s": wait / 1e9,
                "server_bytes_not_captured": lost,
            })
        return out

    def _conflicts(self) -> List[dict]:
        out = []
        for name, servers in self.answers.items():
            if len(servers) < 2:
                continue
            out.append({"pv": name, "servers": [
                {"server": addr(k), "replies": a.replies, "first": ts_string(a.first),
                 "last": ts_string(a.last), "clients": list(a.clients)}
                for k, a in sorted(servers.items(), key=lambda kv: kv[1].first)]})
        out.sort(key=lambda e: e["pv"])
        return out

    def _circuits(self) -> List[dict]:
        out = []
        for c in sorted(self.closed, key=lambda c: c.number):
            out.append({
                "number": c.number, "client": addr(c.client), "server": addr(c.server),
                "host": c.host, "user": c.user,
                "start": ts_string(c.start), "start_iso": iso(c.start),
                "end": _t(c.end), "end_iso": _iso(c.end), "state": c.state,
                "closed_by": c.ended_by,
                "channels": c.channels,
                "messages_to_server": c.msgs[0], "messages_to_client": c.msgs[1],
                "bytes_to_server": c.bytes[0], "bytes_to_client": c.bytes[1],
                "bytes_not_captured_to_server": c.lost[0],
                "bytes_not_captured_to_client": c.lost[1],
            })
        return out

    def _flow_control(self) -> List[dict]:
        """Circuits where a side stopped reading (a TCP zero window) or the
        client turned the server's updates off (CA's EventsOff)."""
        def stall(s):
            if s is None:
                return None
            return {"episodes": s.episodes, "total_s": s.total_ns / 1e9,
                    "longest_s": s.longest_ns / 1e9,
                    "first": ts_string(s.first_ts), "first_iso": iso(s.first_ts)}
        out = []
        for c in sorted(self.closed, key=lambda c: c.number):
            if c.stalls == (None, None) and not c.events_off:
                continue
            out.append({
                "number": c.number, "client": addr(c.client), "server": addr(c.server),
                "client_not_reading": stall(c.stalls[0]),
                "server_not_reading": stall(c.stalls[1]),
                "events_off": c.events_off, "events_off_s": c.off_ns / 1e9,
            })
        return out

    def _servers(self) -> List[dict]:
        out = []
        for key, s in sorted(self.servers.items()):
            out.append({"server": addr(key), "circuits": s.circuits, "channels": s.channels,
                        "messages": s.messages, "bytes": s.bytes,
                        "search_replies": s.search_replies, "errors": s.errors,
                        "latency": s.latency.summary()})
        return out

    def _clients(self) -> List[dict]:
        out = []
        for ip, c in self.clients.items():
            out.append({"client": ip, "hosts": list(c.hosts), "users": list(c.users),
                        "udp_ports": list(c.ports), "circuits": c.circuits,
                        "searches": c.searches, "messages": c.messages, "bytes": c.bytes})
        out.sort(key=lambda e: (-e["messages"], e["client"]))
        return out

    def _pvs(self) -> List[dict]:
        out = []
        for name, p in self.pvs.items():
            out.append({"pv": name, "messages": p.messages, "bytes": p.bytes,
                        "searches": p.searches, "search_replies": p.search_replies,
                        "creates": p.creates, "create_failures": p.create_failures,
                        "reads": p.reads, "writes": p.writes, "puts_notify": p.puts_notify,
                        "subscriptions": p.subscriptions, "updates": p.updates,
                        "errors": p.errors, "latency": p.latency.summary()})
        out.sort(key=lambda e: (-e["messages"], e["pv"]))
        return out

    def _beacons(self) -> List[dict]:
        out = []
        for key, b in sorted(self.beacons.items()):
            ports = self.beacon_hosts.get(key[0], {})
            started = b.first_id == 0
            earlier = [p for p in ports if p != key[1] and ports[p] < b.first]
            entry = {"server": addr(key), "beacons": b.count, "copies": b.copies,
                     "first": ts_string(b.first), "last": ts_string(b.last),
                     "first_id": b.first_id, "last_id": b.last_id,
                     "senders": list(b.senders),
                     "interval": None, "restarts": list(b.restarts),
                     "started_in_capture": started,
                     "new_port_for_host": bool(started and earlier),
                     "other_ports_of_host": sorted(p for p in ports if p != key[1])}
            if b.intervals.count:
                vals = sorted(b.intervals.values)
                entry["interval"] = {"count": b.intervals.count,
                                     "median": percentile(vals, 50),
                                     "min": vals[0], "max": b.intervals.max}
            out.append(entry)
        return out


def _closed_text(ended_by: Optional[str]) -> str:
    """'circuit closed by the server', 'circuit reset by the client'... from
    the decoder's "server FIN", "client RST"."""
    if ended_by is None:
        return "circuit closed"
    who, how = ended_by.split()
    return f"circuit {'reset' if how == 'RST' else 'closed'} by the {who}"


def _t(ts: Optional[int]) -> Optional[str]:
    return None if ts is None else ts_string(ts)


def _iso(ts: Optional[int]) -> Optional[str]:
    return None if ts is None else iso(ts)


def collect(paths: Sequence[str], *, decoder: Optional[Decoder] = None, keep=None,
            timeline: bool = False, on_problem=None) -> dict:
    """The report of ``paths`` (read in order as one capture) as a dict.
    With ``timeline=True`` the dict has a ``"_timeline"`` entry (for plot())."""
    collector = StatsCollector(keep=keep, timeline=timeline)
    collector.run(paths, decoder or Decoder(), on_problem=on_problem)
    report = collector.report()
    if timeline:
        report["_timeline"] = collector.timeline
    return report
