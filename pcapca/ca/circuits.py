"""The shared CA decoder: packets in, one ``Decoded`` per packet out.

Every reader feeds it and every writer consumes it. It parses link/IP/TCP/UDP
headers (``net.link``), joins IPv4 fragments (``net.ip_reassembly``), drops
packets captured twice (``duplicates``), and hands TCP to its circuit table
(``tcp_circuits``) and UDP to ``datagrams``, in the roles ``roles`` decides.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Optional, Union

from ..items import Packet, Passthrough, Problem
from ..net.ip_reassembly import Reassembler
from ..net.link import PROTO_TCP, Fragment, Segment, parse
from .counts import Counts
from .datagrams import decode_udp
from .duplicates import Duplicates
from .headers import DEFAULT_MAX_MESSAGE
from .records import Decoded
from .roles import CA_REPEATER_PORT, CA_SERVER_PORT, Roles
from .shown import ShownProblems
from .tcp_circuits import CircuitTable

_SHB = 0x0A0D0D0A            # pcapng block types (pcapng_io.SHB, IDB; not imported:
_IDB = 1                     # it loads python-pcapng, which a legacy pcap never needs)
EVICT_EVERY = 8192           # packets between two looks for idle circuits


class Decoder(CircuitTable):
    """The decoder's whole state: its counts, the roles learned, the packets
    seen lately (duplicates), IPv4 fragments waiting and the live TCP
    circuits (each bounded by its own module); picklable between packets."""

    def __init__(self, *, max_message: int = DEFAULT_MAX_MESSAGE,
                 server_ports: Iterable[int] = (CA_SERVER_PORT,),
                 repeater_port: int = CA_REPEATER_PORT):
        super().__init__(max_message)
        self.roles = Roles(server_ports, repeater_port, max_message)
        self.counts = Counts()
        self.duplicates = Duplicates()
        self.problem_lines = ShownProblems(self.counts)   # the problems shown so far
        self._interfaces = 0                         # interfaces declared (pcapng IDBs)
        self.fragments = Reassembler()               # IPv4 datagrams sent in fragments

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
        return EVICT_EVERY - 1 - self.counts.packets % EVICT_EVERY

    def skimmed(self, packets: int, messages: int) -> None:
        """Count the packets and messages fast.skim accounted for."""
        self.counts.packets += packets
        self.counts.messages += messages

    # ------------------------------------------------------------------ API
    def run(self, items: Iterable[Union[Packet, Passthrough, Problem]], end: bool = True
            ) -> Iterator[Union[Decoded, Passthrough, Problem]]:
        """Decode a stream of reader items; yields one ``Decoded`` per packet
        (in input order) and passes other items through. ``end``: the input
        ends the capture (``finish``); else more follows, maybe in a copy of
        this decoder."""
        counts = self.counts
        for item in items:
            if item.__class__ is not Packet:
                if item.__class__ is Problem:
                    if item.kind == "loss":      # (not damage: the capture says it lost packets)
                        section, iid, dropped = item.detail
                        counts.capture_drops[section, iid] = dropped
                    elif item.kind != "order":
                        counts.capture_problems += 1
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
            counts.packets += 1
            decoded, problems = self.packet(item)
            if problems:
                yield from self.problem_lines.only_shown(problems)
            yield decoded
            if counts.packets % EVICT_EVERY == 0:
                yield from self.problem_lines.only_shown(self._evict(item.ts))
            if self._closed:
                yield from self.problem_lines.only_shown(self._closed)
                self._closed.clear()
        if end:
            yield from self.problem_lines.only_shown(self.finish())
        yield from self.problem_lines.only_shown(self._closed)
        self._closed.clear()

    def shown(self, problem: Problem) -> bool:
        """Is ``problem`` to be shown (see ``ShownProblems.shown``)?"""
        return self.problem_lines.shown(problem)

    def packet(self, packet: Packet):
        seg = parse(packet.interface.linktype, packet.data)
        if seg.__class__ is not Segment:
            if seg.__class__ is str:
                self.counts.skipped[seg] += 1
                return Decoded(packet), ()
            return self._fragment(packet, seg)
        if self._interfaces > 1 and self.duplicates.seen(packet, (
                seg.src, seg.sport, seg.dst, seg.dport, seg.ip_id, seg.seq, seg.ack, seg.flags,
                hash(bytes(seg.payload)), seg.wire_len)):
            # the same packet captured on another interface (e.g. lo and any)
            self.counts.duplicates += 1
            return Decoded(packet), ()
        if seg.proto == PROTO_TCP:
            return self._tcp(packet, seg)
        return decode_udp(self.roles, self.counts, packet, seg)

    def finish(self) -> Iterator[Problem]:
        """End of input: deliver data waiting behind holes, report partial
        messages and the datagrams whose fragments never all came."""
        for circuit in list(self._unique_circuits()):
            yield from self._close(circuit)
        yield from self._lost(self.fragments.finish())

    def _fragment(self, packet: Packet, frag: Fragment):
        """A fragment: nothing until the one that completes its datagram,
        which is decoded as if it carried the datagram whole."""
        if self._interfaces > 1 and self.duplicates.seen(packet, (
                frag.src, frag.dst, frag.proto, frag.ip_id, frag.offset, frag.more,
                hash(frag.payload), frag.wire_len)):
            self.counts.duplicates += 1
            return Decoded(packet), ()
        repeated = self.fragments.repeated
        whole, lost = self.fragments.add(packet, frag)
        problems = self._lost(lost)
        if self.fragments.repeated != repeated:
            self.counts.skipped["IPv4 fragment seen twice"] += 1
        if whole is None:
            return Decoded(packet), problems
        seg = parse(packet.interface.linktype, whole)
        if seg.__class__ is str:
            self.counts.skipped[f"{seg} (reassembled IPv4)"] += 1
            return Decoded(packet), problems
        # (its records show this packet's frame and time, and its dpkt
        # layers those of the whole datagram)
        carrier = packet._replace(data=whole)
        if seg.proto == PROTO_TCP:
            decoded, more = self._tcp(carrier, seg)
        else:
            decoded, more = decode_udp(self.roles, self.counts, carrier, seg)
        return decoded._replace(packet=packet), problems + list(more)

    def _lost(self, lost) -> list:
        """Problems (one line each) for datagrams given up by the reassembler;
        their fragments count as skipped packets."""
        problems = []
        for item in lost:
            self.counts.skipped["IPv4 fragment of a lost datagram"] += item.fragments
            self.counts.problems += 1
            if item.cut:
                problems.append(Problem(item.text(), frame=item.first_frame,
                                        offset=item.first_offset, kind="capture",
                                        topic="IPv4 datagram cut", sender=item.src))
            else:
                problems.append(Problem(item.text(), frame=item.first_frame, kind="decode",
                                        topic="IPv4 datagram lost", sender=item.src))
        return problems

    def _evict(self, now: int) -> list:
        """Close circuits idle for IDLE_NS (tcp_circuits) and give up fragments past their
        timeout; returns what that delivered."""
        return self._evict_circuits(now) + self._lost(self.fragments.expire(now))
