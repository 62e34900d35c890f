"""Link, IPv4 and transport headers: from a captured frame to a TCP/UDP segment.

The hot path parses the few header fields pcapca needs with ``struct``
(building dpkt objects for every packet costs more than the rest of the
decoding); ``dpkt_layers`` builds the dpkt objects that caproto-shark's
``{ethernet}``, ``{ip}`` and ``{transport}`` format tokens expose, only when a
format string asks for them.
"""
from __future__ import annotations

import socket
import struct
from typing import NamedTuple, Optional, Tuple, Union

import dpkt

# Link types (values as they appear in capture files)
DLT_NULL = 0
DLT_EN10MB = 1
DLT_RAW_OPENBSD = 12   # DLT_RAW on some platforms (e.g. OpenBSD)
DLT_RAW_BSD = 14       # DLT_RAW on BSD/OS
DLT_RAW = 101          # LINKTYPE_RAW
DLT_LOOP = 108
DLT_LINUX_SLL = 113
DLT_IPV4 = 228
DLT_LINUX_SLL2 = 276

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN = (0x8100, 0x88A8, 0x9100, 0x9200)
AF_INET = 2

PROTO_TCP = 6
PROTO_UDP = 17

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_ACK = 0x10

_u16 = struct.Struct("!H").unpack_from
_ipv4 = struct.Struct("!BBHHHBBH8s").unpack_from
_tcp = struct.Struct("!HHIIBBH").unpack_from
_udp = struct.Struct("!HHH").unpack_from
_ntoa = socket.inet_ntoa


class Segment(NamedTuple):
    """A TCP segment or UDP datagram carried by IPv4."""
    proto: int            # PROTO_TCP or PROTO_UDP
    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes        # transport payload as captured (may be cut by snaplen)
    wire_len: int         # payload length on the wire (> len(payload) if cut)
    seq: int = 0          # TCP only
    ack: int = 0
    flags: int = 0
    ip_id: int = 0
    ip_offset: int = 0    # where the IPv4 header starts in the frame
    window: int = -1      # TCP: the window its sender advertises (0: it is not reading)


class Fragment(NamedTuple):
    """A fragment of an IPv4 datagram (``ip_reassembly`` joins them)."""
    proto: int            # PROTO_TCP or PROTO_UDP
    src: str
    dst: str
    ip_id: int
    offset: int           # where its bytes go in the datagram's payload
    more: bool            # More Fragments: not the last one
    payload: bytes        # its part of the IPv4 payload, as captured
    wire_len: int         # that part's length on the wire (> len(payload) if cut)
    ip_offset: int        # where the IPv4 header starts in the frame
    header_len: int       # IPv4 header length


def ip_offset(linktype: int, data: bytes) -> Union[int, str]:
    """Offset of the IPv4 header in ``data``, or a reason (str) to skip it."""
    if linktype == DLT_EN10MB:
        off = 12
        while True:
            if len(data) < off + 2:
                return "truncated link header"
            etype = _u16(data, off)[0]
            if etype in ETH_VLAN:
                off += 4
                continue
            off += 2
            break
    elif linktype == DLT_LINUX_SLL:
        if len(data) < 16:
            return "truncated link header"
        etype = _u16(data, 14)[0]
        off = 16
    elif linktype == DLT_LINUX_SLL2:
        if len(data) < 20:
            return "truncated link header"
        etype = _u16(data, 0)[0]
        off = 20
    elif linktype in (DLT_NULL, DLT_LOOP):
        if len(data) < 4:
            return "truncated link header"
        family = data[:4]
        # host byte order (NULL) or network byte order (LOOP): accept both
        if family in (b"\x02\x00\x00\x00", b"\x00\x00\x00\x02"):
            return 4
        return "not IPv4"
    elif linktype in (DLT_RAW, DLT_RAW_OPENBSD, DLT_RAW_BSD, DLT_IPV4):
        if not data:
            return "empty packet"
        return 0 if data[0] >> 4 == 4 else ("IPv6" if data[0] >> 4 == 6 else "not IPv4")
    else:
        return f"unsupported link type {linktype}"
    while etype in ETH_VLAN and linktype != DLT_EN10MB:   # SLL with VLAN tags
        if len(data) < off + 4:
            return "truncated link header"
        etype = _u16(data, off + 2)[0]
        off += 4
    if etype == ETH_IPV4:
        return off
    if etype == ETH_IPV6:
        return "IPv6"
    return "not IPv4"


_address_pairs: dict = {}


def _addresses(raw: bytes) -> Tuple[str, str]:
    """(src, dst) as text from the 8 address bytes of an IPv4 header."""
    pair = _address_pairs.get(raw)
    if pair is None:
        if len(_address_pairs) > 65536:
            _address_pairs.clear()
        pair = _address_pairs[raw] = (_ntoa(raw[:4]), _ntoa(raw[4:]))
    return pair


