#!/usr/bin/env python3
"""A pyepics (libca) client that finds its channels through a CA name
server (search over TCP), run by record_fixtures.py for nameserver.pcap.

Environment (set by the caller): EPICS_CA_NAME_SERVERS=127.0.0.1:5064,
EPICS_CA_ADDR_LIST empty, EPICS_CA_AUTO_ADDR_LIST=NO: libca sends no UDP
search at all; it opens a TCP circuit to the name server (here the rsrv IOC
itself, which answers searches over TCP, as when CA is reached through an
SSH tunnel) and sends its searches on it. Prints a JSON line describing the
operations at the end.
"""
import json


def main():
    from epics import ca, dbr

    ops = []
    ca.initialize_libca()
    for name, ftype in (('FIX:dbl', dbr.TIME_DOUBLE), ('FIX:long', dbr.TIME_LONG)):
        chid = ca.create_channel(name, connect=False, auto_cb=False)
        if not ca.connect_channel(chid, timeout=5.0):
            raise SystemExit(f'could not connect {name}')
        v = ca.get(chid, ftype=ftype, timeout=5.0)
        ops.append(f'ca_create_channel {name} (searched over TCP on the name '
                   f'server\'s circuit, then created on it); ca_get as '
                   f'{dbr.Name(ftype)} -> {v!r}')
    chid = ca.create_channel('NOPE:missing', connect=False, auto_cb=False)
    if ca.connect_channel(chid, timeout=2.0):
        raise SystemExit('NOPE:missing connected')
    ops.append('ca_create_channel NOPE:missing, which no server has: libca '
               'searches for it on the circuit again and again for 2 s (rsrv '
               'answers no search over TCP for a name it lacks)')
    ca.finalize_libca()
    ops.append('ca_context_destroy (pyepics finalize_libca): libca clears the '
               'channels and closes the circuit')
    print(json.dumps({'client': 'pyepics ' + __import__('epics').__version__
                      + ' (libca) via scripts/libca_nameserver.py', 'operations': ops}))


if __name__ == '__main__':
    main()
