"""The shared CA decoder: packets in, one ``Decoded`` per packet out.

Every reader feeds it and every writer consumes it. It parses link/IP/TCP/UDP
headers (``link``), reassembles TCP per direction (``tcp_reassembly``),
tracks circuits and their client/server roles (like Wireshark's
conversations, keyed by the 4-tuple), and decodes CA in the circuit's role
(``ca_decode``).
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, Optional, Union

from ..items import CircuitClosed, Packet, Passthrough, Problem, Stall
from ..net.ip_reassembly import Reassembler
from ..net.link import PROTO_TCP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Fragment, Segment, parse
from ..net.tcp_reassembly import HalfStream, seq_diff
from ._caproto import CLIENT, SERVER, Beacon, SearchResponse, header_fields
from .framing import DEFAULT_MAX_MESSAGE, StreamDecoder, decode_datagram, looks_like_ca
from .records import CLIENT_ROLE, SERVER_ROLE, Decoded, Record

_SHB = 0x0A0D0D0A            # pcapng block types (pcapng_io.SHB, IDB; not imported:
_IDB = 1                     # it loads python-pcapng, which a legacy pcap never needs)

_LEARN_FROM = frozenset((SearchResponse, Beacon))   # messages that announce servers
_new = tuple.__new__       # a NamedTuple without its Python-level __new__ (one per packet)
CA_SERVER_PORT = 5064
CA_REPEATER_PORT = 5065
MAX_CIRCUITS = 50_000            # live TCP circuits kept; the least recent go first
IDLE_NS = 600 * 10**9            # a circuit silent this long (capture time) is dropped
EVICT_EVERY = 8192               # packets between two looks for such circuits
DUP_WINDOW_NS = 50 * 10**6       # the same packet on two interfaces within this
DUP_MEMORY = 4096                # packets remembered to find such duplicates
MAX_BUFFERED = 128 << 20         # bytes waiting in all circuits (or twice --max-message)
SHOWN_PER_KIND = 10              # problem lines shown per kind of problem and sender
KINDS_SHOWN = 100                # (kind, sender) pairs shown; further ones are only counted


@dataclass
class Stats:
    packets: int = 0
    messages: int = 0
    skipped: Counter = field(default_factory=Counter)   # reason -> packets
    retransmitted_bytes: int = 0
    lost_bytes: int = 0
    gaps: int = 0
    problems: int = 0          # decode problems (junk, undecodable messages)
    capture_problems: int = 0  # damage in the capture file
    # packets the capturing program dropped, by (section, interface): its last count
    capture_drops: dict = field(default_factory=dict)
    duplicates: int = 0        # packets seen again on another interface
    cut_messages: int = 0      # messages cut off by the end of the capture or a close
    unshown: Counter = field(default_factory=Counter)   # problem kind -> problems not shown

    @property
    def dropped(self) -> int:
        """Packets the capturing program said it dropped (pcapng statistics)."""
        return sum(self.capture_drops.values())

    def summary(self) -> str:
        parts = [f"{self.packets} packets", f"{self.messages} CA messages"]
        if self.problems:
            parts.append(f"{self.problems} decode problems")
        if self.capture_problems:
            parts.append(f"{self.capture_problems} capture problems")
        if self.capture_drops:
            parts.append(f"{self.dropped} packets dropped by the capturing program")
        if self.gaps:
            parts.append(f"{self.lost_bytes} TCP bytes missing in {self.gaps} gaps")
        if self.retransmitted_bytes:
            parts.append(f"{self.retransmitted_bytes} retransmitted TCP bytes decoded once")
        if self.cut_messages:
            parts.append(f"{self.cut_messages} messages incomplete at the end of their stream")
        if self.duplicates:
            parts.append(f"{self.duplicates} packets seen again on another interface ignored")
        skipped = sum(self.skipped.values())
        if skipped:
            why = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common())
            parts.append(f"{skipped} packets skipped ({why})")
        return "; ".join(parts)

    def unshown_line(self) -> Optional[str]:
        """The one line that counts the problems not shown (``Decoder.shown``), or None."""
        if not self.unshown:
            return None
        why = ", ".join(f"{n} {kind}" for kind, n in self.unshown.most_common())
        return (f"{sum(self.unshown.values())} more problems were only counted, not shown "
                f"(the first {SHOWN_PER_KIND} of each kind and sender are): {why}")


class Circuit:
    """One TCP connection; ``client`` and ``server`` are (ip, port)."""
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
        self.held = 0                        # bytes buffered, as last counted (Decoder._hold)

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

    def label(self, from_client: bool) -> str:
        a, b = (self.client, self.server) if from_client else (self.server, self.client)
        return f"{a[0]}:{a[1]}->{b[0]}:{b[1]}"

    # (fast.skim: one call per packet it accounts for, changing what
    # Decoder._tcp and StreamDecoder.feed would have changed)
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


class Decoder:
    def __init__(self, *, max_message: int = DEFAULT_MAX_MESSAGE,
                 server_ports: Iterable[int] = (CA_SERVER_PORT,),
                 repeater_port: int = CA_REPEATER_PORT):
        self.max_message = max_message
        self.max_buffered = max(MAX_BUFFERED, 2 * max_message)
        self.buffered = 0                            # the circuits' ``held``, summed
        self.server_ports = set(server_ports)        # TCP server / UDP search ports
        self.udp_ports = set(server_ports)
        self.repeater_port = repeater_port
        self.servers = set()                         # (ip, port) learned from replies/beacons
        self.circuits: Dict[tuple, Circuit] = {}     # (src, sport, dst, dport) -> Circuit
        self.recent_packets: "OrderedDict[tuple, tuple]" = OrderedDict()  # for _duplicate
        self.stats = Stats()
        self._circuit_count = 0
        self.generation = 0                          # changes of ``circuits`` (for pcapca.skim)
        self._closed: list = []                      # CircuitClosed and late items to pass on
        self._interfaces = 0                         # interfaces declared (pcapng IDBs)
        self.fragments = Reassembler()               # IPv4 datagrams sent in fragments
        self._shown: Dict[tuple, int] = {}           # (kind, sender) -> problem lines shown

    @property
    def finds_duplicates(self) -> bool:
        """Is every packet compared with those before it (several interfaces)?"""
        return self._interfaces > 1

    # ------------------------------------------------------------------ for fast.skim
    def ca_direction(self, key: tuple) -> Optional[tuple]:
        """(circuit, side: 0 from its client, 1 from its server) of the TCP
        packets with this (src, sport, dst, dport), if the circuit is known to
        carry CA; else None. Valid while ``generation`` stays the same."""
        circuit = self.circuits.get(key)
        if circuit is None or circuit.is_ca is not True:
            return None            # (when it learns that it is CA, generation changes)
        return circuit, 0 if (key[1] == circuit.client[1] and key[0] == circuit.client[0]) else 1

    def skim_room(self) -> int:
        """How many packets fast.skim may account for before the next one
        ``run`` must get: the one after which it looks for idle circuits."""
        return EVICT_EVERY - 1 - self.stats.packets % EVICT_EVERY

    def skimmed(self, packets: int, messages: int) -> None:
        """Count the packets and messages fast.skim accounted for."""
        self.stats.packets += packets
        self.stats.messages += messages

    # ------------------------------------------------------------------ API
    def run(self, items: Iterable[Union[Packet, Passthrough, Problem]]
            ) -> Iterator[Union[Decoded, Passthrough, Problem]]:
        """Decode a stream of reader items; yields one ``Decoded`` per packet
        (in input order) and passes other items through."""
        stats = self.stats
        for item in items:
            if item.__class__ is not Packet:
                if item.__class__ is Problem:
                    if item.kind == "loss":      # (not damage: the capture says it lost packets)
                        section, iid, dropped = item.detail
                        stats.capture_drops[section, iid] = dropped
                    elif item.kind != "order":
                        stats.capture_problems += 1
                    if not self.shown(item):
                        continue
                elif item.__class__ is Passthrough:
                    if item.block_type == _IDB:
                        self._interfaces += 1    # several: look for packets captured twice
                    elif item.block_type == _SHB:
                        # a new section (a file of a ring buffer read after
                        # another, or joined to it) declares its own interfaces
                        self._interfaces = 0
                yield item
                continue
            stats.packets += 1
            decoded, problems = self.packet(item)
            if problems:
                yield from self._shown_only(problems)
            yield decoded
            if stats.packets % EVICT_EVERY == 0:
                yield from self._shown_only(self._evict(item.ts))
            if self._closed:
                yield from self._shown_only(self._closed)
                self._closed.clear()
        yield from self._shown_only(self.finish())
        yield from self._shown_only(self._closed)
        self._closed.clear()

    def shown(self, problem: Problem) -> bool:
        """Is ``problem`` to be shown? The first SHOWN_PER_KIND of each kind
        (``topic``, else the same text) and sender are, then they are only
        counted (``stats.unshown``): hostile traffic or a damaged file cannot
        flood the terminal. A problem that stops the reading is always shown."""
        if problem.fatal:
            return True
        key = (problem.topic or problem.message, problem.sender)
        n = self._shown.get(key, 0)
        if n < SHOWN_PER_KIND and (n or len(self._shown) < KINDS_SHOWN):
            self._shown[key] = n + 1
            return True
        self.stats.unshown[problem.topic or f"other {problem.kind} problem"] += 1
        return False

    def _shown_only(self, items) -> Iterator:
        """``items`` without the problems not to be shown."""
        for item in items:
            if item.__class__ is not Problem or self.shown(item):
                yield item

    def packet(self, packet: Packet):
        seg = parse(packet.interface.linktype, packet.data)
        if seg.__class__ is not Segment:
            if seg.__class__ is str:
                self.stats.skipped[seg] += 1
                return Decoded(packet), ()
            return self._fragment(packet, seg)
        if self._interfaces > 1 and self._duplicate(packet, (
                seg.src, seg.sport, seg.dst, seg.dport, seg.ip_id, seg.seq, seg.ack, seg.flags,
                hash(bytes(seg.payload)), seg.wire_len)):
            # the same packet captured on another interface (e.g. lo and any)
            self.stats.duplicates += 1
            return Decoded(packet), ()
        if seg.proto == PROTO_TCP:
            return self._tcp(packet, seg)
        return self._udp(packet, seg)

    def finish(self) -> Iterator[Problem]:
        """End of input: deliver data waiting behind holes, report partial
        messages and the datagrams whose fragments never all came."""
        for circuit in list(self._unique_circuits()):
            yield from self._close(circuit)
        yield from self._lost(self.fragments.finish())

    # ------------------------------------------------------------------ IPv4 fragments
    def _fragment(self, packet: Packet, frag: Fragment):
        """A fragment: nothing until the one that completes its datagram,
        which is decoded as if it carried the datagram whole."""
        if self._interfaces > 1 and self._duplicate(packet, (
                frag.src, frag.dst, frag.proto, frag.ip_id, frag.offset, frag.more,
                hash(frag.payload), frag.wire_len)):
            self.stats.duplicates += 1
            return Decoded(packet), ()
        repeated = self.fragments.repeated
        whole, lost = self.fragments.add(packet, frag)
        problems = self._lost(lost)
        if self.fragments.repeated != repeated:
            self.stats.skipped["IPv4 fragment seen twice"] += 1
        if whole is None:
            return Decoded(packet), problems
        seg = parse(packet.interface.linktype, whole)
        if seg.__class__ is str:
            self.stats.skipped[f"{seg} (reassembled IPv4)"] += 1
            return Decoded(packet), problems
        # (its records show this packet's frame and time, and its dpkt
        # layers those of the whole datagram)
        carrier = packet._replace(data=whole)
        if seg.proto == PROTO_TCP:
            decoded, more = self._tcp(carrier, seg)
        else:
            decoded, more = self._udp(carrier, seg)
        return decoded._replace(packet=packet), problems + list(more)

    def _lost(self, lost) -> list:
        """Problems (one line each) for datagrams given up by the reassembler;
        their fragments count as skipped packets."""
        problems = []
        for item in lost:
            self.stats.skipped["IPv4 fragment of a lost datagram"] += item.fragments
            self.stats.problems += 1
            if item.cut:
                problems.append(Problem(item.text(), frame=item.first_frame,
                                        offset=item.first_offset, kind="capture",
                                        topic="IPv4 datagram cut", sender=item.src))
            else:
                problems.append(Problem(item.text(), frame=item.first_frame, kind="decode",
                                        topic="IPv4 datagram lost", sender=item.src))
        return problems

    # ------------------------------------------------------------------ TCP
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
                self.stats.skipped["TCP without CA data"] += 1
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
                self.stats.retransmitted_bytes += half.retransmitted - before
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
        src = (seg.src, seg.sport)
        dst = (seg.dst, seg.dport)
        flags = seg.flags
        if flags & TCP_SYN:                  # the SYN's sender is the client
            client, server = (dst, src) if flags & TCP_ACK else (src, dst)
        elif dst in self.servers or (src not in self.servers and seg.dport in self.server_ports):
            client, server = src, dst        # a known server port
        elif src in self.servers or seg.sport in self.server_ports:
            client, server = dst, src
        elif seg.dport < seg.sport:
            client, server = src, dst        # else: the lower port serves
        else:
            client, server = dst, src
        self._circuit_count += 1
        self.generation += 1
        # Without the SYN the capture may start inside a message: resync first.
        circuit = Circuit(client, server, self.max_message, synced=bool(flags & TCP_SYN),
                          number=self._circuit_count)
        if server in self.servers or server[1] in self.server_ports:
            circuit.is_ca = True
        self.circuits[(client[0], client[1], server[0], server[1])] = circuit
        self.circuits[(server[0], server[1], client[0], client[1])] = circuit
        if len(self.circuits) > 2 * MAX_CIRCUITS:
            # too many live circuits: close the least recent
            self._closed.extend(self._evict(None, keep=MAX_CIRCUITS // 2))
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
                self.servers.add(circuit.server)
        if not circuit.is_ca:
            return
        msg_seg = seg
        if swapped:
            msg_seg = seg._replace(src=seg.dst, dst=seg.src, sport=seg.dport, dport=seg.sport)
        stats = self.stats
        for missing, data, _tag in chunks:
            if missing:
                stats.gaps += 1
                stats.lost_bytes += missing
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
                self._learn(records[-1].command, seg)
        self.stats.messages += n

    def _report(self, circuit: Circuit, side: int, text: str, packet: Packet, problems,
                kind: str = "decode") -> None:
        """A problem in a stream: reported once per stream direction, counted always
        (capture damage is always reported, with its byte offset)."""
        self.stats.problems += 1
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
        """Count the bytes ``circuit`` buffers (messages not complete yet,
        segments waiting behind a hole); over ``max_buffered`` for all
        circuits, those of the least recently active ones are given up (down
        to three quarters of it: each look at the circuits frees that much)."""
        d0, d1 = circuit.decoders
        h0, h1 = circuit.halves
        held = len(d0.buf) + len(d1.buf) + h0.pending_bytes + h1.pending_bytes
        self.buffered += held - circuit.held
        circuit.held = held
        if self.buffered <= self.max_buffered:
            return
        for victim in sorted((c for c in self._unique_circuits() if c.held),
                             key=lambda c: c.last_ts):
            if self.buffered <= self.max_buffered * 3 // 4:
                break
            for side in (0, 1):
                decoder, half = victim.decoders[side], victim.halves[side]
                n = len(decoder.buf) + half.pending_bytes
                if n:
                    decoder.gap()
                    half.pending.clear()
                    half.pending_bytes = 0
                    self._report(victim, side, f"{victim.label(side == 0)}: {n} bytes waiting "
                                 f"to be decoded were given up: over the {self.max_buffered}-"
                                 f"byte limit for all circuits; decoding resumes at the next "
                                 f"CA header", packet, problems)
            self.buffered -= victim.held
            victim.held = 0

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
                self.stats.cut_messages += 1
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
            for side in (0, 1):                  # (closed while not reading)
                if circuit.zero[side] is not None:
                    circuit.reopened(side, circuit.last_ts)
            self._closed.append(CircuitClosed(circuit.key, tuple(circuit.lost), tuple(
                None if s is None else Stall(*s) for s in circuit.stalls), circuit.ended_by))
            self.generation += 1

    def _unique_circuits(self):
        seen = set()
        for c in self.circuits.values():
            if id(c) not in seen:
                seen.add(id(c))
                yield c

    def _evict(self, now: Optional[int], keep: Optional[int] = None) -> list:
        """Close circuits idle for IDLE_NS of capture time, or all but the
        ``keep`` most recent ones; returns what closing them delivered."""
        circuits = list(self._unique_circuits())
        if keep is not None and len(circuits) > keep:
            circuits.sort(key=lambda c: c.last_ts)
            victims = circuits[:len(circuits) - keep]
        elif now is not None:
            victims = [c for c in circuits if now - c.last_ts > IDLE_NS]
        else:
            victims = []
        out = []
        for c in victims:
            out.extend(self._close(c))
        if now is not None:
            out.extend(self._lost(self.fragments.expire(now)))
        return out

    # ------------------------------------------------------------------ UDP
    def _udp(self, packet: Packet, seg: Segment):
        role = self._udp_role(seg)
        if role is None:
            self.stats.skipped["UDP not CA"] += 1
            return Decoded(packet), ()
        commands, junk = decode_datagram(seg.payload, role, seg.src, self.max_message)
        problems = []
        notes = []
        label = f"{seg.src}:{seg.sport}->{seg.dst}:{seg.dport}"
        if junk:
            if role == "probe":
                self.stats.skipped["UDP not CA"] += 1
                return Decoded(packet), ()
            self.stats.problems += 1
            text = f"UDP datagram {label} is not CA: {junk}"
            notes.append("pcapca: " + text)
            problems.append(Problem(text, frame=packet.frame, kind="decode",
                                    topic="UDP datagram not CA", sender=seg.src))
            return Decoded(packet, (), tuple(notes)), problems
        role_name = CLIENT_ROLE if role is CLIENT else SERVER_ROLE
        records = []
        for cmd in commands:
            if cmd.__class__ is str:
                self.stats.problems += 1
                notes.append("pcapca: " + cmd)
                problems.append(Problem(f"UDP datagram {label}: {cmd}", frame=packet.frame,
                                        kind="decode", topic="UDP message not decoded",
                                        sender=seg.src))
                continue
            # beacons are sent by servers, also when the repeater forwards them
            records.append(Record(packet, seg, cmd.__class__, header_fields(cmd.header), None, 0,
                                  cmd, SERVER_ROLE if cmd.__class__ is Beacon else role_name,
                                  (seg.src, seg.sport)))
            if role is SERVER or cmd.__class__ is Beacon:
                self._learn(cmd, seg)
        self.stats.messages += len(records)
        return _new(Decoded, (packet, tuple(records), tuple(notes), False)), problems

    def _udp_role(self, seg: Segment):
        sport, dport = seg.sport, seg.dport
        if dport in self.udp_ports:
            return CLIENT
        if sport in self.udp_ports:
            return SERVER
        if dport == self.repeater_port:
            return CLIENT
        if sport == self.repeater_port:
            return SERVER
        # A search sent to a port we did not know yet (e.g. a server on 5066
        # named in EPICS_CA_ADDR_LIST) starts with a version request.
        p = seg.payload
        if len(p) >= 32 and p[0:2] == b"\x00\x00" and p[2:4] == b"\x00\x00" and p[16:18] == b"\x00\x06":
            commands, junk = decode_datagram(p, CLIENT, seg.src, self.max_message)
            if not junk:
                self.udp_ports.add(dport)
                return CLIENT
        return None

    def _duplicate(self, packet: Packet, key: tuple) -> bool:
        """Was this packet already seen on another interface? Only called for
        captures with several interfaces; packets are identified by ``key``:
        their addresses, IP id, TCP sequence/ack/flags (or fragment offset)
        and payload."""
        recent = self.recent_packets
        seen = recent.get(key)
        if seen is not None and seen[1] is not packet.interface and abs(packet.ts - seen[0]) <= DUP_WINDOW_NS:
            return True
        recent[key] = (packet.ts, packet.interface)
        if len(recent) > DUP_MEMORY:
            recent.popitem(last=False)
        return False

    # ------------------------------------------------------------------ learning
    def _learn(self, cmd, seg: Segment) -> None:
        """Server addresses announced by search replies and beacons."""
        if cmd.__class__ is SearchResponse:
            ip = cmd.ip
            if ip in ("255.255.255.255", "0.0.0.0"):
                ip = seg.src
            self.servers.add((ip, cmd.port))
        elif cmd.__class__ is Beacon:
            ip = cmd.address
            if ip in ("255.255.255.255", "0.0.0.0"):
                ip = seg.src
            self.servers.add((ip, cmd.server_port))
