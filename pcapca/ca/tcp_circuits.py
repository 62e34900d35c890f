"""TCP circuits: each connection's two half-streams reassembled and decoded as CA in its role."""
from __future__ import annotations

from typing import Dict, Optional

from ..items import CircuitClosed, Packet, Problem, Stall
from ..net.link import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Segment
from ..net.tcp_reassembly import HalfStream, seq_diff
from ._caproto import CLIENT, SERVER, Beacon, SearchResponse
from .framing import StreamDecoder
from .headers import looks_like_ca
from .records import CLIENT_ROLE, SERVER_ROLE, Decoded, Record

_LEARN_FROM = frozenset((SearchResponse, Beacon))   # messages that announce servers
_new = tuple.__new__       # a NamedTuple without its Python-level __new__ (one per packet)
MAX_CIRCUITS = 50_000            # live TCP circuits kept; the least recent go first
IDLE_NS = 600 * 10**9            # a circuit silent this long (capture time) is dropped
MAX_BUFFERED = 128 << 20         # bytes waiting in all circuits (or twice --max-message)


class Circuit:
    """One TCP connection: its two half-streams and CA stream decoders, its
    close and zero-window history; ``client`` and ``server`` are (ip, port)."""
    __slots__ = ("client", "server", "halves", "decoders", "last_ts",
                 "closing", "reported", "number", "is_ca", "key", "lost", "zero", "stalls",
                 "ended_by", "held")

    def __init__(self, client, server, max_message: int, synced: bool, number: int):
        self.client = client
        self.server = server
        self.halves = (HalfStream(), HalfStream())          # [from client, from server]
        self.decoders = (StreamDecoder(CLIENT, synced=synced, max_message=max_message),
                         StreamDecoder(SERVER, synced=synced, max_message=max_message))
        self.last_ts = 0
        self.closing = 0                     # FIN/RST seen (count)
        self.ended_by: Optional[str] = None  # the first FIN/RST: "client FIN", "server RST"...
        self.reported = [False, False]       # a problem was reported for this direction
        self.lost = [0, 0]                   # bytes the capture lacks, per direction
        self.zero = [None, None]             # when a side's zero window began, per side
        self.stalls = [None, None]           # [episodes, total ns, longest ns, first ts]
        self.number = number
        self.is_ca: Optional[bool] = None    # None: not known yet (unknown server port)
        # identifies this connection (a new SYN on the same ports is another one)
        self.key = (number, client, server)
        self.held = 0                        # bytes buffered, as last counted (CircuitTable._hold)

    def reopened(self, side: int, ts: int) -> None:
        """The end of a zero window of ``side`` (0: the client, 1: the server)."""
        since = self.zero[side]
        self.zero[side] = None
        length = max(0, ts - since)
        s = self.stalls[side]
        if s is None:
            self.stalls[side] = [1, length, length, since]
        else:
            s[0] += 1
            s[1] += length
            s[2] = max(s[2], length)

    def buffered(self) -> int:
        """Bytes this circuit holds: messages not complete yet, segments behind a hole."""
        d0, d1 = self.decoders
        h0, h1 = self.halves
        return len(d0.buf) + len(d1.buf) + h0.pending_bytes + h1.pending_bytes

    def give_up(self, side: int) -> int:
        """Forget what ``side`` buffers (decoding resumes at the next CA
        header); returns how many bytes that was."""
        decoder, half = self.decoders[side], self.halves[side]
        n = len(decoder.buf) + half.pending_bytes
        if n:
            decoder.gap()
            half.give_up()
        return n

    def closed(self) -> CircuitClosed:
        """The item that says this circuit is gone (zero windows end with it)."""
        for side in (0, 1):
            if self.zero[side] is not None:
                self.reopened(side, self.last_ts)
        return CircuitClosed(self.key, tuple(self.lost), tuple(
            None if s is None else Stall(*s) for s in self.stalls), self.ended_by)

    def label(self, from_client: bool) -> str:
        a, b = (self.client, self.server) if from_client else (self.server, self.client)
        return f"{a[0]}:{a[1]}->{b[0]}:{b[1]}"

    # (fast.skim: one call per packet it accounts for, changing what
    # CircuitTable._tcp and StreamDecoder.feed would have changed)
    def skimmed_ack(self, ts: int) -> None:
        """A packet without data."""
        self.last_ts = ts

    def skimmed_data(self, ts: int, half: HalfStream, stream: StreamDecoder, end: int) -> None:
        """A packet of whole messages that the filter drops, in the direction
        of ``half`` and ``stream`` (``halves[side]``, ``decoders[side]``);
        ``end``: the sequence number after it."""
        self.last_ts = ts
        half.next_seq = end
        stream.fresh = stream.partial = False


