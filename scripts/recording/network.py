"""Scenarios recorded in a private network namespace whose lo is set up as a
real network would be: other traffic than CA, BIG TCP, Ethernet's MTU, IPv4
fragments, a capture that loses packets; names with stale bytes after their
NUL, sent from raw sockets."""
from __future__ import annotations

import contextlib
import os
import shlex
import socket
import struct
import subprocess
import threading
import time
import urllib.request

import caproto as ca

import ca_client
import ca_decode

from .netns import big_tcp_on_lo, lo_like_ethernet
from .procs import CA_PORTS_FILTER, PY, tcpdump
from .scenario import channels_of, ioc_and_client, scenario, transcript_descr
from .verify import fragmented_datagrams, headers_across_segments, ipv4_length_zero


def dns_query(name='fixture.example', qid=0x1234):
    header = struct.pack('!HHHHHH', qid, 0x0100, 1, 0, 0, 0)
    q = b''.join(bytes([len(p)]) + p.encode() for p in name.split('.'))
    return header + q + b'\x00' + struct.pack('!HH', 1, 1)


def dns_answer(query):
    qid = query[:2]
    header = qid + struct.pack('!HHHHH', 0x8180, 1, 1, 0, 0)
    question = query[12:]
    answer = b'\xc0\x0c' + struct.pack('!HHIH', 1, 1, 60, 4) + \
        socket.inet_aton('127.0.0.1')
    return header + question + answer


