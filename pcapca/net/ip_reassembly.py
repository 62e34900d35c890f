"""IPv4 reassembly: the fragments of a datagram in, the whole datagram out.

A datagram bigger than its path's MTU leaves the sender in fragments, and
only the first carries the UDP (or TCP) header. caproto's clients pack
searches into UDP datagrams of up to 1472 bytes, more than the MTU of a
VXLAN overlay network (1450: Docker, Kubernetes) or a VPN lets through
whole: without reassembly every search in such a datagram would be lost,
and the replies would name no PV.

Fragments are joined by (source, destination, protocol, IP id), as RFC 791
says and Wireshark does. The datagram is handed on with the packet whose
fragment completes it (Wireshark's "Reassembled IPv4 in frame N") as a frame
that carries it whole: the first fragment's link and IPv4 headers (total
length, fragment field and checksum set for the whole) followed by the joined
payload, so the rest of the pipeline reads it as any other packet.

Memory is bounded as Linux bounds it (``net.ipv4.ipfrag_high_thresh``,
``ipfrag_time``): at most ``MAX_PENDING_BYTES`` wait, the oldest datagram
going first, and a datagram not complete ``TIMEOUT_NS`` of capture time after
its first fragment is given up (each fragment counts its bytes and
``FRAGMENT_COST``; a datagram has at most ``MAX_FRAGMENTS``). A fragment
repeated exactly is ignored; one
that overlaps other bytes makes the datagram given up, as Linux discards
such a datagram (its receiver never got it).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .link import PROTO_TCP, Fragment

MAX_PENDING_BYTES = 4 << 20      # Linux's ipfrag_high_thresh
TIMEOUT_NS = 30 * 10**9          # Linux's ipfrag_time: 30 s
MAX_DATAGRAM = 65535             # an IPv4 total length can't say more
MAX_FRAGMENTS = 1024             # per datagram (64 KiB over the smallest common MTU: 120)
FRAGMENT_COST = 256              # what keeping a fragment costs besides its bytes



@dataclass(frozen=True)
class Lost:
    """A datagram given up: why, and the fragments the capture has of it."""
    proto: int
    src: str
    dst: str
    ip_id: int
    reason: str
    first_frame: int      # frame of its first fragment in the capture
    first_offset: int     # that packet's byte offset in the file
    fragments: int        # fragments of it the capture has
    captured: int         # bytes of its payload the capture has
    cut: bool = False     # the capture's snaplen cut a fragment (damage)

    def text(self) -> str:
        proto = "TCP" if self.proto == PROTO_TCP else "UDP"
        many = "fragment" if self.fragments == 1 else "fragments"
        return (f"IPv4 datagram {self.src}->{self.dst} ({proto}, IP id {self.ip_id:#06x}) "
                f"{self.reason}: the capture has {self.captured} of its bytes in "
                f"{self.fragments} {many}; its CA messages are lost")


class _Datagram:
    __slots__ = ("parts", "size", "covered", "head", "ip_at", "first_frame", "first_offset",
                 "first_ts", "captured", "fragments", "cost", "cut")

    def __init__(self, packet) -> None:
        self.parts: Dict[int, Tuple[bytes, int]] = {}   # offset -> (captured, wire length)
        self.size: Optional[int] = None      # payload length, known from the last fragment
        self.covered = 0                     # bytes the parts cover (they never overlap)
        self.head: Optional[bytes] = None    # link + IPv4 header of the first fragment
        self.ip_at = 0                       # where its IPv4 header starts
        self.first_frame = packet.frame
        self.first_offset = packet.offset
        self.first_ts = packet.ts
        self.captured = 0
        self.fragments = 0
        self.cost = 0                        # its share of pending_bytes
        self.cut = False


class Reassembler:
    """The IPv4 datagrams whose fragments are still coming, oldest first
    (at most ``max_pending_bytes`` of fragments, each for ``timeout_ns``)."""

    def __init__(self, max_pending_bytes: int = MAX_PENDING_BYTES,
                 timeout_ns: int = TIMEOUT_NS) -> None:
        self.max_pending_bytes = max_pending_bytes
        self.timeout_ns = timeout_ns
        self.pending: Dict[tuple, _Datagram] = {}     # oldest first (insertion order)
        self.pending_bytes = 0
        self.repeated = 0                             # fragments seen twice, ignored

    def add(self, packet, frag: Fragment) -> Tuple[Optional[bytes], List[Lost]]:
        """Take the fragment ``frag`` of ``packet``: (the frame carrying the
        whole datagram if this fragment completes it else None, datagrams
        given up meanwhile)."""
        lost = self.expire(packet.ts)
        key = (frag.src, frag.dst, frag.proto, frag.ip_id)
        dg = self.pending.get(key)
        if dg is None:
            dg = self.pending[key] = _Datagram(packet)
        end = frag.offset + frag.wire_len
        reason = None
        for at, (data, wire_len) in dg.parts.items():
            if at < end and frag.offset < at + wire_len:
                if at == frag.offset and wire_len == frag.wire_len and data == frag.payload:
                    self.repeated += 1
                    return None, lost
                reason = "has fragments that overlap (the receiver discards it)"
                break
        if reason is None and not frag.more:
            if dg.size is not None and dg.size != end:
                reason = "has two last fragments"
            elif any(at + wire_len > end for at, (_, wire_len) in dg.parts.items()):
                reason = "has a fragment past its end"
            dg.size = end
        if reason is None and dg.size is not None and end > dg.size:
            reason = "has a fragment past its end"
        if reason is None and frag.header_len + end > MAX_DATAGRAM:
            reason = f"is longer than {MAX_DATAGRAM} bytes"
        if reason is None and dg.fragments == MAX_FRAGMENTS:
            reason = f"has over {MAX_FRAGMENTS} fragments"
        dg.fragments += 1
        dg.captured += len(frag.payload)
        if reason is not None:
            lost.append(self._give_up(key, reason))
            return None, lost
        if frag.wire_len:               # (an empty one can only say where the end is)
            dg.parts[frag.offset] = (frag.payload, frag.wire_len)
            dg.covered += frag.wire_len
        cost = len(frag.payload) + FRAGMENT_COST
        dg.cost += cost
        self.pending_bytes += cost
        if len(frag.payload) < frag.wire_len:
            dg.cut = True
        if frag.offset == 0:
            dg.head = packet.data[:frag.ip_offset + frag.header_len]
            dg.ip_at = frag.ip_offset
        # (the parts are disjoint and within the datagram: covering its
        # length, they cover all of it)
        if dg.covered == dg.size and dg.head is not None:
            if dg.cut:
                lost.append(self._give_up(key, "was cut by the capture's snaplen", cut=True))
                return None, lost
            del self.pending[key]
            self.pending_bytes -= dg.cost
            return _whole(dg), lost
        while self.pending_bytes > self.max_pending_bytes and self.pending:
            lost.append(self._give_up(next(iter(self.pending)),
                                      f"was given up: over {self.max_pending_bytes} bytes of "
                                      "fragments waiting"))
        return None, lost

    def expire(self, now: int) -> List[Lost]:
        """Give up the datagrams whose first fragment is older than the timeout."""
        lost: List[Lost] = []
        pending = self.pending
        while pending:
            key = next(iter(pending))
            if now - pending[key].first_ts <= self.timeout_ns:
                break
            lost.append(self._give_up(key, f"was not complete {self.timeout_ns // 10**9} s "
                                           "after its first fragment"))
        return lost

    def finish(self) -> List[Lost]:
        """End of the capture: the datagrams still waiting are lost."""
        return [self._give_up(key, "is not complete at the end of the capture")
                for key in list(self.pending)]

    def _give_up(self, key: tuple, reason: str, cut: bool = False) -> Lost:
        dg = self.pending.pop(key)
        self.pending_bytes -= dg.cost
        src, dst, proto, ip_id = key
        return Lost(proto, src, dst, ip_id, reason, dg.first_frame, dg.first_offset,
                    dg.fragments, dg.captured, cut or dg.cut)


def _whole(dg: _Datagram) -> bytes:
    """The frame carrying the datagram whole (see the module's docstring)."""
    payload = b"".join(data for _, (data, _w) in sorted(dg.parts.items()))
    head = bytearray(dg.head)
    ip = dg.ip_at
    struct.pack_into("!H", head, ip + 2, len(head) - ip + len(payload))   # total length
    struct.pack_into("!H", head, ip + 6, 0)                               # not a fragment
    struct.pack_into("!H", head, ip + 10, 0)
    struct.pack_into("!H", head, ip + 10, _checksum(bytes(head[ip:])))
    return bytes(head) + payload


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
