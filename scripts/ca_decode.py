#!/usr/bin/env python3
"""Independent check decoder for the recorded fixtures (not part of pcapca).

Uses ``tshark`` to get per-packet TCP/UDP payloads (so it reads every format
and link type tshark reads), reassembles each TCP direction by sequence
number, and parses Channel Access with caproto (``read_from_bytestream`` /
``read_datagram``).  Prints one line per CA message, in the order of the frame
that completes it.

    python scripts/ca_decode.py FILE [--ports 5064,5065,5066]
"""
from __future__ import annotations

import argparse
import subprocess
import sys

import caproto as ca
from caproto._commands import read_datagram, read_from_bytestream
NEED_DATA = ca.NEED_DATA

SERVER_PORTS = {5064, 5066}
REPEATER_PORT = 5065

FIELDS = ['frame.number', 'frame.interface_id', 'ip.src', 'ip.dst',
          'tcp.srcport', 'tcp.dstport', 'udp.srcport', 'udp.dstport',
          'tcp.seq_raw', 'tcp.len', 'tcp.payload', 'udp.payload', 'icmp.type',
          'tcp.flags.syn', 'tcp.flags.fin']


def tshark_rows(path):
    cmd = ['tshark', '-n', '-r', path, '-T', 'fields', '-E', 'separator=\t',
           '-E', 'occurrence=f',
           '-o', 'tcp.desegment_tcp_streams:FALSE']
    for f in FIELDS:
        cmd += ['-e', f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        parts = line.split('\t')
        parts += [''] * (len(FIELDS) - len(parts))
        yield dict(zip(FIELDS, parts))


def udp_role(sport, dport, data):
    """Role (caproto.CLIENT / SERVER) of the sender of a UDP datagram."""
    if len(data) >= 2:
        cmd = int.from_bytes(data[:2], 'big')
        if cmd == 13:            # beacon
            return ca.SERVER
        if cmd == 24:            # repeater register
            return ca.CLIENT
        if cmd == 17:            # repeater confirm
            return ca.SERVER
    if sport in SERVER_PORTS or sport == REPEATER_PORT:
        return ca.SERVER
    return ca.CLIENT


def decode(path, ports=(5064, 5065, 5066)):
    """Yield (frame, iface, transport, src, dst, direction, command_or_error)."""
    ports = set(ports)
    streams = {}    # (iface, src, sport, dst, dport) -> [next_seq, bytearray]
    for row in tshark_rows(path):
        frame = int(row['frame.number'])
        iface = row['frame.interface_id'] or '0'
        if row['icmp.type']:
            continue
        src, dst = row['ip.src'], row['ip.dst']
        if row['tcp.srcport']:
            sport, dport = int(row['tcp.srcport']), int(row['tcp.dstport'])
            if not ({sport, dport} & ports):
                continue
            key = (iface, src, sport, dst, dport)
            seq = int(row['tcp.seq_raw'])
            payload = bytes.fromhex(row['tcp.payload'].replace(':', ''))
            st = streams.get(key)
            if row['tcp.flags.syn'] in ('1', 'True'):
                streams[key] = [seq + 1, bytearray()]
                continue
            if st is None:       # mid-stream: start at the first data seen
                if not payload:
                    continue
                # skip to a plausible message boundary is not attempted here
                st = streams[key] = [seq, bytearray()]
            if not payload:
                continue
            if seq + len(payload) <= st[0]:
                continue          # retransmission
            if seq < st[0]:
                payload = payload[st[0] - seq:]
                seq = st[0]
            if seq != st[0]:
                yield (frame, iface, 'tcp', f'{src}:{sport}', f'{dst}:{dport}',
                       '?', f'GAP of {seq - st[0]} bytes')
                st[1] = bytearray()
            st[0] = seq + len(payload)
            st[1] += payload
            role = ca.SERVER if sport in SERVER_PORTS else ca.CLIENT
            direction = 'S>C' if role is ca.SERVER else 'C>S'
            while True:
                try:
                    rest, command, _ = read_from_bytestream(st[1], role)
                except Exception as ex:  # noqa
                    yield (frame, iface, 'tcp', f'{src}:{sport}',
                           f'{dst}:{dport}', direction,
                           f'UNDECODABLE {type(ex).__name__}')
                    st[1] = bytearray()
                    break
                if command is NEED_DATA:
                    break
                st[1] = bytearray(rest)
                yield (frame, iface, 'tcp', f'{src}:{sport}', f'{dst}:{dport}',
                       direction, command)
        elif row['udp.srcport']:
            sport, dport = int(row['udp.srcport']), int(row['udp.dstport'])
            if not ({sport, dport} & ports):
                continue
            payload = bytes.fromhex(row['udp.payload'].replace(':', ''))
            role = udp_role(sport, dport, payload)
            direction = 'S>C' if role is ca.SERVER else 'C>S'
            try:
                commands = read_datagram(payload, (src, sport), role)
            except Exception as ex:  # noqa
                yield (frame, iface, 'udp', f'{src}:{sport}', f'{dst}:{dport}',
                       direction, f'UNDECODABLE {type(ex).__name__}')
                continue
            for c in commands:
                yield (frame, iface, 'udp', f'{src}:{sport}', f'{dst}:{dport}',
                       direction, c)
    for (iface, src, sport, dst, dport), (_, buf) in streams.items():
        if buf:
            direction = 'S>C' if sport in SERVER_PORTS else 'C>S'
            yield (frame, iface, 'tcp', f'{src}:{sport}', f'{dst}:{dport}',
                   direction, f'INCOMPLETE {len(buf)} bytes left at the end '
                   f'of the stream: {bytes(buf[:24])!r}')


def describe(command):
    """A short, stable description of a CA message (no timestamps/values of
    free-running PVs beyond what is in the message)."""
    if isinstance(command, str):
        return command
    name = type(command).__name__
    keys = []
    for attr in ('name', 'cid', 'sid', 'ioid', 'subscriptionid', 'data_type',
                 'data_count', 'status', 'version', 'priority', 'beacon_id',
                 'server_port', 'port', 'access_rights', 'mask'):
        if attr in ('data_type', 'data_count') and isinstance(
                command, (ca.VersionRequest, ca.VersionResponse,
                          ca.SearchRequest, ca.SearchResponse,
                          ca.ClearChannelRequest, ca.ClearChannelResponse)):
            continue
        try:
            v = getattr(command, attr)
        except Exception:   # noqa
            continue
        if v is None:
            continue
        if attr == 'data_type':
            try:
                v = ca.ChannelType(v).name
            except ValueError:
                pass
        elif attr == 'status' and isinstance(command, (
                ca.ErrorResponse, ca.WriteNotifyResponse,
                ca.ReadNotifyResponse, ca.EventAddResponse)):
            try:
                v = ca.CAStatus(v).name if isinstance(v, int) else v.name
            except Exception:   # noqa
                pass
        elif attr == 'access_rights':
            v = int(v)
        elif attr == 'mask':
            v = int(v)
        keys.append(f'{attr}={v}')
    try:
        data = getattr(command, 'data', None)
        count = getattr(command, 'data_count', None)
    except Exception:  # noqa  (e.g. an EventAddResponse without payload)
        data = count = None
    if (data is not None and count and count <= 10 and
            not isinstance(command, (ca.SearchRequest, ca.SearchResponse))):
        try:
            vals = [v.decode('latin-1') if isinstance(v, bytes) else v
                    for v in (data.tolist() if hasattr(data, 'tolist')
                              else list(data))]
            keys.append(f'data={vals!r}')
        except Exception:  # noqa
            pass
    if isinstance(command, ca.ErrorResponse):
        keys.append(f'original_command={command.original_request.command}')
    if isinstance(command, ca.EventAddResponse) and command.header.payload_size == 0:
        # the server's reply to EventCancel (command 1, no payload)
        keys.append('payload_size=0')
    return f"{name}({', '.join(keys)})"


def summary(path, ports=(5064, 5065, 5066)):
    return [(f, i, t, s, d, direction, describe(c) if not isinstance(c, str)
             else c, c)
            for f, i, t, s, d, direction, c in decode(path, ports)]


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument('file')
    p.add_argument('--ports', default='5064,5065,5066')
    args = p.parse_args(argv)
    ports = [int(x) for x in args.ports.split(',')]
    for f, i, t, s, d, direction, text, _ in summary(args.file, ports):
        print(f'{f:5d} if{i} {t} {s:>21} -> {d:<21} {direction} {text}')


if __name__ == '__main__':
    sys.exit(main())
