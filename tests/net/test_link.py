"""Every link type and pcap flavour, built from the packets of a real capture
(fixtures/basic.pcap) by rewriting only the link header or the file header:
the CA messages must come out the same."""
import struct

import pytest

import pcapca
from pcapca.capture.reader import read_capture
from pcapca.items import Packet

from tests.conftest import fixture

BASIC = fixture("basic.pcap")


def frames():
    return [p for p in read_capture(BASIC) if isinstance(p, Packet)]


def expected():
    return [(r.frame, r.role, r.name, r.pv) for r in pcapca.read(BASIC)]


def got(data):
    return [(r.frame, r.role, r.name, r.pv) for r in pcapca.read(data)]


def pcap(packets, linktype, *, order="<", nano=False, snaplen=262144):
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for ts, data, orig in packets:
        sec, ns = divmod(ts, 10**9)
        frac = ns if nano else ns // 1000
        out.append(struct.pack(order + "IIII", sec, frac, len(data), orig) + data)
    return b"".join(out)


def relink(transform, linktype, **kw):
    pk = [(p.ts, transform(p.data), p.orig_len - len(p.data) + len(transform(p.data)))
          for p in frames()]
    return pcap(pk, linktype, **kw)


ETH_IP = lambda d: d[14:]   # noqa: E731  the IPv4 packet inside the Ethernet frame


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_precisions(order, nano):
    data = relink(lambda d: d, 1, order=order, nano=nano)
    assert got(data) == expected()
    ts = [p.ts for p in read_capture(data) if isinstance(p, Packet)]
    assert ts == [p.ts for p in frames()]


@pytest.mark.parametrize("tags", [1, 2])
def test_vlan_and_qinq(tags):
    def tag(d):
        out = d[:12]
        for i in range(tags):
            out += struct.pack("!HH", 0x88A8 if (tags == 2 and i == 0) else 0x8100, 100 + i)
        return out + d[12:]
    assert got(relink(tag, 1)) == expected()


@pytest.mark.parametrize("linktype,header", [
    (0, struct.pack("<I", 2)),      # NULL, host byte order (little-endian writer)
    (0, struct.pack(">I", 2)),      # NULL written on a big-endian host
    (108, struct.pack(">I", 2)),    # LOOP, network byte order
])
def test_bsd_loopback(linktype, header):
    assert got(relink(lambda d: header + ETH_IP(d), linktype)) == expected()


@pytest.mark.parametrize("linktype", [101, 12, 14, 228])
def test_raw_ip(linktype):
    assert got(relink(ETH_IP, linktype)) == expected()


def test_linux_sll_and_sll2_headers_built_here():
    sll = lambda d: struct.pack("!HHH8sH", 0, 772, 6, b"\0" * 8, 0x0800) + ETH_IP(d)  # noqa: E731
    sll2 = lambda d: struct.pack("!HHIHBB8s", 0x0800, 0, 1, 772, 0, 6, b"\0" * 8) + ETH_IP(d)  # noqa: E731
    assert got(relink(sll, 113)) == expected()
    assert got(relink(sll2, 276)) == expected()


def test_other_link_types_and_ipv6_are_skipped_and_counted():
    from pcapca.ca.circuits import Decoder
    from pcapca.pipeline import decode
    ipv6 = lambda d: d[:12] + b"\x86\xdd" + b"\x60" + b"\0" * 39  # noqa: E731
    for data, reason in ((relink(lambda d: d, 147), "unsupported link type 147"),
                         (relink(ipv6, 1), "IPv6")):
        dec = Decoder()
        items = list(decode(data, decoder=dec))
        assert not any(getattr(i, "records", ()) for i in items)
        assert dec.stats.skipped[reason] == len(frames())
        assert reason in dec.stats.summary()


def test_frame_numbers_are_one_based_and_consecutive():
    assert [p.frame for p in frames()] == list(range(1, len(frames()) + 1))


def test_ipv4_total_length_0_is_read_to_the_end_of_the_frame():
    """fixtures/bigtcp.pcap frame 20: a 95298-byte BIG TCP packet whose IPv4
    total length is 0 (tcpdump: bad-len 0), captured whole. Wireshark reads
    such a packet (segmentation offload) to the end of the frame."""
    from pcapca.net.link import DLT_EN10MB, parse
    (p,) = [p for p in read_capture(fixture("bigtcp.pcap"))
            if isinstance(p, Packet) and p.frame == 20]
    assert len(p.data) == p.orig_len == 95298
    assert struct.unpack_from("!H", p.data, 16)[0] == 0          # the total length field
    seg = parse(DLT_EN10MB, p.data)
    tcp_header = (p.data[14 + 20 + 12] >> 4) * 4
    assert len(seg.payload) == seg.wire_len == 95298 - 14 - 20 - tcp_header == 95232
    assert (seg.sport, seg.dport) == (5064, struct.unpack_from("!H", p.data, 36)[0])
    # the same packet with its Ethernet padded: the end of the frame is still the end
    assert len(parse(DLT_EN10MB, p.data + bytes(4)).payload) == 95236
