"""Scenarios: caproto clients (scripts/ca_client.py, the caproto command line
tools) with the fixture IOC on lo: the basic session, big arrays, a capture
started mid-session, reused ids."""
from __future__ import annotations

import os
import shlex
import subprocess
import time

import caproto as ca

from .procs import BIN, CA_PORTS_FILTER, dumpcap, tcpdump
from .scenario import channels_of, ioc_and_client, scenario, transcript_descr


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
