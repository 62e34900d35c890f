"""Packet and capture builders shared by the tests, bench/ and scripts/.

Bytes made with struct, without pcapca (they are its input): pcap files and
records, Ethernet/IPv4/TCP/UDP frames, edits of the recorded fixtures, and
the damaged captures of docs/troubleshooting.md. bench/ and scripts/ import
it as ``tests.builders`` with the repository root on sys.path (it needs
numpy, not pytest).
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

ETHERNET_IPV4 = b"\0" * 12 + b"\x08\x00"       # zero MAC addresses, type IPv4
LOCALHOST = bytes([127, 0, 0, 1])
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def fixture(name: str) -> Path:
    path = FIXTURES / name
    assert path.exists(), f"missing fixture {path} (record it with `make fixtures`)"
    return path


def data(name: str) -> bytes:
    return fixture(name).read_bytes()


# ------------------------------------------------------------------ frames


def internet_checksum(data: bytes) -> int:
    """RFC 1071: the one's complement of the one's complement sum of the
    16-bit words."""
    if len(data) & 1:
        data += b"\0"
    if len(data) > 512:             # (numpy sums long buffers faster)
        s = int(np.frombuffer(data, dtype=">u2").sum(dtype=np.uint64))
    else:                           # (the bytes as one number: the same sum, modulo 0xFFFF)
        s = int.from_bytes(data, "big")
    # the sum with end-around carries: s modulo 0xFFFF, in 1..0xFFFF unless every word is 0
    return ~((s - 1) % 0xFFFF + 1 if s else 0) & 0xFFFF


def ipv4(src: bytes, dst: bytes, proto: int, body: bytes, ip_id: int = 0,
         checksum: bool = True, flags_offset: int = 0x4000) -> bytes:
    """An IPv4 packet (20-byte header, TTL 64, DF unless ``flags_offset``
    says otherwise) around ``body``; its header checksum is 0 unless
    ``checksum``."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), ip_id & 0xFFFF, flags_offset, 64,
                     proto, 0, src, dst)
    if checksum:
        ip = ip[:10] + struct.pack("!H", internet_checksum(ip)) + ip[12:]
    return ip + body


def tcp(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
        payload: bytes = b"", options: bytes = b"", checksum: bool = True) -> bytes:
    """A TCP segment (window 65535) from ``src``:``sport`` to ``dst``:``dport``;
    its checksum is 0 unless ``checksum``."""
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      (5 + len(options) // 4) << 4, flags, 65535, 0, 0) + options
    if checksum:
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(hdr) + len(payload))
        hdr = hdr[:16] + struct.pack("!H", internet_checksum(pseudo + hdr + payload)) + hdr[18:]
    return hdr + payload


def udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes,
        checksum: bool = True) -> bytes:
    """A UDP datagram; its checksum is 0 (none) unless ``checksum``."""
    length = 8 + len(payload)
    c = 0
    if checksum:
        pseudo = src + dst + struct.pack("!BBH", 0, 17, length)
        c = internet_checksum(pseudo + struct.pack("!HHHH", sport, dport, length, 0)
                              + payload) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, length, c) + payload


# ------------------------------------------------------------------ pcap


def pcap_header(snaplen: int = 262144, linktype: int = 1) -> bytes:
    """The file header of a little-endian pcap with microsecond time stamps."""
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(sec: int, frac: int, frame: bytes) -> bytes:
    """A little-endian pcap record holding the whole ``frame``."""
    return struct.pack("<IIII", sec, frac, len(frame), len(frame)) + frame


def records(d: bytes):
    """[[sec, frac, orig_len, data], ...] of a little-endian pcap."""
    off, out = 24, []
    while off + 16 <= len(d):
        s, f, cl, length = struct.unpack_from("<IIII", d, off)
        out.append([s, f, length, d[off + 16:off + 16 + cl]])
        off += 16 + cl
    return out


def offsets(d: bytes):
    """Byte offset of every packet record of a pcap."""
    off, out = 24, []
    while off + 16 <= len(d):
        out.append(off)
        off += 16 + struct.unpack_from("<I", d, off + 8)[0]
    return out


def build(head: bytes, recs) -> bytes:
    return head + b"".join(struct.pack("<IIII", s, f, len(x), n) + x for s, f, n, x in recs)


def split_pcap(src, dst_a, dst_b, at_frame):
    """Frames before ``at_frame`` of the (little-endian) pcap ``src`` to
    ``dst_a``, the others to ``dst_b``."""
    data = open(src, "rb").read()
    recs = records(data)
    open(dst_a, "wb").write(build(data[:24], recs[:at_frame - 1]))
    open(dst_b, "wb").write(build(data[:24], recs[at_frame - 1:]))


