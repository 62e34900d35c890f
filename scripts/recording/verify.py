"""Checking a recording: the CA messages the checker (scripts/ca_decode.py)
decodes against the client's transcript or the reference sequence, and the
checks particular scenarios make on their files."""
from __future__ import annotations

import json
import os
import struct
import subprocess

import caproto as ca

from .procs import HERE, log


def capinfo(path):
    """capinfos -M, parsed: {key: value, 'interfaces': [{key: value}]}"""
    r = subprocess.run(['capinfos', '-M', path], capture_output=True,
                       text=True)
    info = {'interfaces': []}
    iface = None
    for line in r.stdout.splitlines():
        if line.startswith('Interface #'):
            iface = {}
            info['interfaces'].append(iface)
        elif line[:1].isspace() and '=' in line and iface is not None:
            k, v = line.split('=', 1)
            iface[k.strip()] = v.strip()
        elif ':' in line:
            iface = None
            k, v = line.split(':', 1)
            info[k.strip()] = v.strip()
    return info


def iostat_packets(path):
    r = subprocess.run(['tshark', '-n', '-r', path, '-q', '-z', 'io,stat,0'],
                       capture_output=True, text=True, check=True)
    for line in r.stdout.splitlines():
        parts = [p.strip() for p in line.split('|') if p.strip()]
        if len(parts) >= 3 and '<>' in parts[0]:
            return int(parts[1])
    raise RuntimeError(r.stdout)


BAD = ('UNDECODABLE', 'GAP', 'INCOMPLETE')


def compare(name, meta, summary):
    """Return None if the decoded capture matches the expectation."""
    problems = []
    undecodable = [x for x in summary if x[6].startswith(BAD)]
    allowed = meta.get('allow_undecodable', 0)
    if meta.get('lossy'):
        # packets were dropped: what the checker decodes must be in the
        # client's record, in order, and there must be gaps
        got = [(x[5], x[2], x[6]) for x in summary if not x[6].startswith(BAD)]
        rest = iter(tuple(e) for e in meta['expected'])
        if not all(g in rest for g in got):
            problems.append('decoded messages are not a subsequence of the client transcript')
        if not any(x[6].startswith('GAP') for x in summary):
            problems.append('no packet was dropped')
        return '\n'.join(problems) or None
    if len(undecodable) != allowed:
        problems.append(f'{len(undecodable)} undecodable/gap entries '
                        f'(expected {allowed}): {undecodable[:5]}')
    msgs = [x for x in summary if not x[6].startswith(BAD)]
    if meta.get('ignore_beacons'):
        msgs = [x for x in msgs if not isinstance(x[7], ca.Beacon)]
    expected = meta.get('expected')
    if expected is None:
        expected = [tuple(e) for e in REFERENCE.get(name, [])]
        got = [(x[5], x[2], type(x[7]).__name__) for x in msgs]
        # Clients like the caproto CLI send several requests without
        # waiting, so the interleaving of the two directions may vary:
        # compare each (direction, transport) sequence on its own.
        for key in sorted({e[:2] for e in expected} | {g[:2] for g in got}):
            e = [x for x in expected if x[:2] == key]
            g = [x for x in got if x[:2] == key]
            if expected and g != e:
                problems.append(f'{key} sequence differs from the reference:'
                                '\n' + diff(e, g))
        if not expected:
            log(f'{name}: no reference sequence; accepting {len(got)} msgs')
    else:
        ifaces = sorted({x[1] for x in msgs}) if meta.get('per_interface') \
            else [None]
        if meta.get('per_interface') and len(ifaces) != 2:
            problems.append(f'expected 2 interfaces, got {ifaces}')
        for iface in ifaces:
            got = [(x[5], x[2], x[6]) for x in msgs
                   if iface is None or x[1] == iface]
            exp = [tuple(e) for e in expected]
            if meta.get('per_direction'):
                # (monitor updates arrive while the client sends: the
                # interleaving of the two directions is the network's)
                got = sorted(got, key=lambda x: x[0])
                exp = sorted(exp, key=lambda x: x[0])
            if got != exp:
                problems.append(f'interface {iface}: sequence differs from '
                                'the client transcript:\n' + diff(exp, got))
    check = meta.get('check')
    if check:
        p = check(summary)
        if p:
            problems.append(p)
    return '\n'.join(problems) or None