class CircuitTable:
    """The live TCP circuits, each under both of its 4-tuples (src, sport,
    dst, dport): at most MAX_CIRCUITS, the least recent closed first, and
    ``max_buffered`` bytes buffered over all. The ``Decoder`` is one; it
    sets ``counts`` and ``roles``."""

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self.max_buffered = max(MAX_BUFFERED, 2 * max_message)
        self.buffered = 0                            # the circuits' ``held``, summed
        self.circuits: Dict[tuple, Circuit] = {}     # (src, sport, dst, dport) -> Circuit
        self.generation = 0                          # changes of ``circuits`` (for pcapca.skim)
        self._circuit_count = 0
        self._closed: list = []                      # CircuitClosed and late items to pass on

    def _tcp(self, packet: Packet, seg: Segment):
        flags = seg.flags
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        circuit = self.circuits.get(key)
        if flags & TCP_SYN and circuit is not None and circuit.closing:
            # the same ports used again: a new connection
            self._drop(circuit)
            circuit = None
        if circuit is None:
            if flags & TCP_RST or (not seg.payload and not flags & TCP_SYN and seg.wire_len == 0):
                # a bare ACK/FIN/RST of a connection we never saw data of
                self.counts.skipped["TCP without CA data"] += 1
                return Decoded(packet), ()
            circuit = self._new_circuit(seg)
        circuit.last_ts = packet.ts
        from_client = seg.sport == circuit.client[1] and seg.src == circuit.client[0]
        side = 0 if from_client else 1
        half = circuit.halves[side]
        records = []
        notes = []
        problems = []
        if flags & TCP_SYN:
            half.syn(seg.seq)
            circuit.decoders[side].synced = True
        if flags & TCP_ACK:
            other = circuit.halves[1 - side]
            nxt = other.next_seq
            if nxt is not None and seg.ack != nxt and seq_diff(seg.ack, nxt) > 0:
                released = other.acked(seg.ack)
                if released:
                    self._chunks(circuit, not from_client, released, packet, seg, records,
                                 notes, problems, swapped=True)
                    if circuit.is_ca:
                        self._hold(circuit, packet, problems)
        wire_len = seg.wire_len
        if wire_len:
            payload = seg.payload
            if seg.seq == half.next_seq and not half.pending and len(payload) == wire_len:
                # the common case: the next bytes, in order, complete
                half.next_seq = (seg.seq + wire_len) & 0xFFFFFFFF
                held = False
                if circuit.is_ca:
                    # ...of a CA circuit (what _chunks does for one chunk without a gap)
                    decoder = circuit.decoders[side]
                    self._messages(circuit, from_client, decoder.feed(payload),
                                   packet, seg, records, notes, problems)
                    chunks = None
                    if decoder.partial or circuit.held:     # (a message not complete yet)
                        self._hold(circuit, packet, problems)
                else:
                    chunks = ((0, payload, None),)
            else:
                before = half.retransmitted
                chunks = half.segment(seg.seq, payload, wire_len, (packet, seg))
                self.counts.retransmitted_bytes += half.retransmitted - before
                held = True                                 # (it may wait behind a hole)
            if chunks:
                self._chunks(circuit, from_client, chunks, packet, seg, records, notes, problems)
                held = True
            if held and circuit.is_ca:
                self._hold(circuit, packet, problems)
        if seg.window == 0:
            if circuit.zero[side] is None and not flags & (TCP_SYN | TCP_RST):
                circuit.zero[side] = packet.ts       # it stopped reading
        elif circuit.zero[side] is not None:
            circuit.reopened(side, packet.ts)
        if flags & TCP_FIN:
            half.fin(seg.seq, seg.wire_len)
        if flags & (TCP_FIN | TCP_RST):
            circuit.closing += 1
            if circuit.ended_by is None:
                circuit.ended_by = ("client " if from_client else "server ") + (
                    "RST" if flags & TCP_RST else "FIN")
            if flags & TCP_RST or circuit.closing >= 2:
                problems.extend(self._close(circuit))
        return _new(Decoded, (packet, tuple(records), tuple(notes), False)), problems

    def _new_circuit(self, seg: Segment) -> Circuit:
        client, server = self.roles.tcp_ends(seg)
        self._circuit_count += 1
        self.generation += 1
        # Without the SYN the capture may start inside a message: resync first.
        circuit = Circuit(client, server, self.max_message, synced=bool(seg.flags & TCP_SYN),
                          number=self._circuit_count)
        if self.roles.serves_ca(server):
            circuit.is_ca = True
        self.circuits[(client[0], client[1], server[0], server[1])] = circuit
        self.circuits[(server[0], server[1], client[0], client[1])] = circuit
        if len(self.circuits) > 2 * MAX_CIRCUITS:
            # too many live circuits: close the least recent
            self._closed.extend(self._evict_circuits(None, keep=MAX_CIRCUITS // 2))
        return circuit

    def _chunks(self, circuit: Circuit, from_client: bool, chunks, packet, seg,
                records, notes, problems, swapped: bool = False) -> None:
        side = 0 if from_client else 1
        decoder = circuit.decoders[side]
        if circuit.is_ca is None:
            # a circuit to a port not known as CA: CA only if its first bytes say so
            first = next((c[1] for c in chunks if c[1]), None)
            if first is None:
                return
            circuit.is_ca = looks_like_ca(first, decoder.role, self.max_message)
            self.generation += 1
            if circuit.is_ca:
                self.roles.serves(circuit.server)
        if not circuit.is_ca:
            return
        msg_seg = seg
        if swapped:
            msg_seg = seg._replace(src=seg.dst, dst=seg.src, sport=seg.dport, dport=seg.sport)
        counts = self.counts
        for missing, data, _tag in chunks:
            if missing:
                counts.gaps += 1
                counts.lost_bytes += missing
                circuit.lost[side] += missing
                decoder.gap()
                # data None: the capture itself cut the packet (snaplen): damage, exit 1
                cut = data is None
                how = "were cut by the capture's snaplen" if cut else "were not captured"
                text = (f"{missing} bytes of {circuit.label(from_client)} {how}; "
                        f"decoding resumes at the next CA header")
                notes.append("pcapca: " + text)
                self._report(circuit, side, text, packet, problems,
                             kind="capture" if cut else "decode")
            if data:
                self._messages(circuit, from_client, decoder.feed(data), packet, msg_seg,
                               records, notes, problems)

    def _messages(self, circuit: Circuit, from_client: bool, items, packet, seg,
                  records, notes, problems) -> None:
        """Records (and notes/problems) from what a StreamDecoder returned."""
        role = CLIENT_ROLE if from_client else SERVER_ROLE
        key = circuit.key
        n = 0
        for item in items:
            if item.__class__ is str:
                notes.append("pcapca: " + item)
                self._report(circuit, 0 if from_client else 1,
                             f"{circuit.label(from_client)}: {item}", packet, problems)
                continue
            cls, fields, msg, hsize, command = item
            records.append(Record(packet, seg, cls, fields, msg, hsize, command, role, key))
            n += 1
            if cls in _LEARN_FROM and not from_client:
                self.roles.learn(records[-1].command, seg)
        self.counts.messages += n

    def _report(self, circuit: Circuit, side: int, text: str, packet: Packet, problems,
                kind: str = "decode") -> None:
        """A problem in a stream: reported once per stream direction, counted always
        (capture damage is always reported, with its byte offset)."""
        self.counts.problems += 1
        sender = (circuit.client if side == 0 else circuit.server)[0]
        if kind == "capture":
            problems.append(Problem(text, frame=packet.frame, offset=packet.offset, kind=kind,
                                    topic="TCP segment cut", sender=sender))
        elif not circuit.reported[side]:
            circuit.reported[side] = True
            problems.append(Problem(text + " (further problems in this stream are only counted)",
                                    frame=packet.frame, kind="decode", topic="TCP stream problem",
                                    sender=sender))

    def _hold(self, circuit: Circuit, packet: Packet, problems) -> None:
        """Count the bytes ``circuit`` buffers; over ``max_buffered`` for all
        circuits, some are given up (``_free``)."""
        held = circuit.buffered()
        self.buffered += held - circuit.held
        circuit.held = held
        if self.buffered > self.max_buffered:
            _free(self, packet, problems)

    def _close(self, circuit: Circuit) -> list:
        """Deliver what waits behind holes (as late ``Decoded`` items for the
        packets that carried it), and forget the circuit."""
        out: list = []
        for side in (0, 1):
            half = circuit.halves[side]
            if half.pending:
                missing_before = 0
                for missing, data, tag in half.flush():
                    missing_before += missing
                    if tag is None:
                        continue
                    packet, seg = tag
                    records, notes, problems = [], [], []
                    self._chunks(circuit, side == 0, [(missing_before, data, tag)], packet, seg,
                                 records, notes, problems)
                    missing_before = 0
                    out.extend(problems)
                    out.append(Decoded(packet, tuple(records), tuple(notes), late=True))
            if circuit.decoders[side].partial:
                self.counts.cut_messages += 1
        self._drop(circuit)
        return out

    def _drop(self, circuit: Circuit) -> None:
        (c_ip, c_port), (s_ip, s_port) = circuit.client, circuit.server
        if self.circuits.get((c_ip, c_port, s_ip, s_port)) is circuit:
            # (both keys are the same for a connection from a port to itself)
            self.circuits.pop((c_ip, c_port, s_ip, s_port), None)
            self.circuits.pop((s_ip, s_port, c_ip, c_port), None)
            self.buffered -= circuit.held
            circuit.held = 0
            self._closed.append(circuit.closed())    # (closed while not reading: see closed)
            self.generation += 1

    def _unique_circuits(self):
        seen = set()
        for c in self.circuits.values():
            if id(c) not in seen:
                seen.add(id(c))
                yield c

    def _evict_circuits(self, now: Optional[int], keep: Optional[int] = None) -> list:
        """Close circuits idle for IDLE_NS of capture time, or all but the
        ``keep`` most recent ones; returns what closing them delivered."""
        circuits = list(self._unique_circuits())
        if keep is not None and len(circuits) > keep:
            circuits.sort(key=_last_ts)
            victims = circuits[:len(circuits) - keep]
        elif now is not None:
            victims = [c for c in circuits if now - c.last_ts > IDLE_NS]
        else:
            victims = []
        out = []
        for c in victims:
            out.extend(self._close(c))
        return out



def _free(table: CircuitTable, packet: Packet, problems) -> None:
    """Give up the bytes of the least recently active circuits, down to three
    quarters of the bound (so that each look at the circuits frees that much)."""
    for victim in sorted((c for c in table._unique_circuits() if c.held), key=_last_ts):
        if table.buffered <= table.max_buffered * 3 // 4:
            break
        for side in (0, 1):
            n = victim.give_up(side)
            if n:
                table._report(victim, side, f"{victim.label(side == 0)}: {n} bytes waiting "
                              f"to be decoded were given up: over the {table.max_buffered}-"
                              f"byte limit for all circuits; decoding resumes at the next "
                              f"CA header", packet, problems)
        table.buffered -= victim.held
        victim.held = 0

def _last_ts(circuit: Circuit) -> int:
    return circuit.last_ts
