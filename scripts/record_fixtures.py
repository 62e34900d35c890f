#!/usr/bin/env python3
"""Record real, small Channel Access packet captures for pcapca's tests.

    /tmp/venv/bin/python scripts/record_fixtures.py [--out fixtures] [--only NAME ...]
                                                    [--list] [--keep-going]

Run as root (packet capture).  Everything happens on 127.0.0.1 (the ``lo``
interface, or for the fixtures in ``IN_NETNS`` the ``lo`` of a private
network namespace made with ``unshare --net``, set up as each scenario
says); nothing is sent to any other address.

Needs
-----
* tcpdump, dumpcap, tshark, capinfos (Debian: ``apt-get install tcpdump
  tshark``; dumpcap comes with wireshark-common)
* python with caproto (1.3), numpy (the IOC, the caproto clients and the
  check decoder ``ca_decode.py``)
* pyepics (``pip install pyepics``; its wheel bundles libca) for ``libca``
* pythonSoftIOC (``pip install softioc``: a real EPICS rsrv IOC) for ``rsrv``
* ``unshare`` and ``ip`` (util-linux, iproute2) for the fixtures recorded in
  a private network namespace: ``noise``, ``mtu1500``, ``lossy`` and
  ``bigtcp`` (which also needs Linux 6.3 or later, for BIG TCP over IPv4)

Fixtures that need a missing tool are skipped with a message.

How the fixtures are made
-------------------------
For each fixture the script starts ``scripts/fixture_ioc.py`` (a caproto IOC;
see its docstring for the PVs) with EPICS_CAS_INTF_ADDR_LIST=127.0.0.1,
EPICS_CAS_AUTO_BEACON_ADDR_LIST=NO, EPICS_CAS_BEACON_ADDR_LIST=127.0.0.1 and,
except for ``twoservers``, with beacons switched off (``--no-beacons``: their
timing would make the message sequence differ from run to run).  Then it starts
the capture tool and waits until it reports that it is capturing (plus 0.5 s),
runs the clients, waits 1.5 s, stops the capture with SIGINT (so the file is
flushed and closed), and stops the IOC and all helpers (process groups,
try/finally).

Most clients are ``scripts/ca_client.py``: caproto's own sans-I/O protocol code
(ca.Broadcaster / ca.VirtualCircuit / ca.ClientChannel, the code inside
caproto's sync and threading clients) driven one step at a time over plain
sockets; every request is sent only once the answer to the previous one has
arrived, with a 50 ms pause after each step.  ``session`` uses the caproto
command line tools (caproto-get / caproto-put / caproto-monitor), ``libca``
uses pyepics (libca), ``rsrv`` uses libca against a real EPICS rsrv IOC.

After recording, each file is decoded independently with tshark + caproto
(``scripts/ca_decode.py``) and the CA message sequence is compared with what
the client sent and received (or with the fixed sequence a CLI/libca scenario
must produce).  If it differs (e.g. one more monitor update slipped in before
a cancel) the fixture is recorded again (at most 3 attempts).  The decoded
sequences and the metadata are written to ``fixtures/fixtures.json`` and
``fixtures/README.md``.
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import caproto as ca  # noqa: E402

import ca_client  # noqa: E402
import ca_decode  # noqa: E402

PY = sys.executable
BIN = os.path.dirname(PY)
CA_PORTS_FILTER = 'port 5064 or port 5065 or port 5066'
ANY_FILTER = f'host 127.0.0.1 and ({CA_PORTS_FILTER})'


def log(*args):
    print('[record]', *args, file=sys.stderr, flush=True)


def base_env(**extra):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith('EPICS_'):
            del env[k]
    env.update(EPICS_CA_ADDR_LIST='127.0.0.1',
               EPICS_CA_AUTO_ADDR_LIST='NO',
               EPICS_CAS_INTF_ADDR_LIST='127.0.0.1',
               EPICS_CAS_AUTO_BEACON_ADDR_LIST='NO',
               EPICS_CAS_BEACON_ADDR_LIST='127.0.0.1',
               EPICS_CA_SERVER_PORT='5064',
               EPICS_CA_REPEATER_PORT='5065',
               EPICS_CAS_BEACON_PORT='5065',
               PYTHONUNBUFFERED='1')
    env.update({k: str(v) for k, v in extra.items()})
    return env


def apply_env(env):
    """Make this process's own caproto code see the same environment."""
    for k in list(os.environ):
        if k.startswith('EPICS_'):
            del os.environ[k]
    os.environ.update({k: v for k, v in env.items() if k.startswith('EPICS_')})


