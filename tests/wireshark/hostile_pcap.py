"""A one-packet pcap: a UDP CA search for a PV name of hostile bytes."""
import struct


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


def search_pcap(names) -> bytes:
    """pcap bytes: one Ethernet/IPv4/UDP packet 127.0.0.1:40000 -> :5064
    per name, a CA SearchRequest (command 6) for that name (bytes)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, name in enumerate(names):
        body = name + b"\0" * (8 - len(name) % 8)
        ca = struct.pack("!HHHHII", 6, len(body), 5, 13, i + 1, i + 1) + body
        udp = struct.pack("!HHHH", 40000, 5064, 8 + len(ca), 0) + ca
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        frame = b"\0" * 12 + b"\x08\x00" + ip + udp
        out.append(struct.pack("<IIII", 1700000000 + i, 0, len(frame), len(frame)) + frame)
    return b"".join(out)
