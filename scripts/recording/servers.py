"""Scenarios of servers that do not simply answer: requests left unanswered,
two IOCs and a restart, an IOC that stops reading, a client that stops
reading, an IOC that dies."""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time

import caproto as ca

import ca_client

from .procs import start_repeater, tcpdump
from .scenario import channels_of, ioc_and_client, scenario, transcript_descr
from .verify import check_beacon_restart


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


@scenario('stuckioc.pcap', needs=('unshare', 'sysctl'), netns=True)
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