# --------------------------------------------------------------- processes
class Procs:
    """Start processes in their own process group; stop them all at exit."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []

    def start(self, name, cmd, env=None, cwd=None):
        out = open(os.path.join(self.tmp, f'{name}.log'), 'wb')
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                             start_new_session=True)
        p.name = name
        p.logpath = out.name
        out.close()
        self.procs.append(p)
        log(f'started {name} (pid {p.pid}): {" ".join(cmd)}')
        return p

    def log_text(self, p):
        with open(p.logpath, 'rb') as f:
            return f.read().decode('utf-8', 'replace')

    def wait_for_text(self, p, text, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_text(p):
                return
            if p.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f'{p.name}: {text!r} not seen in {timeout} s; '
                           f'log:\n{self.log_text(p)[-2000:]}')

    def stop(self, p, sig=signal.SIGINT, timeout=10.0):
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGCONT)     # (hung.pcap stops its IOC)
            for s in (sig, signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(p.pid, s)
                except ProcessLookupError:
                    break
                try:
                    p.wait(timeout=timeout if s != signal.SIGKILL else 5)
                    break
                except subprocess.TimeoutExpired:
                    log(f'{p.name} did not stop on {s!r}')
        else:
            # the leader is gone; make sure no child of the group survives
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in reversed(list(self.procs)):
            self.stop(p, signal.SIGTERM, timeout=5)


def start_ioc(procs, env, port=5064, prefix='FIX:', common=1.0,
              beacons=False, name=None):
    cmd = [PY, os.path.join(HERE, 'fixture_ioc.py'), '--port', str(port),
           '--prefix', prefix, '--common-value', str(common)]
    if not beacons:
        cmd.append('--no-beacons')
    p = procs.start(name or f'ioc{port}', cmd, env=env)
    procs.wait_for_text(p, f'Listening on 127.0.0.1:{port}')
    time.sleep(0.3)
    return p


def start_rsrv(procs, env):
    """The EPICS rsrv IOC of rsrv_ioc.py (pythonSoftIOC), once it serves."""
    p = procs.start('softioc', [PY, os.path.join(HERE, 'rsrv_ioc.py')], env=env)
    procs.wait_for_text(p, 'RSRV-READY')
    time.sleep(0.5)
    return p


def start_repeater(procs, env):
    p = procs.start('repeater', [os.path.join(BIN, 'caproto-repeater')],
                    env=env)
    # wait until the repeater port is bound
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(('127.0.0.1', 5065))
        except OSError:
            time.sleep(0.3)
            return p
        finally:
            s.close()
        time.sleep(0.05)
    raise RuntimeError('caproto-repeater did not bind port 5065')


# ----------------------------------------------------------------- capture
class Capture:
    def __init__(self, procs, tool, path, args, ready_text):
        self.procs, self.tool, self.path = procs, tool, path
        self.args, self.ready_text = args, ready_text
        self.p = None

    def __enter__(self):
        self.start()
        return self

    def start(self):
        self.p = self.procs.start(self.tool, self.args)
        self.procs.wait_for_text(self.p, self.ready_text)
        time.sleep(0.5)
        return self

    def stop(self):
        if self.p is not None:
            time.sleep(1.5)
            self.procs.stop(self.p, signal.SIGINT)
            log(f'{self.tool}: {self.procs.log_text(self.p).strip()!r}')
            self.p = None

    def __exit__(self, *exc):
        self.stop()


def tcpdump(procs, path, iface='lo', filt=CA_PORTS_FILTER, extra=(),
            buffer_kib=65536, immediate=True):
    # --immediate-mode: otherwise libpcap hands packets over in blocks (up
    # to 1 s late) and the packets still in the ring buffer at SIGINT are lost
    # -B: a 64 MiB kernel buffer, or the MB-sized bursts of bigarray are
    # dropped (lossy.pcap wants them dropped)
    args = ['tcpdump', '-i', iface, *(['--immediate-mode'] if immediate else []),
            '-B', str(buffer_kib), '-U', '-Z', 'root', '-w', path, *extra]
    if filt:
        args.append(filt)
    return Capture(procs, 'tcpdump', path, args, 'listening on')


def dumpcap(procs, path, ifaces, extra=()):
    """ifaces: list of (interface, capture filter or None)."""
    args = ['dumpcap', '-q', '-B', '64']
    for iface, filt in ifaces:
        args += ['-i', iface]
        if filt:
            args += ['-f', filt]
    args += ['-w', path, *extra]
    return Capture(procs, 'dumpcap', path, args, 'Capturing on')


# ------------------------------------------------------------- scenarios
# Each scenario returns a dict with: command (how captured), client,
# operations (list of strings), expected (list of message descriptions as
# produced by ca_decode.describe, or None), compare (how to compare).

SCENARIOS = {}
IN_NETNS = ('noise.pcap', 'bigtcp.pcap', 'mtu1500.pcap', 'lossy.pcap', 'fragments.pcap',
            'stuckioc.pcap', 'stalenames.pcap')   # recorded in a private network namespace


def scenario(name, *, needs=()):
    def deco(fn):
        SCENARIOS[name] = (fn, needs)
        return fn
    return deco


def transcript_descr(client, start=0):
    return [(d, t, ca_decode.describe(c))
            for d, t, c in client.transcript[start:]
            if not isinstance(c, ca.Beacon)]


def basic_session(client, ops):
    """The session of basic.pcap / nanosec.pcap."""
    found = client.search(['FIX:dbl', 'FIX:counter'])
    ops.append('UDP: one datagram to 127.0.0.1:5064 with VersionRequest + '
               'SearchRequest FIX:dbl (cid 0) + SearchRequest FIX:counter '
               '(cid 1); the IOC answers both')
    circ = client.connect(found['FIX:dbl'])
    ops.append('TCP connect to 127.0.0.1:5064; VersionRequest + HostNameRequest'
               ' "fixture-host" + ClientNameRequest "fixture" in one segment;'
               ' VersionResponse')
    dbl = client.create(circ, 'FIX:dbl')
    cnt = client.create(circ, 'FIX:counter')
    ops.append('create FIX:dbl (cid 0), then FIX:counter (cid 1); the server '
               'answers each with AccessRightsResponse + CreateChanResponse')
    client.read(dbl)
    client.read(dbl, data_type='time')
    client.read(dbl, data_type='control')
    ops.append('ReadNotify FIX:dbl as DOUBLE (ioid 0), TIME_DOUBLE (ioid 1), '
               'CTRL_DOUBLE (ioid 2): value 3.25, units "mm", precision 3, '
               'limits disp -10..10 alarm -8..8 warn -6..6 ctrl -20..20')
    client.read(cnt, data_type='time')
    ops.append('ReadNotify FIX:counter as TIME_LONG (ioid 3)')
    r = client.write(dbl, 4.5, notify=True)
    assert isinstance(r, ca.WriteNotifyResponse), r
    ops.append('WriteNotify FIX:dbl = 4.5 as DOUBLE (ioid 4) -> '
               'WriteNotifyResponse status ECA_NORMAL')
    client.read(dbl)
    ops.append('ReadNotify FIX:dbl as DOUBLE (ioid 5) -> 4.5')
    sub = client.subscribe(cnt, data_type='time')
    client.wait_updates(cnt, sub, 3)
    client.unsubscribe(cnt, sub)
    ops.append('EventAdd FIX:counter as TIME_LONG (subscriptionid 0, mask '
               'DBE_VALUE|DBE_ALARM|DBE_PROPERTY = 13); exactly 4 EventAddResponses (the '
               'initial value + 3 updates 0.1 s apart, consecutive counter '
               'values); EventCancel -> EventCancelResponse (an '
               'EventAddResponse header with data_count 0)')
    client.clear(dbl)
    client.clear(cnt)
    ops.append('ClearChannel FIX:dbl, then FIX:counter -> ClearChannelResponse'
               ' each')
    client.close()
    ops.append('close the TCP connection (client FIN first)')


def channels_of(client, names):
    """Search ``names``, connect to the server of the first, create a
    channel for each: (circuit, [channel, ...])."""
    found = client.search(names)
    circ = client.connect(found[names[0]])
    return circ, [client.create(circ, n) for n in names]


def ioc_and_client(ctx):
    """A fresh fixture IOC, a caproto client and an empty list of operations."""
    env = ctx.env()
    ctx.start_ioc(env)
    return env, ca_client.Client(), []


@scenario('basic.pcap')
def sc_basic(ctx):
    env, client, ops = ioc_and_client(ctx)
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        basic_session(client, ops)
    return dict(command=shlex.join(cap.args), client='scripts/ca_client.py '
                '(caproto sans-I/O)', operations=ops,
                expected=transcript_descr(client))


@scenario('nanosec.pcap')
def sc_nanosec(ctx):
    env, client, ops = ioc_and_client(ctx)
    cap = tcpdump(ctx.procs, ctx.tmpfile,
                  extra=['--time-stamp-precision=nano'])
    with cap:
        basic_session(client, ops)
    return dict(command=shlex.join(cap.args), client='scripts/ca_client.py '
                '(caproto sans-I/O)', operations=['same as basic.pcap:'] + ops,
                expected=transcript_descr(client))


# The caproto CLI (sync client) sessions of session.pcapng.  Each tool run is
# its own circuit: RepeaterRegisterRequest + search, connect, create, ...
CLI_STEPS = [
    (['caproto-get', '--no-repeater', 'FIX:str'],
     'caproto-get FIX:str: ReadNotify as native STRING -> "hello"'),
    (['caproto-get', '--no-repeater', '-d', 'time', 'FIX:enum'],
     'caproto-get -d time FIX:enum: ReadNotify as TIME_ENUM -> 1'),
    (['caproto-get', '--no-repeater', '-d', 'control', '-n', 'FIX:enum'],
     'caproto-get -d control -n FIX:enum: ReadNotify as CTRL_ENUM -> 1, '
     'strings Off/On/Fault'),
    (['caproto-get', '--no-repeater', '-d', 'control', 'FIX:long'],
     'caproto-get -d control FIX:long: ReadNotify as CTRL_LONG -> 42, '
     'units "counts"'),
    (['caproto-put', '--no-repeater', '-c', 'FIX:long', '7'],
     'caproto-put -c FIX:long 7: ReadNotify (old value, LONG), WriteNotify '
     '7 as LONG -> WriteNotifyResponse, ReadNotify (new value 7)'),
    (['caproto-put', '--no-repeater', '-c', 'FIX:str', 'world'],
     'caproto-put -c FIX:str world: ReadNotify, WriteNotify "world" as '
     'STRING, ReadNotify'),
    (['caproto-monitor', '--no-repeater', '--maximum', '1', 'FIX:enum'],
     'caproto-monitor --maximum 1 FIX:enum: EventAdd as TIME_STRING (mask '
     'DBE_VALUE|DBE_ALARM = 5) -> one EventAddResponse "On"; then the tool '
     'sends ClearChannel directly (no EventCancel)'),
]


@scenario('session.pcapng')
def sc_session(ctx):
    env = ctx.env()
    ctx.start_ioc(env)
    ops = []
    cap = dumpcap(ctx.procs, ctx.tmpfile, [('lo', CA_PORTS_FILTER)])
    with cap:
        for args, text in CLI_STEPS:
            cmd = [os.path.join(BIN, args[0]), *args[1:]]
            r = subprocess.run(cmd, env=env, capture_output=True, text=True,
                               timeout=20)
            if r.returncode != 0:
                raise RuntimeError(f'{args}: {r.stdout} {r.stderr}')
            ops.append(f'{text}  [output: {r.stdout.strip()!r}]')
            time.sleep(0.3)
    ops.insert(0, 'every tool run is its own client: RepeaterRegisterRequest '
               'to 127.0.0.1:5065 (no repeater runs; the ICMP port '
               'unreachable is not captured), VersionRequest + SearchRequest '
               '(random cid) to 5064 -> VersionResponse + SearchResponse, a '
               'new TCP circuit: VersionRequest, HostNameRequest, '
               'ClientNameRequest, CreateChanRequest (cid 0) each in its own '
               'segment (the server VersionResponse may come between them), '
               'AccessRightsResponse + CreateChanResponse, the operation(s), '
               'ClearChannel, close')
    return dict(command=shlex.join(cap.args), client='caproto 1.3.0 command '
                'line tools (caproto.sync.client), one circuit per tool run',
                operations=ops, expected=None)


def short_session(client, ops, name='FIX:long'):
    found = client.search([name])
    circ = client.connect(found[name])
    chan = client.create(circ, name)
    client.read(chan, data_type='time')
    r = client.write(chan, 43, notify=True)
    assert isinstance(r, ca.WriteNotifyResponse), r
    client.read(chan)
    client.clear(chan)
    client.close()
    ops += [f'UDP search {name} (VersionRequest + SearchRequest cid 0) -> '
            'VersionResponse + SearchResponse',
            'TCP connect; VersionRequest + HostNameRequest + ClientNameRequest;'
            ' VersionResponse',
            f'create {name} (cid 0) -> AccessRightsResponse + '
            'CreateChanResponse',
            f'ReadNotify {name} as TIME_LONG (ioid 0) -> 42',
            f'WriteNotify {name} = 43 as LONG (ioid 1) -> WriteNotifyResponse',
            f'ReadNotify {name} as LONG (ioid 2) -> 43',
            f'ClearChannel {name}; close (client FIN first)']


def cooked_session(ctx, linktype):
    """The short session captured on `any` with a Linux cooked link type."""
    env, client, ops = ioc_and_client(ctx)
    cap = tcpdump(ctx.procs, ctx.tmpfile, iface='any', filt=ANY_FILTER,
                  extra=['-y', linktype])
    with cap:
        short_session(client, ops)
    return dict(command=shlex.join(cap.args), client='scripts/ca_client.py',
                operations=ops, expected=transcript_descr(client))


@scenario('sll2.pcap')
def sc_sll2(ctx):
    return cooked_session(ctx, 'LINUX_SLL2')


@scenario('sll.pcap')
def sc_sll(ctx):
    return cooked_session(ctx, 'LINUX_SLL')


BIG_COUNT = 100_000      # > 0xffff elements: extended headers; 800 kB each


@scenario('bigarray.pcap')
def sc_bigarray(ctx):
    import numpy as np
    env, client, ops = ioc_and_client(ctx)
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        circ, (wf,) = channels_of(client, ['FIX:wf'])
        r = client.read(wf, data_count=BIG_COUNT)
        assert len(r.data) == BIG_COUNT
        r = client.write(wf, np.arange(BIG_COUNT, dtype='>f8') * -1.0,
                         notify=True, data_count=BIG_COUNT)
        assert isinstance(r, ca.WriteNotifyResponse), r
        sub = client.subscribe(wf, data_count=BIG_COUNT)
        client.unsubscribe(wf, sub)
        client.clear(wf)
        client.close()
    ops += ['UDP search FIX:wf -> found at 127.0.0.1:5064',
            'TCP connect; VersionRequest + HostNameRequest + ClientNameRequest;'
            ' VersionResponse',
            'create FIX:wf (cid 0): native DOUBLE, count 200000',
            f'ReadNotify FIX:wf DOUBLE count {BIG_COUNT} (ioid 0) -> '
            f'{BIG_COUNT} doubles i*0.5 (800000-byte payload, extended '
            'header)',
            f'WriteNotify FIX:wf DOUBLE count {BIG_COUNT} (ioid 1), values '
            '-i (extended header, 800000-byte payload) -> WriteNotifyResponse',
            f'EventAdd FIX:wf DOUBLE count {BIG_COUNT} (subscriptionid 0) -> '
            'one EventAddResponse with the written values (extended header)',
            'EventCancel -> EventCancelResponse; ClearChannel; close']
    return dict(command=shlex.join(cap.args), client='scripts/ca_client.py',
                operations=ops, expected=transcript_descr(client))


@scenario('midstream.pcap')
def sc_midstream(ctx):
    env, client, ops = ioc_and_client(ctx)
    found = client.search(['FIX:ticks', 'FIX:burst'])
    circ = client.connect(found['FIX:ticks'])
    ticks = client.create(circ, 'FIX:ticks')
    burst = client.create(circ, 'FIX:burst')
    sub = client.subscribe(ticks, data_type='time')
    client.sleep(0.3)
    ops += ['before the capture: search FIX:ticks + FIX:burst, connect, '
            'create FIX:ticks (cid 0, sid 0) and FIX:burst (cid 1, sid 1), '
            'EventAdd FIX:ticks as TIME_LONG (subscriptionid 0) and its '
            'initial update (value 0)']
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        start = len(client.transcript)
        r = client.write(burst, 3, notify=True)
        assert isinstance(r, ca.WriteNotifyResponse), r
        client.wait_updates(ticks, sub, 3)
        client.sleep(0.3)
        client.read(burst)
        client.read(ticks, data_type='time')
        expected = transcript_descr(client, start)
    ops += ['capture starts: WriteNotify FIX:burst = 3 as LONG (sid 1, '
            'ioid 0) -> WriteNotifyResponse',
            'three EventAddResponses for subscriptionid 0 (FIX:ticks = 1, 2, 3;'
            ' 0.1 s apart, the first 0.1 s after the write)',
            'ReadNotify FIX:burst as LONG (ioid 1) -> 3; ReadNotify FIX:ticks '
            'as TIME_LONG (ioid 2) -> 3',
            'capture stops; only then the client unsubscribes, clears and '
            'closes (not in the file). No SYN, no search, no create in the '
            'file.']
    client.unsubscribe(ticks, sub)
    client.clear(ticks)
    client.clear(burst)
    client.close()
    return dict(command=shlex.join(cap.args), client='scripts/ca_client.py',
                operations=ops, expected=expected)


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


@scenario('noise.pcap', needs=('unshare', 'ip'))
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


@scenario('reuse.pcap')
def sc_reuse(ctx):
    env, client, ops = ioc_and_client(ctx)
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        found = client.search(['FIX:dbl', 'FIX:long', 'FIX:limited'])
        circ = client.connect(found['FIX:dbl'])
        a = client.create(circ, 'FIX:dbl', cid=0)
        client.read(a, ioid=0)
        client.clear(a)
        b = client.create(circ, 'FIX:long', cid=0)
        client.read(b, ioid=0)
        client.clear(b)
        c = client.create(circ, 'FIX:dbl', cid=0)
        client.read(c, ioid=0)
        client.clear(c)
        lim = client.create(circ, 'FIX:limited', cid=1)
        r1 = client.write(lim, 150.0, notify=True, ioid=1)
        r2 = client.write(lim, 150.0, notify=False, ioid=2,
                          expect_response=True)
        r3 = client.read(lim, ioid=3)
        client.clear(lim)
        client.close()
    ops += ['UDP: one search datagram: VersionRequest + SearchRequest FIX:dbl '
            '(cid 0), FIX:long (cid 1), FIX:limited (cid 2); all answered',
            'TCP connect; VersionRequest + HostNameRequest + ClientNameRequest;'
            ' VersionResponse',
            'create FIX:dbl with cid 0 -> sid 0; ReadNotify DOUBLE ioid 0 -> '
            '3.25; ClearChannel',
            'create FIX:long with cid 0 again (cid reused by the client) -> '
            'sid 1 (caproto never reuses sids); ReadNotify LONG ioid 0 '
            '(ioid reused) -> 42; ClearChannel',
            'create FIX:dbl again with cid 0 -> sid 2; ReadNotify DOUBLE '
            'ioid 0 -> 3.25; ClearChannel',
            'create FIX:limited with cid 1 -> sid 3',
            f'WriteNotify FIX:limited = 150.0 (ioid 1): answered by '
            f'{type(r1).__name__}'
            + (f' status {r1.status.name}, message '
               f'{bytes(r1.error_message).rstrip(bytes(1)).decode()!r}, '
               f'original request = the WriteNotifyRequest header'
               if isinstance(r1, ca.ErrorResponse) else ''),
            f'Write (no notify) FIX:limited = 150.0 (ioid 2): answered by '
            f'{type(r2).__name__}'
            + (f' status {r2.status.name}' if r2 is not None else ''),
            f'ReadNotify FIX:limited DOUBLE ioid 3 -> {r3.data[0]} '
            '(unchanged)',
            'ClearChannel FIX:limited; close']
    return dict(command=shlex.join(cap.args), client='scripts/ca_client.py',
                operations=ops, expected=transcript_descr(client))


IFLA_GSO_MAX_SEGS, IFLA_GSO_MAX_SIZE, IFLA_GRO_MAX_SIZE = 40, 41, 58
IFLA_GSO_IPV4_MAX_SIZE, IFLA_GRO_IPV4_MAX_SIZE = 63, 64   # linux/if_link.h (6.3+)


def set_lo(attrs):
    """Set u32 link attributes of lo ({IFLA_*: value}) by a raw rtnetlink
    RTM_NEWLINK (Debian 12's iproute2 does not know all of them)."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    try:
        s.bind((0, 0))
        body = struct.pack('=BxHiII', socket.AF_UNSPEC, 0,
                           socket.if_nametoindex('lo'), 0, 0) + b''.join(
            struct.pack('=HHI', 8, t, v) for t, v in attrs.items())
        s.send(struct.pack('=IHHII', 16 + len(body), 16, 1 | 4, 1, 0) + body)
        error = struct.unpack_from('=i', s.recv(4096), 16)[0]
    finally:
        s.close()
    if error:
        raise RuntimeError(f'setting {attrs} on lo: netlink error {error}')


def lo_like_ethernet(mtu=1500):
    """Make lo (of a private network namespace) cut TCP as Ethernet does:
    MTU ``mtu`` and one segment per packet (GSO max segs 1)."""
    subprocess.run(['ip', 'link', 'set', 'lo', 'mtu', str(mtu)], check=True)
    set_lo({IFLA_GSO_MAX_SEGS: 1})


def big_tcp_on_lo(size):
    """Let lo's TCP send (and deliver) IPv4 packets of up to ``size`` bytes
    (Linux "BIG TCP", kernel 6.3 or later), as ``ip link set dev lo
    gso_ipv4_max_size SIZE gro_ipv4_max_size SIZE`` would."""
    set_lo({IFLA_GSO_MAX_SIZE: size, IFLA_GRO_MAX_SIZE: size,
            IFLA_GSO_IPV4_MAX_SIZE: size, IFLA_GRO_IPV4_MAX_SIZE: size})


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


@scenario('bigtcp.pcap', needs=('unshare', 'ip'))
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


@scenario('mtu1500.pcap', needs=('unshare', 'ip'))
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


@scenario('fragments.pcap', needs=('unshare', 'ip'))
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


@scenario('lossy.pcap', needs=('unshare', 'ip'))
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


@scenario('unanswered.pcap')
def sc_unanswered(ctx):
    """Requests the server never answers while the capture runs: a put
    with completion still running at the end, and a circuit stalled behind
    a slow read and then closed by its client."""
    env, client, ops = ioc_and_client(ctx)
    stuck = ca_client.Client(user_name='stuck')
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        found = client.search(['FIX:dbl', 'FIX:slow_put'])
        circ = client.connect(found['FIX:dbl'])
        dbl = client.create(circ, 'FIX:dbl')
        put = client.create(circ, 'FIX:slow_put')
        client.read(dbl)
        client.write(put, 1.0, notify=True, expect_response=False)
        client.read(dbl)
        circ2 = stuck.connect(found['FIX:dbl'])
        dbl2 = stuck.create(circ2, 'FIX:dbl')
        get = stuck.create(circ2, 'FIX:slow_get')
        stuck.read(get, wait=False)
        stuck.subscribe(dbl2, wait=False)
        stuck.create(circ2, 'FIX:long', wait=False)
        stuck.sleep(0.5)
        stuck.close_circuit(circ2)
        client.sleep(0.5)
    client.close()
    stuck.close()
    ops += ['UDP: one search datagram: VersionRequest + SearchRequest FIX:dbl '
            '(cid 0), FIX:slow_put (cid 1); both answered',
            'client 1 (user "fixture"): TCP connect; create FIX:dbl (cid 0, '
            'sid 0) and FIX:slow_put (cid 1, sid 1); ReadNotify FIX:dbl '
            '(ioid 0) -> 3.25',
            'WriteNotify FIX:slow_put = 1.0 (ioid 1): the IOC\'s put takes '
            '600 s, so no WriteNotifyResponse before the capture ends',
            'ReadNotify FIX:dbl (ioid 2) -> 3.25: the circuit still answers',
            'client 2 (user "stuck"): TCP connect; create FIX:dbl (cid 0, '
            'sid 0) and FIX:slow_get (cid 1, sid 1): sids count per circuit',
            'ReadNotify FIX:slow_get (ioid 0): the IOC\'s read takes 600 s '
            'on the circuit\'s one command loop, so it is not answered; then '
            'EventAdd FIX:dbl (subscriptionid 0) and CreateChan FIX:long '
            '(cid 2), sent without waiting, are not answered either',
            'after 0.5 s client 2 closes its circuit (FIN; the IOC answers '
            'with its FIN) with those 3 requests pending; the capture is '
            'stopped with client 1\'s circuit open and its WriteNotify '
            'pending (the last packet is the IOC\'s FIN)']
    return dict(command=shlex.join(cap.args), client='scripts/ca_client.py '
                '(two clients, one after the other)', operations=ops,
                expected=transcript_descr(client) + transcript_descr(stuck))


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


@scenario('stalenames.pcap', needs=('unshare', 'ip'))
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


RING_DIR = 'ring'        # ring.pcapng's files, as dumpcap -b wrote them


def join_ring(path):
    """The files ``dumpcap -b ... -w path`` wrote (``STEM_NNNNN_DATE.EXT``),
    in order, joined into ``path`` (cat: one pcapng section each)."""
    stem, ext = os.path.splitext(path)
    parts = sorted(glob.glob(f'{stem}_*{ext}'))
    with open(path, 'wb') as joined:
        for part in parts:
            with open(part, 'rb') as f:
                joined.write(f.read())
    return parts


@scenario('ring.pcapng', needs=('dumpcap',))
def sc_ring(ctx):
    """A ring buffer: dumpcap -b duration:1 starts a new file every second.
    The channels are created in the first file and used in the later ones;
    a put with completion (FIX:late_put, 1.5 s) is answered in a later file
    than its request. ``ring.pcapng`` is the files joined (cat: one section
    per file), which is what the checker reads; the files themselves go
    under ``fixtures/ring/`` (``parts``)."""
    env, client, ops = ioc_and_client(ctx)
    cap = dumpcap(ctx.procs, ctx.tmpfile, [('lo', CA_PORTS_FILTER)],
                  extra=('-b', 'duration:1'))
    with cap:
        found = client.search(['FIX:dbl', 'FIX:counter', 'FIX:late_put'])
        circ = client.connect(found['FIX:dbl'])
        dbl = client.create(circ, 'FIX:dbl')
        counter = client.create(circ, 'FIX:counter')
        late = client.create(circ, 'FIX:late_put')
        sub = client.subscribe(counter)
        client.read(dbl)
        client.write(late, 2.0, notify=True)
        client.sleep(1.2)
        client.read(dbl)
        client.unsubscribe(counter, sub)
        client.clear(dbl)
        client.close_circuit(circ)
    parts = join_ring(ctx.tmpfile)
    if len(parts) < 3:
        raise RuntimeError(f'dumpcap wrote {len(parts)} ring files, not 3 or more')
    ops += ['UDP: one search datagram: VersionRequest + SearchRequest FIX:dbl (cid 0), '
            'FIX:counter (cid 1), FIX:late_put (cid 2); all answered',
            'TCP connect; create FIX:dbl (sid 0), FIX:counter (sid 1), FIX:late_put (sid 2)',
            'EventAdd FIX:counter (subscriptionid 0): an update every 0.1 s until cancelled',
            'ReadNotify FIX:dbl (ioid 0) -> 3.25',
            'WriteNotify FIX:late_put = 2.0 (ioid 1): the IOC completes it 1.5 s later, '
            'so its WriteNotifyResponse is in a later file than the request',
            'after 1.2 s more: ReadNotify FIX:dbl (ioid 2); EventCancel FIX:counter; '
            'ClearChannel FIX:dbl; the client closes the circuit',
            f'dumpcap started a new file every second: {len(parts)} files, joined in '
            f'order into ring.pcapng (one section per file); the files are in '
            f'fixtures/{RING_DIR}/']
    return dict(command=shlex.join(cap.args), client='scripts/ca_client.py '
                '(caproto sans-I/O)', operations=ops,
                expected=transcript_descr(client), per_direction=True,
                parts=[os.path.join(RING_DIR, os.path.basename(p)) for p in parts])


@scenario('twoservers.pcap')
def sc_twoservers(ctx):
    env = ctx.env(EPICS_CA_ADDR_LIST='127.0.0.1 127.0.0.1:5066',
                  EPICS_CAS_BEACON_PERIOD='1.0')
    start_repeater(ctx.procs, env)
    ctx.start_ioc(env, port=5064, prefix='FIX:', common=1.0, beacons=True)
    iocb = ctx.start_ioc(env, port=5066, prefix='FIXB:', common=2.0,
                         beacons=True)
    client = ca_client.Client()
    ops = []
    A, B = ('127.0.0.1', 5064), ('127.0.0.1', 5066)
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        client.register_repeater()
        found = client.search(['FIX:common'], [A, B])
        missing = [f'FIX:missing_{i}' for i in range(3)]
        for _ in range(3):
            client.search(missing, [A, B], expect=())
        circ = client.connect(found['FIX:common'])
        ch = client.create(circ, 'FIX:common')
        client.read(ch, data_type='time')
        client.clear(ch)
        client.close_circuits()
        client.sleep(0.5)
        ctx.procs.stop(iocb)
        client.sleep(0.5)
        ctx.start_ioc(env, port=5066, prefix='FIXB:', common=2.0,
                      beacons=True, name='ioc5066-restarted')
        client.sleep(1.5)
        found2 = client.search(['FIX:common'], [B])
        circ = client.connect(found2['FIX:common'])
        ch = client.create(circ, 'FIX:common')
        client.read(ch, data_type='time')
        client.clear(ch)
        client.close()
        client.sleep(0.5)
    ops += ['caproto-repeater on 5065; IOC A (fixture_ioc.py, port 5064, '
            'prefix FIX:, FIX:common = 1.0) and IOC B (port 5066, prefix '
            'FIXB:, FIX:common = 2.0), both beaconing to 127.0.0.1:5065 '
            '(EPICS_CAS_BEACON_PERIOD=1: beacons 0.02, 0.04, 0.08 ... then '
            'every 1 s); all started before the capture',
            'client UDP: RepeaterRegisterRequest to 5065 -> '
            'RepeaterConfirmResponse; from then on the repeater forwards each '
            'beacon to the client\'s UDP port (from port 5065)',
            'search FIX:common (cid 0): one datagram to 5064, wait for the '
            'answer, then one to 5066, wait for the answer (both answer, with '
            'their own port)',
            'search FIX:missing_0, _1, _2 in one datagram (VersionRequest + '
            '3 SearchRequests): 3 rounds with new cids each round (1-3, 4-6, '
            '7-9), each round sent to 5064 then 5066 with 0.3 s waits; '
            'nobody answers',
            'TCP to IOC A (5064): connect, create FIX:common (cid 0), '
            'ReadNotify TIME_DOUBLE -> 1.0, ClearChannel, close',
            'IOC B is stopped (SIGINT) and started again on 5066: its '
            'beacons restart at beacon_id 0 with a new fast sequence',
            'search FIX:common (cid 10) at 5066 only -> answer from the new '
            'IOC B; TCP to 5066: connect, create FIX:common (cid 0), '
            'ReadNotify TIME_DOUBLE -> 2.0, ClearChannel, close',
            'beacons (Beacon/RsrvIsUp, from both IOCs to 5065, and forwarded '
            'by the repeater to the client) are interleaved in numbers that '
            'depend on timing: see the decoded list']
    return dict(command=shlex.join(cap.args), client='scripts/ca_client.py + '
                'caproto-repeater', operations=ops,
                expected=transcript_descr(client), ignore_beacons=True,
                check=check_beacon_restart)


def check_beacon_restart(summary):
    ids = [c.beacon_id for f, i, t, s, d, dr, text, c in summary
           if isinstance(c, ca.Beacon) and c.server_port == 5066
           and d.endswith(':5065')]
    drops = [(a, b) for a, b in zip(ids, ids[1:]) if b < a]
    if not drops:
        return f'no beacon counter reset seen for 5066: {ids}'
    return None


@scenario('twoif.pcapng')
def sc_twoif(ctx):
    env, client, ops = ioc_and_client(ctx)
    cap = dumpcap(ctx.procs, ctx.tmpfile, [('lo', 'port 5064'),
                                          ('any', 'host 127.0.0.1 and '
                                           'port 5064')])
    with cap:
        found = client.search(['FIX:long'])
        circ = client.connect(found['FIX:long'])
        chan = client.create(circ, 'FIX:long')
        client.read(chan)
        client.clear(chan)
        client.close()
    ops += ['search FIX:long, connect, create (cid 0), ReadNotify LONG '
            '(ioid 0) -> 42, ClearChannel, close; every packet is in the file '
            'twice: on interface 0 (lo, EN10MB) and on interface 1 (any, '
            'LINUX_SLL), interleaved in time']
    return dict(command=shlex.join(cap.args), client='scripts/ca_client.py',
                operations=ops, expected=transcript_descr(client),
                per_interface=True)


def have_module(name):
    r = subprocess.run([PY, '-c', f'import {name}'], capture_output=True)
    return r.returncode == 0


@scenario('libca.pcap', needs=('module:epics',))
def sc_libca(ctx):
    env = ctx.env()
    start_repeater(ctx.procs, env)
    ctx.start_ioc(env)
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        r = subprocess.run([PY, os.path.join(HERE, 'libca_session.py')],
                           env=env, capture_output=True, text=True,
                           timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f'libca_session failed: {r.stdout}\n{r.stderr}')
    info = json.loads(r.stdout.strip().splitlines()[-1])
    return dict(command=shlex.join(cap.args), client=info['client'],
                operations=info['operations'], expected=None)


@scenario('stuckioc.pcap', needs=('unshare', 'sysctl'))
def sc_stuckioc(ctx):
    """An IOC that stops reading (SIGSTOP) while a client writes a waveform:
    its receive window fills and it advertises a zero window until it runs
    again. Inside a private network namespace whose TCP receive buffers are
    small (net.ipv4.tcp_rmem 4096 8192 16384), so 12 kB fill it."""
    subprocess.run(['sysctl', '-q', '-w', 'net.ipv4.tcp_rmem=4096 8192 16384'], check=True)
    env = ctx.env()
    ioc = ctx.start_ioc(env)
    client, ops = ca_client.Client(), []
    ops.append('in a private network namespace whose TCP receive buffers are at most '
               '16 kB (sysctl net.ipv4.tcp_rmem="4096 8192 16384")')
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        circ, (wf,) = channels_of(client, ['FIX:wf'])
        ops.append('search and create FIX:wf')
        os.kill(ioc.pid, signal.SIGSTOP)
        time.sleep(0.2)
        client.write(wf, [float(i) for i in range(1500)], notify=False,
                     data_type=ca.ChannelType.DOUBLE)
        time.sleep(1.0)
        ops.append('SIGSTOP to the IOC; the client writes 1500 doubles to FIX:wf '
                   '(WriteRequest, 12 kB): the stopped IOC reads nothing, its '
                   'receive window fills (TCP zero window)')
        os.kill(ioc.pid, signal.SIGCONT)
        client.read(wf, data_type=ca.ChannelType.DOUBLE, data_count=3)
        client.clear(wf)
        client.close()
        ops.append('1 s later SIGCONT: the IOC reads the write; ReadNotify FIX:wf '
                   'count 3 (0.0, 1.0, 2.0); clear; close')
    return dict(command=shlex.join(cap.args), client='scripts/ca_client.py',
                operations=ops, expected=transcript_descr(client))


@scenario('hung.pcap', needs=('module:epics',))
def sc_hung(ctx):
    """A libca client whose IOC hangs (SIGSTOP): libca's EchoRequest is
    never answered (scripts/libca_hung.py)."""
    env = ctx.env(EPICS_CA_CONN_TMO='2')
    ioc = ctx.start_ioc(env)
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        r = subprocess.run([PY, os.path.join(HERE, 'libca_hung.py'), str(ioc.pid)],
                           env=env, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f'libca_hung failed: {r.stdout}\n{r.stderr}')
    info = json.loads(r.stdout.strip().splitlines()[-1])
    return dict(command=shlex.join(cap.args), client=info['client'],
                operations=info['operations'], expected=None)


@scenario('nameserver.pcap', needs=('module:softioc', 'module:epics'))
def sc_nameserver(ctx):
    """libca finds its channels through a CA name server: searches over TCP
    (scripts/libca_nameserver.py) to the rsrv IOC, which answers them there."""
    env = ctx.env(EPICS_CAS_BEACON_PORT='5099', EPICS_CA_ADDR_LIST='',
                  EPICS_CA_NAME_SERVERS='127.0.0.1:5064')
    start_rsrv(ctx.procs, env)
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        r = subprocess.run([PY, os.path.join(HERE, 'libca_nameserver.py')], env=env,
                           capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f'libca_nameserver failed: {r.stdout}\n{r.stderr}')
    info = json.loads(r.stdout.strip().splitlines()[-1])
    return dict(command=shlex.join(cap.args), client=info['client'] +
                ' against pythonSoftIOC (EPICS rsrv)',
                operations=['EPICS_CA_NAME_SERVERS=127.0.0.1:5064, EPICS_CA_ADDR_LIST '
                            'empty, EPICS_CA_AUTO_ADDR_LIST=NO: no UDP search'] +
                info['operations'], expected=None)


@scenario('slowclient.pcap')
def sc_slowclient(ctx):
    """A client that stops reading while the IOC floods it with monitor
    updates (TCP zero windows from the client), then turns the server's
    updates off and on again with CA's own flow control (EventsOff/EventsOn,
    which libca sends when it falls behind)."""
    env, client, ops = ioc_and_client(ctx)
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        found = client.search(['FIX:flood', 'FIX:flood_n'])
        circ = client.connect(found['FIX:flood'], rcvbuf=16384)
        flood, flood_n = (client.create(circ, n) for n in ('FIX:flood', 'FIX:flood_n'))
        sub = client.subscribe(flood)
        ops.append('search FIX:flood (DOUBLE[500]) and FIX:flood_n; connect with a '
                   '16 kB receive buffer (SO_RCVBUF); create both; EventAdd FIX:flood '
                   '(native type): the first update')
        client.write(flood_n, 60)
        time.sleep(1.0)
        client.drain(circ)
        ops.append('WriteNotify FIX:flood_n = 60: the IOC updates FIX:flood 60 times, '
                   '2 ms apart (4 kB each); the client reads nothing for 1 s, so its '
                   'receive window fills (TCP zero window) and the IOC must wait; then it '
                   'reads everything')
        client._send(circ, ca.EventsOffRequest())
        client.sleep()
        client.write(flood_n, 50)
        time.sleep(0.5)
        client._send(circ, ca.EventsOnRequest())
        client.drain(circ)
        ops.append('EventsOff; WriteNotify FIX:flood_n = 50: 50 updates in 0.1 s, none '
                   'sent while events are off; 0.5 s later EventsOn: the IOC sends the '
                   'latest value, once')
        client.unsubscribe(flood, sub)
        client.clear(flood)
        client.clear(flood_n)
        client.close()
        ops.append('EventCancel; clear both channels; close')
    return dict(command=shlex.join(cap.args), client='scripts/ca_client.py',
                operations=ops, expected=transcript_descr(client), per_direction=True)


@scenario('iocdeath.pcap')
def sc_iocdeath(ctx):
    """The IOC process dies (SIGKILL) while a client is connected: the kernel
    closes its sockets, so the server's side of the circuit sends the first
    FIN; the client's read of FIX:slow_get is never answered."""
    env = ctx.env()
    ioc = ctx.start_ioc(env)
    client, ops = ca_client.Client(), []
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        circ, (dbl, slow) = channels_of(client, ['FIX:dbl', 'FIX:slow_get'])
        client.subscribe(dbl, data_type='time')
        ops.append('search and create FIX:dbl and FIX:slow_get; EventAdd FIX:dbl '
                   '(TIME_DOUBLE): the first update')
        client.read(slow, wait=False)
        time.sleep(0.3)
        ops.append('ReadNotify FIX:slow_get (a read the IOC takes 600 s to answer)')
        ioc.kill()                       # SIGKILL: no clean-up by the IOC itself
        ioc.wait()
        client.drain(circ)               # (until the end of the server's stream)
        client.close()
        ops.append('the IOC process is killed (SIGKILL) 0.3 s later: its kernel '
                   'closes the circuit (FIN from the server); the client reads the end '
                   'of the stream and closes its side (FIN)')
    return dict(command=shlex.join(cap.args), client='scripts/ca_client.py',
                operations=ops, expected=transcript_descr(client))


@scenario('rsrv.pcap', needs=('module:softioc', 'module:epics'))
def sc_rsrv(ctx):
    env = ctx.env(EPICS_CAS_BEACON_PORT='5099')
    start_repeater(ctx.procs, env)
    start_rsrv(ctx.procs, env)
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        r = subprocess.run([PY, os.path.join(HERE, 'libca_session.py'),
                            '--rsrv'], env=env, capture_output=True,
                           text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f'libca_session failed: {r.stdout}\n{r.stderr}')
    info = json.loads(r.stdout.strip().splitlines()[-1])
    return dict(command=shlex.join(cap.args), client=info['client'] +
                ' against pythonSoftIOC (EPICS rsrv)',
                operations=info['operations'], expected=None)


# --------------------------------------------------------------- context
class Ctx:
    def __init__(self, name, tmp):
        self.name = name
        self.tmp = tmp
        self.procs = Procs(tmp)
        self.tmpfile = os.path.join(tmp, name)
        self._env = None

    def env(self, **extra):
        self._env = base_env(**extra)
        apply_env(self._env)
        return self._env

    def start_ioc(self, env, **kw):
        return start_ioc(self.procs, env, **kw)


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


def record_one(name, out, attempts=3):
    fn, needs = SCENARIOS[name]
    for need in needs:
        if need.startswith('module:'):
            if not have_module(need.split(':', 1)[1]):
                return None, f'python module {need[7:]} is not installed'
        elif shutil.which(need) is None:
            return None, f'{need} is not installed'
    last = None
    for attempt in range(1, attempts + 1):
        tmp = tempfile.mkdtemp(prefix=f'fixture-{name}-')
        ctx = Ctx(name, tmp)
        try:
            log(f'=== {name} (attempt {attempt})')
            if name in IN_NETNS and not os.environ.get('RECORD_IN_NETNS'):
                meta = run_in_netns(name, tmp)
            else:
                meta = fn(ctx)
        except Exception as ex:  # noqa
            import traceback
            traceback.print_exc()
            last = f'{type(ex).__name__}: {ex}'
            continue
        finally:
            ctx.procs.stop_all()
            apply_env(base_env())
        meta['command'] = meta['command'].replace(ctx.tmpfile, name)
        summary = ca_decode.summary(ctx.tmpfile)
        problem = compare(name, meta, summary)
        if problem:
            log(f'{name}: attempt {attempt} rejected:\n{problem}')
            last = problem
            continue
        if meta.get('expected') is None and name not in REFERENCE:
            REFERENCE[name] = [(x[5], x[2], type(x[7]).__name__)
                               for x in summary if not x[6].startswith(BAD)]
            with open(REFERENCE_PATH, 'w') as f:
                json.dump(REFERENCE, f, indent=1)
        dest = os.path.join(out, name)
        shutil.copyfile(ctx.tmpfile, dest)
        if meta.get('parts'):          # (ring.pcapng: the files it joins)
            part_dir = os.path.join(out, os.path.dirname(meta['parts'][0]))
            shutil.rmtree(part_dir, ignore_errors=True)
            os.makedirs(part_dir)
            for part in meta['parts']:
                shutil.copyfile(os.path.join(tmp, os.path.basename(part)),
                                os.path.join(out, part))
        shutil.rmtree(tmp, ignore_errors=True)
        return finish_meta(name, dest, meta, summary), None
    return None, last


def finish_meta(name, path, meta, summary):
    info = capinfo(path)
    meta = {k: v for k, v in meta.items()
            if k not in ('check', 'expected')}
    meta['file'] = name
    meta['size_bytes'] = os.path.getsize(path)
    meta['packets'] = iostat_packets(path)
    meta['capinfos'] = {k: info.get(k) for k in (
        'File type', 'File encapsulation', 'File timestamp precision',
        'Packet size limit', 'Number of packets', 'Number of interfaces in '
        'file') if info.get(k)}
    meta['capinfos']['interfaces'] = [
        {k: v for k, v in i.items() if k in (
            'Name', 'Encapsulation', 'Capture length', 'Time precision',
            'Time ticks per second', 'Capture filter', 'Number of packets')}
        for i in info['interfaces']]
    meta['messages'] = [
        dict(frame=f, interface=int(i), transport=t, src=s, dst=d,
             direction=dr, message=text)
        for f, i, t, s, d, dr, text, c in summary]
    return meta


def run_in_netns(name, tmp):
    """Re-run this script for one scenario inside a new network namespace."""
    out_json = os.path.join(tmp, 'meta.json')
    cmd = ['unshare', '--net', '--', 'sh', '-c',
           'ip link set lo up && exec "$@"', 'sh', PY, os.path.abspath(
               __file__), '--_netns-child', name, '--_netns-tmp', tmp,
           '--_netns-json', out_json]
    env = dict(os.environ, RECORD_IN_NETNS='1')
    r = subprocess.run(cmd, env=env, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f'netns child failed ({r.returncode})')
    with open(out_json) as f:
        meta = json.load(f)
    meta['expected'] = [tuple(x) for x in meta['expected']]
    return meta


def netns_child(name, tmp, out_json):
    fn, _ = SCENARIOS[name]
    ctx = Ctx(name, tmp)
    try:
        meta = fn(ctx)
    finally:
        ctx.procs.stop_all()
    meta.pop('check', None)
    with open(out_json, 'w') as f:
        json.dump(meta, f)


# ----------------------------------------------------------------- README
README_HEAD = """# Recorded Channel Access fixtures

Real captures of real CA software talking over 127.0.0.1, made by
`scripts/record_fixtures.py` (read its docstring for what it needs; run it as
root: `/tmp/venv/bin/python scripts/record_fixtures.py [--out fixtures]
[--only NAME ...]`).  This file and `fixtures.json` are generated by that
script; `fixtures.json` has the same information in machine-readable form
(for every fixture: command, packet count, capinfos, operations and the
decoded CA message list).

Servers: `scripts/fixture_ioc.py` (caproto 1.3.0 IOC; PVs below), started
fresh for each fixture, so every fixture starts with the initial values.
Beacons are switched off except in `twoservers.pcap`.  The client host name
and user name sent by `scripts/ca_client.py` are `fixture-host` and `fixture`.

| PV | type | initial value / behaviour |
| --- | --- | --- |
| FIX:dbl | DOUBLE | 3.25, units "mm", precision 3, disp -10..10, alarm -8..8, warning -6..6, ctrl -20..20 |
| FIX:long | LONG | 42, units "counts" |
| FIX:float | FLOAT | 1.5 |
| FIX:str | STRING | "hello" |
| FIX:enum | ENUM | "On" (1) of Off/On/Fault |
| FIX:counter | LONG | +1 every 0.1 s, free running from IOC start |
| FIX:burst | LONG | writing N makes FIX:ticks tick N times, 0.1 s apart, the first 0.1 s after the write |
| FIX:ticks | LONG | 0; +1 per burst tick |
| FIX:wf | DOUBLE[200000] | i * 0.5 |
| FIX:limited | DOUBLE | 50.0, ctrl limits 0..100; writes outside fail with an ErrorResponse ECA_PUTFAIL |
| FIX:short_arr | SHORT[10] | 0..9 |
| FIX:char_arr | CHAR[64] | "fixture text" |
| FIX:slow_put | DOUBLE | 0.0; a put takes 600 s to complete (WriteNotify answered only then) |
| FIX:slow_get | DOUBLE | 0.0; a read takes 600 s, and stalls every later request of its circuit |
| FIX:late_put | DOUBLE | 0.0; a put takes 1.5 s to complete |
| FIX:flood | DOUBLE[500] | 0.0 everywhere; writing N to FIX:flood_n makes it update N times, 2 ms apart, each update adding 1 |
| FIX:flood_n | LONG | 0; see FIX:flood |
| FIX:common | DOUBLE | served by both IOCs of twoservers.pcap: 1.0 on 5064, 2.0 on 5066 |

The "decoded messages" lists below come from `scripts/ca_decode.py` (tshark
for the TCP/UDP payloads + TCP reassembly by sequence number + caproto's
parser): one line per CA message, at the frame that completes it.
Direction `C>S` is from a client (or to the repeater), `S>C` from a server or
the repeater.  Each recording was checked against the client's own record of
what it sent and received (or against `scripts/fixture_reference.json` for
the CLI / libca sessions) and re-recorded if they differed.
"""


README_NOTES = """## Notes (true for every recording made by the script)

* Packet counts, TCP segmentation (how many CA messages share a segment,
  where big messages are split), pure ACKs, ports and timestamps vary from
  run to run; the CA message sequences do not, except as noted here.  The
  script checks that on every recording.
* FIX:counter is free running, so its values in basic/nanosec depend on when
  the client subscribed; the number of updates (4 EventAddResponses before the
  cancel) is fixed.
* session.pcapng (caproto CLI): the order of the messages in each direction
  is fixed, but the CLI sends VersionRequest, HostNameRequest,
  ClientNameRequest and CreateChanRequest without waiting, so where the
  server's VersionResponse falls between them varies.  Search cids are
  random.  Host name and user name are those of the recording machine.
* Beacons are switched off in the caproto IOC (`fixture_ioc.py --no-beacons`)
  except in twoservers.pcap, and the rsrv IOC sends them to port 5099 (not
  captured): their timing would make the sequences differ between runs.
* caproto's answer to EventCancelRequest is an EventAddResponse header with
  no payload whose data_count is the subscription's requested count (0 in
  basic.pcap, 100000 in bigarray.pcap); rsrv answers likewise.
* caproto answers a failed write (value outside the control limits of
  FIX:limited) with an ErrorResponse ECA_PUTFAIL, for WriteNotifyRequest as
  well as for WriteRequest; no WriteNotifyResponse with an error status.
* caproto never reuses server ids (sids); reuse.pcap therefore shows a reused
  client cid and ioid (forced by the client), with new sids each time.
* bigarray.pcap reads, writes and subscribes 100000 of the 200000 elements
  of FIX:wf (3 messages of 800000 bytes each + 16 bytes extended header;
  the full waveform 3 times would exceed 3 MB).  tcpdump needs `-B 65536`
  here, or the kernel drops packets.
* midstream.pcap uses FIX:burst/FIX:ticks instead of the free-running
  FIX:counter, so that exactly 3 updates fall inside the capture.
* libca (pyepics) sent no RepeaterRegisterRequest during its short session,
  although a caproto-repeater was running.
* `ping` is not installed on the recording machine: the two ICMP echo
  requests of noise.pcap are sent with a raw socket by the script.
* noise.pcap is recorded inside a private network namespace (`unshare
  --net`), so the capture on its `lo` needs no filter and holds only the
  scenario's own traffic.  tshark's heuristics label some CA segments on port
  5064 as other protocols (e.g. LBMSRS); that is tshark's guess only.
* tcpdump is run with `--immediate-mode` and stopped 1.5 s after the last
  step: without that, libpcap hands packets over in blocks and the last ones
  are lost at SIGINT.
"""


def printable(text):
    """``text`` with NULs and other controls escaped (names from the wire)."""
    return text if text.isprintable() else text.encode('unicode_escape').decode('ascii')


def write_readme(out, manifest):
    lines = [README_HEAD]
    total = sum(m['size_bytes'] for m in manifest.values())
    lines.append('## Files\n')
    lines.append('| file | size (bytes) | packets | link type(s) | '
                 'timestamp precision |')
    lines.append('| --- | --- | --- | --- | --- |')
    for name in sorted(manifest):
        m = manifest[name]
        ci = m['capinfos']
        enc = ci.get('File encapsulation', '?')
        if enc == 'per-packet':
            enc += ': ' + ', '.join(
                f"if{n} {i.get('Name', '')} "
                f"{i.get('Encapsulation', '').split('(')[-1].rstrip(')')}"
                for n, i in enumerate(ci.get('interfaces', [])))
        lines.append(f"| {name} | {m['size_bytes']} | {m['packets']} | "
                     f"{enc} | "
                     f"{ci.get('File timestamp precision', '?')} |")
    lines.append(f'\nTotal: {total} bytes.\n')
    lines.append(README_NOTES)
    for name in sorted(manifest):
        m = manifest[name]
        lines.append(f'## {name}\n')
        lines.append(f"* command: `{m['command']}`")
        lines.append(f"* client: {m['client']}")
        lines.append(f"* packets: {m['packets']}, size {m['size_bytes']} "
                     'bytes')
        for k, v in m['capinfos'].items():
            if k == 'interfaces':
                for n, x in enumerate(v):
                    lines.append(f'* interface {n}: ' + '; '.join(
                        f'{a} = {b}' for a, b in x.items()))
            else:
                lines.append(f'* {k}: {v}')
        if m.get('note'):
            lines.append(f"* note: {m['note']}")
        lines.append('\nOperations, in order:\n')
        for i, op in enumerate(m['operations'], 1):
            lines.append(f'{i}. {op}')
        lines.append(f"\nDecoded messages ({len(m['messages'])}):\n")
        lines.append('```')
        for x in m['messages']:
            lines.append(f"{x['frame']:5d} if{x['interface']} "
                         f"{x['transport']} {x['src']:>15} -> "
                         f"{x['dst']:<15} {x['direction']} {printable(x['message'])}")
        lines.append('```\n')
    with open(os.path.join(out, 'README.md'), 'w') as f:
        f.write('\n'.join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description='Record CA fixture captures.')
    p.add_argument('--out', default=os.path.join(ROOT, 'fixtures'))
    p.add_argument('--only', nargs='+', metavar='NAME',
                   help='record only these fixtures (file names, with or '
                        'without extension)')
    p.add_argument('--list', action='store_true')
    p.add_argument('--refresh-reference', action='store_true',
                   help='recompute the decoded message lists of the recorded '
                        'fixtures (fixtures.json, README.md) without recording')
    p.add_argument('--_netns-child', dest='netns_child')
    p.add_argument('--_netns-tmp', dest='netns_tmp')
    p.add_argument('--_netns-json', dest='netns_json')
    args = p.parse_args(argv)
    if args.netns_child:
        netns_child(args.netns_child, args.netns_tmp, args.netns_json)
        return 0
    if args.list:
        print('\n'.join(SCENARIOS))
        return 0
    if args.refresh_reference:
        manifest_path = os.path.join(args.out, 'fixtures.json')
        with open(manifest_path) as f:
            manifest = json.load(f)
        for name, meta in manifest.items():
            summary = ca_decode.summary(os.path.join(args.out, name))
            meta['messages'] = [
                dict(frame=f, interface=int(i), transport=t, src=s, dst=d,
                     direction=dr, message=text)
                for f, i, t, s, d, dr, text, c in summary]
        with open(manifest_path, 'w') as f:
            json.dump(manifest, f, indent=1)
        write_readme(args.out, manifest)
        return 0
    if os.geteuid() != 0:
        log('warning: not root; captures will probably fail')
    names = list(SCENARIOS)
    if args.only:
        wanted = set(args.only)
        names = [n for n in names if n in wanted or n.split('.')[0] in wanted]
        unknown = wanted - set(names) - {n.split('.')[0] for n in names}
        if unknown:
            p.error(f'unknown fixtures: {sorted(unknown)}')
    os.makedirs(args.out, exist_ok=True)
    manifest_path = os.path.join(args.out, 'fixtures.json')
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        manifest = {}
    failures = {}
    for name in names:
        meta, err = record_one(name, args.out)
        if meta is None:
            log(f'{name}: NOT RECORDED: {err}')
            failures[name] = err
            continue
        manifest[name] = meta
        log(f"{name}: {meta['packets']} packets, {meta['size_bytes']} bytes, "
            f"{len(meta['messages'])} CA messages")
        with open(manifest_path, 'w') as f:
            json.dump(manifest, f, indent=1)
        write_readme(args.out, manifest)
    if failures:
        log('failures:\n' + '\n'.join(f'  {k}: {v}'
                                      for k, v in failures.items()))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
