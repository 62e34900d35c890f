#!/usr/bin/env python3
"""Write an adversarial pcap: many short TCP flows, each left with an
unfinished CA message that claims a 4 GiB payload.

    python scripts/make_adversarial.py [--flows 100000] [--out out/adversarial.pcap]

Every flow (client 127.x.y.z:port -> 127.0.0.1:5064, all distinct) is a SYN,
a SYN-ACK, then one client segment with a CA extended header (EventAdd,
command 1) whose payload size is 0xFFFFFFF0 bytes, followed by a few bytes
of that payload; no ACK of it, no FIN, nothing else.  A decoder that
buffers what such a message announces, or keeps every flow forever, runs
out of memory; pcapca must stay under 200 MB (see docs/troubleshooting.md
and tests/test_robustness.py).

It is only a file: nothing is sent.  The output is deterministic (same
arguments, same bytes): timestamps start at 2026-01-01T00:00:00Z and
advance 10 µs per packet.
"""
from __future__ import annotations

import argparse
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests.builders
from tests.builders import ETHERNET_IPV4, LOCALHOST, ipv4, pcap_header, tcp  # noqa: E402

CLAIM = 0xFFFFFFF0
SERVER_IP = LOCALHOST
SERVER_PORT = 5064
START = 1767225600          # 2026-01-01T00:00:00Z
STEP_US = 10


def frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int,
          flags: int, payload: bytes = b"", ip_id: int = 0) -> bytes:
    """Ethernet + IPv4 + TCP (20-byte header), with valid IP and TCP checksums."""
    return ETHERNET_IPV4 + ipv4(src, dst, 6, tcp(src, dst, sport, dport, seq, ack, flags, payload),
                                ip_id)


def ca_claim(extra: bytes) -> bytes:
    """An EventAdd request with an extended header claiming CLAIM bytes."""
    # command, 0xFFFF (extended), data_type DOUBLE, data_count 0, sid, subscription id
    head = struct.pack("!HHHHII", 1, 0xFFFF, 6, 0, 1, 2)
    return head + struct.pack("!II", CLAIM, 1) + extra


def client(i: int) -> tuple[bytes, int]:
    """Distinct (address, port) for flow i, all on 127.0.0.0/8."""
    port = 1024 + i % 60000
    n = i // 60000 + 2              # 127.0.0.2, 127.0.0.3, ...
    return bytes([127, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF]), port


def write(out, flows: int) -> int:
    out.write(pcap_header())
    t = START * 1_000_000
    packets = 0
    rec = struct.Struct("<IIII").pack

    def put(data: bytes) -> None:
        nonlocal t, packets
        sec, us = divmod(t, 1_000_000)
        out.write(rec(sec, us, len(data), len(data)))
        out.write(data)
        t += STEP_US
        packets += 1

    extra = bytes(range(8))
    payload = ca_claim(extra)
    for i in range(flows):
        ip, port = client(i)
        cseq = (i * 2654435761) & 0xFFFFFFFF
        sseq = (i * 40503 + 12345) & 0xFFFFFFFF
        put(frame(ip, SERVER_IP, port, SERVER_PORT, cseq, 0, 0x02, ip_id=i))           # SYN
        put(frame(SERVER_IP, ip, SERVER_PORT, port, sseq, cseq + 1, 0x12, ip_id=i))   # SYN-ACK
        put(frame(ip, SERVER_IP, port, SERVER_PORT, (cseq + 1) & 0xFFFFFFFF,
                  (sseq + 1) & 0xFFFFFFFF, 0x18, payload, ip_id=i + 1))               # PSH-ACK
    return packets


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--flows", type=int, default=100_000)
    p.add_argument("--out", default="out/adversarial.pcap", help="file to write, or - for stdout")
    args = p.parse_args(argv)
    if args.out == "-":
        n = write(sys.stdout.buffer, args.flows)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        tmp = args.out + ".part"
        with open(tmp, "wb") as f:
            n = write(f, args.flows)
        os.replace(tmp, args.out)
        print(f"{args.out}: {args.flows} flows, {n} packets, "
              f"{os.path.getsize(args.out)} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
