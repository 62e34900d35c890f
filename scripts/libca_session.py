#!/usr/bin/env python3
"""A short, fixed pyepics (libca) session, run by record_fixtures.py.

Environment: EPICS_CA_ADDR_LIST=127.0.0.1, EPICS_CA_AUTO_ADDR_LIST=NO (set by
the caller).  Prints a JSON line describing the operations at the end.

    python scripts/libca_session.py [--rsrv]

The same session runs against the caproto IOC (libca.pcap) and against the
pythonSoftIOC rsrv IOC of rsrv_ioc.py (rsrv.pcap, ``--rsrv``).
"""
import json
import sys
import time

NAMES = ['FIX:dbl', 'FIX:long', 'FIX:str', 'FIX:enum', 'FIX:short_arr',
         'FIX:ticks', 'FIX:burst']


def main():
    rsrv = '--rsrv' in sys.argv
    import epics
    from epics import ca, dbr

    ops = []
    ca.initialize_libca()
    ops.append('ca_context_create (pyepics initialize_libca); a '
               'caproto-repeater runs on 5065, but libca sent no '
               'RepeaterRegisterRequest during this short session')
    chids = {}
    for n in NAMES:
        chids[n] = ca.create_channel(n, connect=False, auto_cb=False)
    for n in NAMES:
        if not ca.connect_channel(chids[n], timeout=5.0):
            raise SystemExit(f'could not connect {n}')
    ops.append('ca_create_channel for ' + ', '.join(NAMES) + ' (in this '
               'order, before any pend: libca puts all searches in one '
               'datagram and, when answered, creates the channels on one '
               'circuit, several requests per TCP segment)')
    time.sleep(0.3)

    def get(name, ftype, label):
        v = ca.get(chids[name], ftype=ftype, timeout=5.0)
        ops.append(f'ca_get {name} as {label} -> {v!r}'.replace('\n', ' '))
        time.sleep(0.05)
        return v

    get('FIX:dbl', dbr.DOUBLE, 'DBR_DOUBLE')
    get('FIX:dbl', dbr.TIME_DOUBLE, 'DBR_TIME_DOUBLE')
    get('FIX:dbl', dbr.CTRL_DOUBLE, 'DBR_CTRL_DOUBLE')
    get('FIX:long', dbr.TIME_LONG, 'DBR_TIME_LONG')
    get('FIX:str', dbr.STRING, 'DBR_STRING')
    get('FIX:enum', dbr.ENUM, 'DBR_ENUM')
    get('FIX:enum', dbr.CTRL_ENUM, 'DBR_CTRL_ENUM')
    get('FIX:enum', dbr.STRING, 'DBR_STRING')
    v = get('FIX:short_arr', dbr.SHORT, 'DBR_SHORT (native count)')
    ops[-1] = f'ca_get FIX:short_arr as DBR_SHORT -> {list(v)}'
    get('FIX:short_arr', dbr.TIME_SHORT, 'DBR_TIME_SHORT')

    # three reads issued before one flush: libca sends them in one segment
    for n in ('FIX:dbl', 'FIX:long', 'FIX:str'):
        ca.get(chids[n], wait=False)
    ca.poll()
    vals = [ca.get_complete(chids[n], timeout=5.0)
            for n in ('FIX:dbl', 'FIX:long', 'FIX:str')]
    ops.append('ca_array_get_callback FIX:dbl, FIX:long, FIX:str (native '
               f'types) issued together, then one flush -> {vals!r}')
    time.sleep(0.1)

    ca.put(chids['FIX:dbl'], 1.25, wait=True, timeout=5.0)
    ops.append('ca_put_callback FIX:dbl = 1.25 (DBR_DOUBLE), waited for '
               'completion (WriteNotify)')
    time.sleep(0.1)
    get('FIX:dbl', dbr.DOUBLE, 'DBR_DOUBLE')

    updates = []

    def cb(pvname=None, value=None, **kw):
        updates.append(value)

    cbref, uaref, evid = ca.create_subscription(chids['FIX:ticks'],
                                                use_time=True, callback=cb)
    deadline = time.monotonic() + 5
    while not updates and time.monotonic() < deadline:
        ca.poll(0.01)
    time.sleep(0.2)
    ca.put(chids['FIX:burst'], 3, wait=True, timeout=5.0)
    deadline = time.monotonic() + 5
    while len(updates) < 4 and time.monotonic() < deadline:
        ca.poll(0.01)
    time.sleep(0.2)
    ca.poll()
    ca.clear_subscription(evid)
    ca.poll()
    time.sleep(0.2)
    ca.poll()
    ops.append('ca_create_subscription FIX:ticks as DBR_TIME_LONG, mask '
               'DBE_VALUE|DBE_ALARM (pyepics default) -> initial update 0; '
               'ca_put_callback FIX:burst = 3 (WriteNotify) -> FIX:ticks '
               f'updates; values seen {updates!r}; ca_clear_subscription '
               '(EventCancel)')
    for n in NAMES:
        ca.clear_channel(chids[n])
    ca.poll()
    time.sleep(0.2)
    ops.append('ca_clear_channel for every channel, in creation order')
    ca.finalize_libca()
    ops.append('ca_context_destroy (pyepics finalize_libca): the circuit '
               'is closed')
    client = f'pyepics {epics.__version__} with its bundled libca'
    print(json.dumps({'client': client, 'operations': ops,
                      'updates': [int(u) for u in updates]}))


if __name__ == '__main__':
    main()
