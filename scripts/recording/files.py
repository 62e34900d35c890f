"""Scenarios whose capture file has another shape: Linux cooked link types
(capture on ``any``), two interfaces in one pcapng, a ring buffer of files."""
from __future__ import annotations

import glob
import os
import shlex

import caproto as ca

from .procs import ANY_FILTER, CA_PORTS_FILTER, dumpcap, tcpdump
from .scenario import ioc_and_client, scenario, transcript_descr


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