def diff(a, b):
    import difflib
    return '\n'.join(difflib.unified_diff([str(x) for x in a],
                                          [str(x) for x in b], lineterm='',
                                          n=2))


# Reference CA message sequences (direction, transport, class) for scenarios
# whose client is not ca_client.py; filled in from the first good recording
# and checked on every later one.
REFERENCE_PATH = os.path.join(HERE, 'fixture_reference.json')
try:
    with open(REFERENCE_PATH) as f:
        REFERENCE = json.load(f)
except FileNotFoundError:
    REFERENCE = {}


def ipv4_length_zero(path):
    """Frame numbers of the packets (Ethernet, IPv4) of a little-endian
    pcap whose IPv4 total length field is 0, and whether each is complete."""
    with open(path, 'rb') as f:
        data = f.read()
    out, pos, frame = [], 24, 1
    while pos + 16 <= len(data):
        caplen, orig = struct.unpack_from('<II', data, pos + 8)
        pkt = data[pos + 16:pos + 16 + caplen]
        if pkt[12:14] == b'\x08\x00' and struct.unpack_from('!H', pkt, 16)[0] == 0:
            out.append((frame, caplen == orig))
        pos += 16 + caplen
        frame += 1
    return out


def fragmented_datagrams(path):
    """The frames of each IPv4 datagram of ``path`` sent in fragments."""
    import dpkt
    frames = {}
    with open(path, 'rb') as f:
        for frame, (_ts, buf) in enumerate(dpkt.pcap.Reader(f), 1):
            ip = dpkt.ethernet.Ethernet(buf).data
            if isinstance(ip, dpkt.ip.IP) and (ip.mf or ip.offset):
                frames.setdefault((ip.src, ip.dst, ip.p, ip.id), []).append(frame)
    return list(frames.values())


def headers_across_segments(path):
    """[(direction, frame)] of the CA headers of a little-endian Ethernet
    pcap (one client, one server on 5064, nothing lost) that start in one
    TCP segment and end in the next: read here with struct, to check the
    recording (not a decoder)."""
    with open(path, 'rb') as f:
        data = f.read()
    streams = {}          # direction -> (bytes, [(stream offset, frame)])
    pos, frame = 24, 1
    while pos + 16 <= len(data):
        caplen = struct.unpack_from('<I', data, pos + 8)[0]
        pkt = data[pos + 16:pos + 16 + caplen]
        pos += 16 + caplen
        if pkt[12:14] == b'\x08\x00' and pkt[23] == 6:
            ihl = (pkt[14] & 15) * 4
            total = struct.unpack_from('!H', pkt, 16)[0]
            tcp = 14 + ihl
            sport, dport = struct.unpack_from('!HH', pkt, tcp)
            payload = pkt[tcp + (pkt[tcp + 12] >> 4) * 4:14 + total]
            if payload and 5064 in (sport, dport):
                buf, starts = streams.setdefault('S>C' if sport == 5064 else 'C>S',
                                                 (bytearray(), []))
                starts.append((len(buf), frame))
                buf += payload
        frame += 1
    out = []
    for direction, (buf, starts) in streams.items():
        ends = {off for off, _ in starts[1:]}
        at = 0
        while at + 16 <= len(buf):
            size, = struct.unpack_from('!H', buf, at + 2)
            hsize = 16
            if size == 0xFFFF:
                size, = struct.unpack_from('!I', buf, at + 16)
                hsize = 24
            if any(at < e < at + hsize for e in ends):
                out.append((direction, max(f for off, f in starts if off <= at)))
            at += hsize + size
    return sorted(out, key=lambda x: x[1])


def check_beacon_restart(summary):
    ids = [c.beacon_id for f, i, t, s, d, dr, text, c in summary
           if isinstance(c, ca.Beacon) and c.server_port == 5066
           and d.endswith(':5065')]
    drops = [(a, b) for a, b in zip(ids, ids[1:]) if b < a]
    if not drops:
        return f'no beacon counter reset seen for 5066: {ids}'
    return None