def icmp_echo(seq):
    ident = 0x4321
    payload = b'pcapca-fixture-ping'
    hdr = struct.pack('!BBHHH', 8, 0, 0, ident, seq)
    data = hdr + payload
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data[:len(data) // 2 * 2]))
    if len(data) % 2:
        s += data[-1] << 8
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    csum = ~s & 0xffff
    return struct.pack('!BBHHH', 8, 0, csum, ident, seq) + payload


@scenario('noise.pcap', needs=('unshare', 'ip'), netns=True)
def sc_noise(ctx):
    """Runs inside a private network namespace (see main()), so that the
    capture on its lo can be unfiltered and still hold only our traffic."""
    env = ctx.env()
    ctx.start_ioc(env)
    webroot = os.path.join(ctx.tmp, 'www')
    os.makedirs(webroot, exist_ok=True)
    with open(os.path.join(webroot, 'index.html'), 'w') as f:
        f.write('<html><body>pcapca noise fixture</body></html>\n')
    http = ctx.procs.start('http', [PY, '-m', 'http.server', '8089',
                                    '--bind', '127.0.0.1',
                                    '--directory', webroot], env=env)
    ctx.procs.wait_for_text(http, 'Serving HTTP')
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(('127.0.0.1', 53))
    dns.settimeout(0.1)
    dns_stop = threading.Event()

    def dns_server():
        while not dns_stop.is_set():
            try:
                q, addr = dns.recvfrom(2048)
            except socket.timeout:
                continue
            dns.sendto(dns_answer(q), addr)
    th = threading.Thread(target=dns_server, daemon=True)
    th.start()
    client = ca_client.Client()
    ops = []
    cap = tcpdump(ctx.procs, ctx.tmpfile, filt=None)
    try:
        with cap:
            with urllib.request.urlopen('http://127.0.0.1:8089/index.html',
                                        timeout=5) as r:
                r.read()
            ops.append('HTTP GET /index.html (urllib: an HTTP/1.1 request) to '
                       'python http.server on 127.0.0.1:8089, answered '
                       '"HTTP/1.0 200 OK"; full TCP connection with FINs')
            time.sleep(0.2)
            found = client.search(['FIX:dbl'])
            circ = client.connect(found['FIX:dbl'])
            dbl = client.create(circ, 'FIX:dbl')
            ops.append('CA: search FIX:dbl (UDP), connect (Version/HostName/'
                       'ClientName -> VersionResponse), create FIX:dbl (cid 0)')
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.settimeout(2)
            u.sendto(dns_query(), ('127.0.0.1', 53))
            u.recvfrom(2048)
            u.close()
            ops.append('DNS query A fixture.example (UDP 127.0.0.1:53, id '
                       '0x1234) and its answer 127.0.0.1 from a small '
                       'responder')
            time.sleep(0.2)
            client.read(dbl, data_type='time')
            ops.append('CA: ReadNotify FIX:dbl as TIME_DOUBLE (ioid 0) -> 3.25')
            junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            junk.sendto(b'\xde\xad\xbe\xef' * 8, ('127.0.0.1', 5064))
            time.sleep(0.2)
            junk.sendto(b'\xde\xad\xbe\xef' * 8, ('127.0.0.1', 5065))
            time.sleep(0.2)
            junk.close()
            ops.append('UDP junk (32 bytes de ad be ef ...) to 127.0.0.1:5064 '
                       '(the IOC ignores it) and to 127.0.0.1:5065 (nobody '
                       'listens: ICMP port unreachable)')
            t = socket.create_connection(('127.0.0.1', 5064), 5)
            t.sendall(b'GET / HTTP/1.0\r\n\r\n')
            t.settimeout(3)
            with contextlib.suppress(OSError):
                while t.recv(65536):
                    pass
            t.close()
            ops.append('new TCP connection to the IOC port 5064 sending "GET / '
                       'HTTP/1.0\\r\\n\\r\\n" (18 bytes; read as a CA header'
                       ' it is command 0x4745 with payload size 0x5420 = 21536,'
                       ' so it is incomplete): the IOC answers nothing; the '
                       'client closes it after 3 s (client FIN first)')
            time.sleep(0.2)
            raw = socket.socket(socket.AF_INET, socket.SOCK_RAW,
                                socket.IPPROTO_ICMP)
            raw.settimeout(2)
            for seq in (1, 2):
                raw.sendto(icmp_echo(seq), ('127.0.0.1', 0))
                time.sleep(0.2)
            raw.close()
            ops.append('ICMP echo request x2 (id 0x4321, seq 1, 2) and the '
                       'kernel\'s echo replies')
            client.clear(dbl)
            client.close()
            ops.append('CA: ClearChannel FIX:dbl, close')
    finally:
        dns_stop.set()
        th.join(2)
        dns.close()
    return dict(command=shlex.join(cap.args) + '   (inside unshare --net, lo '
                'only carries this scenario\'s traffic)',
                client='scripts/ca_client.py + helpers', operations=ops,
                expected=transcript_descr(client), allow_undecodable=3)


@scenario('bigtcp.pcap', needs=('unshare', 'ip'), netns=True)
def sc_bigtcp(ctx):
    """Runs inside a private network namespace whose lo has an MTU of
    256 KiB (so that libpcap's ring holds whole frames) and sends IPv4 TCP
    packets of up to 192 KiB (BIG TCP): such a packet does not fit the IPv4
    total length field, which the kernel sets to 0 (tcpdump: "bad-len 0")."""
    subprocess.run(['ip', 'link', 'set', 'lo', 'mtu', '262144'], check=True)
    big_tcp_on_lo(196608)
    env, client, ops = ioc_and_client(ctx)
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        circ, (wf,) = channels_of(client, ['FIX:wf'])
        client.read(wf, data_count=30000)
        client.close()
    big = ipv4_length_zero(ctx.tmpfile)
    if not big or not all(whole for _, whole in big):
        raise RuntimeError(f'want whole packets with IPv4 total length 0, got {big}')
    ops += ['in a private network namespace: lo MTU 262144, and BIG TCP '
            '(gso/gro max size and their IPv4 variants 196608, by rtnetlink)',
            'UDP: VersionRequest + SearchRequest FIX:wf; answered',
            'TCP connect; create FIX:wf',
            'ReadNotify FIX:wf DOUBLE count 30000 (ioid 0): a reply of '
            '240016 bytes, sent in TCP packets of which those over 64 KiB '
            'have IPv4 total length 0',
            'close']
    return dict(command=shlex.join(cap.args), client='scripts/ca_client.py',
                operations=ops, expected=transcript_descr(client),
                note='frames with IPv4 total length 0: '
                     f'{", ".join(str(f) for f, _ in big)}, each captured '
                     'whole; Wireshark reads them as ending with the frame')


@scenario('mtu1500.pcap', needs=('unshare', 'ip'), netns=True)
def sc_mtu1500(ctx):
    """Runs inside a private network namespace whose lo is made to cut TCP
    as Ethernet does: MTU 1500 and one segment per packet (GSO max segs 1),
    so messages span many segments and headers fall across segment ends."""
    lo_like_ethernet()
    env, client, ops = ioc_and_client(ctx)
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        circ, (wf, cnt, st, dbl) = channels_of(
            client, ['FIX:wf', 'FIX:counter', 'FIX:str', 'FIX:dbl'])
        client.read(wf, data_count=3000)
        client.read(wf, data_type='time', data_count=1001)
        client.read(st, data_type='control')
        sub = client.subscribe(cnt, data_type='time')
        client.wait_updates(cnt, sub, 3)
        client.unsubscribe(cnt, sub)
        client.write(wf, list(range(2000)), notify=True)
        client.read(dbl, data_type='control')
        # two requests in one send, the first 1440 bytes long: the second
        # one's header starts 8 bytes before the end of the first segment
        put = wf.write(list(range(178)), notify=True, data_type=ca.ChannelType.DOUBLE)
        get = dbl.read(data_type=ca.ChannelType.TIME_DOUBLE)
        client._send(circ, put, get)
        for want in (ca.WriteNotifyResponse, ca.ReadNotifyResponse):
            client._wait(circ, lambda c, w=want: isinstance(c, w), want.__name__)
        client.sleep()
        # three reads in one send: the server's replies, 1440 + 32 + 48 bytes
        reads = [wf.read(data_count=178, data_type=ca.ChannelType.DOUBLE),
                 dbl.read(data_type=ca.ChannelType.DOUBLE),
                 st.read(data_type=ca.ChannelType.TIME_STRING)]
        client._send(circ, *reads)
        for req in reads:
            client._wait(circ, lambda c, i=req.ioid: isinstance(c, ca.ReadNotifyResponse)
                         and c.ioid == i, 'ReadNotifyResponse')
        client.sleep()
        client.close()
    split = headers_across_segments(ctx.tmpfile)
    if not split:
        raise RuntimeError('no CA header falls across two segments')
    ops += ['in a private network namespace: lo MTU 1500 and GSO max segs 1, '
            'so TCP segments carry at most 1448 bytes (1500 - IPv4 - TCP with '
            'time stamps), as on Ethernet',
            'UDP: VersionRequest + SearchRequest FIX:wf, FIX:counter, FIX:str, '
            'FIX:dbl; answered',
            'TCP connect; create FIX:wf, FIX:counter, FIX:str, FIX:dbl',
            'ReadNotify FIX:wf DOUBLE count 3000 (24016 bytes in 17 segments), '
            'then TIME_DOUBLE count 1001',
            'ReadNotify FIX:str as CTRL_STRING',
            'EventAdd FIX:counter TIME_LONG: 4 updates, then EventCancel',
            'WriteNotify FIX:wf = 0..1999 as DOUBLE (16016 bytes from the client)',
            'ReadNotify FIX:dbl as CTRL_DOUBLE',
            'in one send: WriteNotify FIX:wf = 0..177 (1440 bytes) + ReadNotify '
            'FIX:dbl TIME_DOUBLE, whose header starts 8 bytes before the end of '
            'the first 1448-byte segment; both answered',
            'in one send: ReadNotify FIX:wf count 178, FIX:dbl DOUBLE, FIX:str '
            'TIME_STRING; all answered',
            'close']
    return dict(command=shlex.join(cap.args), client='scripts/ca_client.py',
                operations=ops, expected=transcript_descr(client),
                note='CA headers split across two TCP segments (direction, '
                     'frame of the header\'s first bytes): ' + ', '.join(
                         f'{d} {f}' for d, f in split))


@scenario('fragments.pcap', needs=('unshare', 'ip'), netns=True)
def sc_fragments(ctx):
    """Runs inside a private network namespace whose lo has the MTU of a
    VXLAN overlay network (1450: Docker swarm, Kubernetes flannel...).
    caproto's clients pack searches into datagrams of up to 1472 bytes
    (SEARCH_MAX_DATAGRAM_BYTES), so such a datagram leaves the host in two
    IPv4 fragments: the second carries no UDP header."""
    lo_like_ethernet(1450)
    env, client, ops = ioc_and_client(ctx)
    cap = tcpdump(ctx.procs, ctx.tmpfile,
                  filt=f'{CA_PORTS_FILTER} or (ip[6:2] & 0x3fff != 0)')
    missing = [f'DOCKER:missing:pv{i:02d}' for i in range(34)]
    names = ['FIX:dbl', 'FIX:counter'] + missing
    with cap:
        found = client.search(names, expect=['FIX:dbl', 'FIX:counter'])
        client.search(missing[:20], expect=[], wait=0.3)
        circ = client.connect(found['FIX:dbl'])
        dbl = client.create(circ, 'FIX:dbl')
        cnt = client.create(circ, 'FIX:counter')
        client.read(dbl, data_type='time')
        client.read(cnt)
        client.clear(dbl)
        client.clear(cnt)
        client.close()
    frags = fragmented_datagrams(ctx.tmpfile)
    if [len(f) for f in frags] != [2]:
        raise RuntimeError(f'expected one datagram in two fragments, got {frags}')
    ops += ['in a private network namespace: lo MTU 1450 (a VXLAN overlay '
            'network) and GSO max segs 1',
            'UDP: one datagram of 1432 bytes of CA (VersionRequest + '
            'SearchRequest FIX:dbl, FIX:counter and 34 names no server has, '
            'DOCKER:missing:pv00..33, as caproto packs a search), 1440 with its '
            'UDP header: two IPv4 fragments of 1424 and 16 bytes, the second '
            'without UDP header; the IOC answers FIX:dbl and FIX:counter in '
            'one datagram',
            'UDP: VersionRequest + SearchRequest DOCKER:missing:pv00..19 '
            '(816 bytes, not fragmented); no answer',
            'TCP connect; create FIX:dbl and FIX:counter; ReadNotify FIX:dbl '
            'TIME_DOUBLE, FIX:counter LONG; clear both; close']
    return dict(command=shlex.join(cap.args), client='scripts/ca_client.py',
                operations=ops, expected=transcript_descr(client),
                note='the fragments of the datagram are frames ' + ' and '.join(
                    str(n) for n in frags[0]))


@scenario('lossy.pcap', needs=('unshare', 'ip'), netns=True)
def sc_lossy(ctx):
    """A capture that lost packets the way a busy capture does: tcpdump with
    a 32 KiB kernel buffer (-B 32, and without --immediate-mode, so libpcap
    reads it in blocks) while 160 KB replies arrive in 1448-byte segments
    (lo as in mtu1500.pcap, in a private network namespace); the kernel
    drops what the buffer cannot hold."""
    lo_like_ethernet()
    env, client, ops = ioc_and_client(ctx)
    cap = tcpdump(ctx.procs, ctx.tmpfile, buffer_kib=32, immediate=False)
    with cap:
        circ, (wf, dbl) = channels_of(client, ['FIX:wf', 'FIX:dbl'])
        for _ in range(3):
            client.read(wf, data_count=20000)
            client.read(dbl)
        client.close()
    ops += ['in a private network namespace: lo MTU 1500, GSO max segs 1 (as '
            'mtu1500.pcap); tcpdump -B 32 without --immediate-mode: a 32 KiB '
            'capture buffer, read in blocks',
            'UDP: VersionRequest + SearchRequest FIX:wf, FIX:dbl; answered',
            'TCP connect; create FIX:wf, FIX:dbl',
            '3 times: ReadNotify FIX:wf DOUBLE count 20000 (a 160016-byte reply '
            'in 111 segments, of which the kernel drops some before tcpdump '
            'reads them), then ReadNotify FIX:dbl -> 3.25',
            'close']
    return dict(command=shlex.join(cap.args), client='scripts/ca_client.py',
                operations=ops, expected=transcript_descr(client), lossy=True,
                note='packets were dropped by the kernel (tcpdump -B 32): some '
                     'segments of the FIX:wf replies are missing; the checker\'s '
                     'GAP and UNDECODABLE lines below are where')


def recv_server_commands(sock, transcript, quiet=0.5):
    """Read what the server sends on a circuit until it is silent for
    ``quiet`` seconds (or closes), parsed by caproto, into ``transcript``."""
    from caproto._commands import read_from_bytestream
    data = bytearray()
    while True:
        sock.settimeout(quiet)
        try:
            more = sock.recv(65536)
        except socket.timeout:
            break
        if not more:
            break
        data += more
        while data:
            data, command, _ = read_from_bytestream(data, ca.SERVER)
            if command is ca.NEED_DATA:
                break
            transcript.append(('S>C', 'tcp', command))


@scenario('stalenames.pcap', needs=('unshare', 'ip'), netns=True)
def sc_stalenames(ctx):
    """Names as EPICS 3.13 clients (CA minor version 8) send them: a C
    string, NUL-terminated in its padded payload, with stale bytes of the
    client's buffer after the NUL.  Sent from raw sockets (caproto builds
    the messages; a name given with a NUL keeps what follows it)."""
    env = ctx.env()
    ctx.start_ioc(env)
    transcript = []
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(('127.0.0.1', 0))
        search = [ca.VersionRequest(0, 8), ca.SearchRequest('FIX:dbl\x00:GUN', 1, 8)]
        udp.sendto(b''.join(bytes(c) for c in search), ('127.0.0.1', 5064))
        transcript += [('C>S', 'udp', c) for c in search]
        time.sleep(0.3)
        udp.close()
        tcp = socket.create_connection(('127.0.0.1', 5064), 5)
        tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hello = [ca.VersionRequest(0, 8), ca.HostNameRequest('fixture-host\x00old'),
                 ca.ClientNameRequest('fixture\x00old')]
        tcp.sendall(b''.join(bytes(c) for c in hello))
        transcript += [('C>S', 'tcp', c) for c in hello]
        recv_server_commands(tcp, transcript)
        create = ca.CreateChanRequest('FIX:dbl\x00:GUN', 0, 8)
        tcp.sendall(bytes(create))
        transcript.append(('C>S', 'tcp', create))
        recv_server_commands(tcp, transcript)
        tcp.shutdown(socket.SHUT_WR)
        recv_server_commands(tcp, transcript, quiet=5)
        tcp.close()
    ops = ['UDP: one datagram to 127.0.0.1:5064: VersionRequest (minor version 8) + '
           'SearchRequest (cid 1, minor version 8) whose payload is "FIX:dbl\\0:GUN" '
           'padded with NULs to 16 bytes; the caproto IOC looks up the name '
           '"FIX:dbl\\x00:GUN" (caproto strips only the trailing NULs) and does not '
           'answer (rsrv and libca take the name up to the first NUL: FIX:dbl)',
           'TCP connect; VersionRequest (minor version 8) + HostNameRequest '
           '"fixture-host\\0old" + ClientNameRequest "fixture\\0old" (NUL-padded) in '
           'one segment; VersionResponse',
           'CreateChanRequest "FIX:dbl\\0:GUN" (cid 0, minor version 8): the caproto IOC '
           'answers CreateChFailResponse (cid 0)',
           'close the TCP connection (client FIN first)']
    return dict(command=shlex.join(cap.args), client='raw sockets in '
                'scripts/record_fixtures.py (messages built by caproto)',
                operations=ops,
                expected=[(d, t, ca_decode.describe(c)) for d, t, c in transcript])