# Ethernet type + IPv4 header without options + TCP header up to the window:
# most frames of a CA capture are exactly this, parsed with one unpack.
_eth_ipv4_tcp = struct.Struct("!12xHBxHHHxBxx8sHHIIBBH").unpack_from
_new = tuple.__new__     # builds a Segment without NamedTuple's Python-level __new__


def parse(linktype: int, data: bytes) -> Union[Segment, Fragment, str]:
    """The TCP/UDP segment in a captured frame, a fragment of one, or a
    reason (str) to skip it."""
    if linktype == DLT_EN10MB and len(data) >= 54:
        (etype, vihl, total_len, ip_id, frag, proto, addrs,
         sport, dport, seq, ack, doff, flags, window) = _eth_ipv4_tcp(data)
        if etype == ETH_IPV4 and vihl == 0x45 and proto == PROTO_TCP and not frag & 0x3FFF:
            hlen = (doff >> 4) * 4
            end_wire = 14 + total_len
            end = end_wire if end_wire < len(data) else len(data)
            if hlen >= 20 and end >= 34 + hlen:
                src, dst = _addresses(addrs)
                return _new(Segment, (PROTO_TCP, src, dst, sport, dport, data[34 + hlen:end],
                                      end_wire - 34 - hlen, seq, ack, flags, ip_id, 14,
                                      window))
    return _parse(linktype, data)


def _parse(linktype: int, data: bytes) -> Union[Segment, Fragment, str]:
    if linktype == DLT_EN10MB and data[12:14] == b"\x08\x00":
        off = 14                                   # Ethernet, IPv4
    else:
        off = ip_offset(linktype, data)
        if off.__class__ is str:
            return off
    if len(data) < off + 20:
        return "truncated IPv4 header"
    vihl, _tos, total_len, ip_id, frag, _ttl, proto, _sum, addrs = _ipv4(data, off)
    if vihl >> 4 != 4:
        return "not IPv4"
    ihl = (vihl & 0x0F) * 4
    if ihl < 20:
        return "bad IPv4 header length"
    if proto != PROTO_TCP and proto != PROTO_UDP:
        return "not TCP or UDP"
    src, dst = _addresses(addrs)
    start = off + ihl
    # Ethernet pads short frames: the IP total length says where data ends.
    # A total length of 0 is a packet captured before segmentation offload
    # cut it up and set its lengths (TSO; Linux "BIG TCP" packets over 64 KiB,
    # which the field cannot hold): it ends with the frame, as Wireshark reads it.
    end_wire = off + total_len if total_len else len(data)
    end = min(end_wire, len(data))
    if frag & 0x3FFF:
        if end_wire < start:
            return "bad IPv4 total length"
        return Fragment(proto, src, dst, ip_id, (frag & 0x1FFF) * 8, bool(frag & 0x2000),
                        data[start:end], end_wire - start, off, ihl)
    if proto == PROTO_TCP:
        if end < start + 20:
            return "truncated TCP header"
        sport, dport, seq, ack, doff, flags, window = _tcp(data, start)
        hlen = (doff >> 4) * 4
        if hlen < 20 or end < start + hlen:
            return "truncated TCP header"
        return Segment(PROTO_TCP, src, dst, sport, dport,
                       data[start + hlen:end], end_wire - start - hlen,
                       seq, ack, flags, ip_id, off, window)
    if end < start + 8:
        return "truncated UDP header"
    sport, dport, ulen = _udp(data, start)
    wire = max(ulen - 8, 0)
    payload = data[start + 8:min(end, start + max(ulen, 8))]
    return Segment(PROTO_UDP, src, dst, sport, dport, payload, wire,
                   0, 0, 0, ip_id, off)


def dpkt_layers(linktype: int, data: bytes, ip_off: int) -> Tuple[object, object, object]:
    """(ethernet, ip, transport) as dpkt objects, for caproto-shark's tokens.

    ``ethernet`` is the dpkt object of the link layer (Ethernet, SLL, SLL2,
    Loopback) or None for raw IP."""
    link: Optional[object]
    if linktype == DLT_EN10MB:
        link = dpkt.ethernet.Ethernet(data)
    elif linktype == DLT_LINUX_SLL:
        link = dpkt.sll.SLL(data)
    elif linktype == DLT_LINUX_SLL2:
        link = dpkt.sll2.SLL2(data)
    elif linktype in (DLT_NULL, DLT_LOOP):
        link = dpkt.loopback.Loopback(data)
    else:
        link = None
    ip = dpkt.ip.IP(data[ip_off:])
    return link, ip, ip.data