BASIC = "basic.pcap"


def basic_recs():
    return records(data(BASIC))


def pieces():
    """fragments.pcap: (file header, records)."""
    d = fixture("fragments.pcap").read_bytes()
    return d[:24], records(d)


def set_ip(rec, **fields):
    """Change fields of a record's IPv4 header (offset in bytes, mf)."""
    frame = bytearray(rec[3])
    word = struct.unpack_from("!H", frame, 20)[0]
    if "offset" in fields:
        word = (word & ~0x1FFF) | fields["offset"] // 8
    if "mf" in fields:
        word = (word | 0x2000) if fields["mf"] else (word & ~0x2000)
    struct.pack_into("!H", frame, 20, word)
    rec[3] = bytes(frame)


def tcp_offsets(frame: bytes):
    """(tcp header offset, payload offset) of an Ethernet/IPv4/TCP frame, or None."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    t = 14 + (frame[14] & 15) * 4
    return t, t + (frame[t + 12] >> 4) * 4


def poke_ca(recs, index: int, fmt: str, at: int, *values) -> None:
    """struct.pack_into the CA payload of record ``index`` (0-based)."""
    x = bytearray(recs[index][3])
    struct.pack_into(fmt, x, tcp_offsets(x)[1] + at, *values)
    recs[index][3] = bytes(x)


def replace_payload(recs, index: int, new: bytes) -> None:
    """Replace the TCP payload of record ``index`` and shift the sequence
    numbers (and the peer's acks) of that direction after it."""
    x = recs[index][3]
    t, p = tcp_offsets(x)
    delta = len(new) - (len(x) - p)
    y = bytearray(x[:p] + new)
    struct.pack_into(">H", y, 16, len(y) - 14)
    recs[index][3] = bytes(y)
    recs[index][2] = len(y)
    _shift_seq(recs, index + 1, x[26:30] + x[t:t + 2], delta)


def send_in_segments(recs, index: int, new: bytes, mss: int = 1448) -> int:
    """Replace the TCP payload of record ``index`` by ``new`` sent in
    segments of at most ``mss`` bytes (records inserted after it), shifting
    that direction's sequence numbers after them; returns how many."""
    x = recs[index][3]
    t, p = tcp_offsets(x)
    seq = struct.unpack_from(">I", x, t + 4)[0]
    segs = []
    for at in range(0, len(new), mss):
        y = bytearray(x[:p] + new[at:at + mss])
        struct.pack_into(">H", y, 16, len(y) - 14)
        struct.pack_into(">I", y, t + 4, (seq + at) % 2**32)
        segs.append([recs[index][0], recs[index][1], len(y), bytes(y)])
    recs[index:index + 1] = segs
    _shift_seq(recs, index + len(segs), x[26:30] + x[t:t + 2], len(new) - (len(x) - p))
    return len(segs)


def _shift_seq(recs, start: int, me: bytes, delta: int) -> None:
    """Add ``delta`` to the sequence numbers sent from ``me`` (address and
    port) and to the peer's acks of them, in the records from ``start``."""
    for r in recs[start:]:
        y = bytearray(r[3])
        offs = tcp_offsets(y)
        if offs is None:
            continue
        t = offs[0]
        if y[26:30] + y[t:t + 2] == me:
            struct.pack_into(">I", y, t + 4, (struct.unpack_from(">I", y, t + 4)[0] + delta) % 2**32)
        elif y[30:34] + y[t + 2:t + 4] == me:
            struct.pack_into(">I", y, t + 8, (struct.unpack_from(">I", y, t + 8)[0] + delta) % 2**32)
        r[3] = bytes(y)


# ------------------------------------------------------------------ pcapng


def blocks(d: bytes):
    """[(offset, type, length)] of a little-endian pcapng."""
    off, out = 0, []
    while off + 12 <= len(d):
        btype, blen = struct.unpack_from("<II", d, off)
        out.append((off, btype, blen))
        off += blen
    return out


def isb_counts(d: bytearray, isb_offset: int, **values) -> None:
    """Set the 8-byte counters (``ifrecv``, ``ifdrop``, ``osdrop``) of the
    Interface Statistics Block at ``isb_offset`` that it already has."""
    codes = {"ifrecv": 4, "ifdrop": 5, "osdrop": 7}
    i = isb_offset + 20
    found = set()
    while True:
        code, length = struct.unpack_from("<HH", d, i)
        if code == 0:
            break
        for name, c in codes.items():
            if c == code and name in values:
                struct.pack_into("<Q", d, i + 4, values[name])
                found.add(name)
        i += 4 + length + (-length % 4)
    assert found == set(values), found


# ------------------------------------------------------------ crafted circuits


def tcp_capture(steps, gap_us: int = 1, handshake: bool = True, order=None,
                port: int = 5064) -> bytes:
    """A pcap of one TCP connection 127.0.0.1:40000 -> 127.0.0.1:``port`` (with
    its handshake unless not ``handshake``), then ``steps``: (True: from the
    client, False: from the server, "udp": a datagram from port 40001 to
    5064, or "syn": a SYN from the client, payload), TCP data sent with
    PSH|ACK; one packet every ``gap_us``
    microseconds, in ``order`` (indices into the frames) if given.
    No checksums (0)."""
    seq = {True: 1000, False: 5000}
    frames = []

    def frame(from_client, flags, payload=b""):
        sport, dport = (40000, port) if from_client else (port, 40000)
        segment = tcp(LOCALHOST, LOCALHOST, sport, dport, seq[from_client],
                      seq[not from_client] if flags & ACK else 0, flags, payload,
                      checksum=False)
        frames.append(ipv4(LOCALHOST, LOCALHOST, 6, segment, checksum=False))
        seq[from_client] = (seq[from_client] + len(payload) + (1 if flags & SYN else 0)) \
            & 0xFFFFFFFF

    if handshake:
        frame(True, SYN)
        frame(False, SYN | ACK)
        frame(True, ACK)
    for who, payload in steps:
        if who == "udp":
            frames.append(ipv4(LOCALHOST, LOCALHOST, 17,
                               udp(LOCALHOST, LOCALHOST, 40001, 5064, payload, checksum=False),
                               checksum=False))
        elif who == "syn":
            frame(True, SYN)           # (the client's SYN again, its sequence number moved on)
        else:
            frame(who, PSH | ACK, payload)
    if order is not None:
        frames = [frames[i] for i in order]
    return pcap_header() + b"".join(pcap_record(1_800_000_000, i * gap_us, ETHERNET_IPV4 + f)
                                    for i, f in enumerate(frames))


def search_pcap(names) -> bytes:
    """pcap bytes: one Ethernet/IPv4/UDP packet 127.0.0.1:40000 -> :5064
    per name, a CA SearchRequest (command 6) for that name (bytes)."""
    out = [pcap_header(snaplen=65535)]
    for i, name in enumerate(names):
        body = name + b"\0" * (8 - len(name) % 8)
        ca = struct.pack("!HHHHII", 6, len(body), 5, 13, i + 1, i + 1) + body
        ip = ipv4(LOCALHOST, LOCALHOST, 17, udp(LOCALHOST, LOCALHOST, 40000, 5064, ca,
                                                checksum=False), i, flags_offset=0)
        out.append(pcap_record(1700000000 + i, 0, ETHERNET_IPV4 + ip))
    return b"".join(out)


def ca_bytes(*commands) -> bytes:
    """caproto commands serialised one after the other."""
    return b"".join(bytes(c) for c in commands)


def lying_reply(count: int, dtype: int = 0, extended: bool = True, payload=b"abcdefgh") -> bytes:
    """A server's ReadNotifyResponse (ioid 0) whose header says ``count``
    values of ``dtype`` (default DBR_STRING) with ``payload``."""
    if extended:
        return struct.pack(">HHHHIIII", 15, 0xFFFF, dtype, 0, 1, 0, len(payload), count) + payload
    return struct.pack(">HHHHII", 15, len(payload), dtype, count, 1, 0) + payload


def lying_count_recs(reply: bytes):
    """basic.pcap with frame 17 (FIX:dbl's first read reply) replaced by ``reply``."""
    recs = basic_recs()
    replace_payload(recs, 16, reply)
    return recs


# ------------------------------------------- the damaged captures of the docs


def _basic(edit, name="basic.pcap") -> bytes:
    """basic.pcap (or ``name``) with its records (``records``) edited."""
    d = fixture(name).read_bytes()
    recs = records(d)
    edit(recs)
    return build(d[:24], recs)


def _spliced(name: str, frame: int, new, end=None) -> bytes:
    """A pcap fixture with ``new`` (bytes, or a function of the old record)
    in place of the bytes from frame ``frame``'s record to frame ``end``'s."""
    d = fixture(name).read_bytes()
    offs = offsets(d) + [len(d)]
    at = offs[frame - 1]
    upto = offs[end - 1] if end else at
    return d[:at] + (new(d[at:offs[frame]]) if callable(new) else new) + d[upto:]


def _session(edit) -> bytes:
    """session.pcapng with ``edit(bytearray, [(offset, length)] of its
    EPBs, [(offset, type, length)] of its blocks)`` applied."""
    d = bytearray(fixture("session.pcapng").read_bytes())
    edit(d, [(o, n) for o, t, n in blocks(d) if t == 6], blocks(d))
    return bytes(d)


def _tsresol(d, epbs, all_blocks):
    idb = next(o for o, t, n in all_blocks if t == 1)
    i = idb + 16
    while struct.unpack_from("<H", d, i)[0] != 9:            # if_tsresol
        length = struct.unpack_from("<H", d, i + 2)[0]
        i += 4 + length + (-length % 4)
    d[i + 4] = 0x7F


def _drops(d, epbs, all_blocks):
    (isb,) = [o for o, t, n in all_blocks if t == 5]
    isb_counts(d, isb, ifrecv=5000, ifdrop=7)


_GARBAGE = struct.pack("<IIII", 1, 2, 0x7FFFFFFF, 0x7FFFFFFF) + b"garbage!" * 5
_EXTENDED_4GIB = (struct.pack(">HHHHII", 15, 0xFFFF, 6, 0, 0, 99)
                  + struct.pack(">II", 0xFFFFFFF0, 1) + b"abcdefgh")



def _gz(raw: bytes, edit=None) -> bytes:
    """``raw`` gzip-compressed without compressing (stored blocks: the same
    bytes whatever zlib this is, so the docs' compressed offsets hold), then
    ``edit``ed."""
    d = bytearray(gzip.compress(raw, compresslevel=0, mtime=0))
    if edit is not None:
        edit(d)
    return bytes(d)


# the damaged captures of troubleshooting.md, as its comments describe them
DAMAGED = {
    "cut.pcap": lambda: _spliced("basic.pcap", 21, lambda rec: rec[:30], end=55),
    "cuthdr.pcap": lambda: _spliced("basic.pcap", 21, lambda rec: rec[:7], end=55),
    "trunc.pcapng": lambda: _session(lambda d, epbs, _: d.__delitem__(
        slice(epbs[59][0] + epbs[59][1] // 2, None))),
    "garbage.pcap": lambda: _spliced("basic.pcap", 6, _GARBAGE),
    "garbage_end.pcap": lambda: _spliced("basic.pcap", 51, _GARBAGE, end=55),
    "zero.pcap": lambda: _spliced("basic.pcap", 6, lambda rec: rec[:8] + bytes(8)),
    "blocklen.pcapng": lambda: _session(
        lambda d, epbs, _: struct.pack_into("<I", d, epbs[39][0] + 4, 13)),
    "trailer.pcapng": lambda: _session(
        lambda d, epbs, _: struct.pack_into("<I", d, sum(epbs[39]) - 4, 1234)),
    "iface.pcapng": lambda: _session(
        lambda d, epbs, _: struct.pack_into("<I", d, epbs[29][0] + 8, 7)),
    "tsresol.pcapng": lambda: _session(_tsresol),
    "bom.pcapng": lambda: _session(lambda d, epbs, _: d.__setitem__(slice(8, 12), b"XXXX")),
    "hole.pcap": lambda: _basic(lambda recs: recs.__delitem__(19)),
    "snap.pcap": lambda: _basic(lambda recs: recs[16].__setitem__(3, recs[16][3][:80])),
    "dbr99.pcap": lambda: _basic(lambda recs: poke_ca(recs, 16, ">H", 4, 99)),
    "short.pcap": lambda: _basic(lambda recs: poke_ca(recs, 16, ">H", 4, 20)),
    "cmd200.pcap": lambda: _basic(lambda recs: poke_ca(recs, 15, ">H", 0, 200)),
    "count.pcap": lambda: _basic(lambda recs: replace_payload(recs, 16, lying_reply(2**32 - 1))),
    "claim.pcap": lambda: _basic(lambda recs: replace_payload(recs, 15, _EXTENDED_4GIB)),
    "udp.pcap": lambda: _basic(lambda recs: recs[0].__setitem__(
        3, recs[0][3][:42 + 16] + struct.pack(">H", 200) + recs[0][3][42 + 18:])),
    "dropped.pcapng": lambda: _session(_drops),
    "nofrag.pcap": lambda: _basic(lambda recs: recs.__delitem__(1), "fragments.pcap"),
    "basic.pcap.gz": lambda: _gz(fixture("basic.pcap").read_bytes()),
    "cut.pcap.gz": lambda: _gz(fixture("basic.pcap").read_bytes())[:2000],
    "flipped.pcap.gz": lambda: _gz(fixture("basic.pcap").read_bytes(),
                                   lambda d: d.__setitem__(3000, d[3000] ^ 0xFF)),
    "trailing.pcap.gz": lambda: _gz(fixture("basic.pcap").read_bytes()) + b"x" * 10,
    "text.gz": lambda: _gz(b"hello\n"),
    "capture.pcap.zst": lambda: bytes.fromhex("28b52ffd") + b"(not really zstd)",
}
