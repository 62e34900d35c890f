#!/usr/bin/env python3
"""A pyepics (libca) client whose IOC stops answering, run by record_fixtures.py.

    python scripts/libca_hung.py IOC_PID

Environment: EPICS_CA_ADDR_LIST=127.0.0.1, EPICS_CA_AUTO_ADDR_LIST=NO and
EPICS_CA_CONN_TMO (set by the caller, a few seconds). Connects FIX:dbl and
reads it, then stops the IOC process (SIGSTOP: a hung IOC whose host's
kernel still acknowledges TCP), waits until libca has found the circuit
unresponsive (it sends an EchoRequest after EPICS_CA_CONN_TMO seconds
without traffic and gives up on it after 5 s more, sending another) and
exits, leaving the IOC stopped; the caller continues it after the capture. Prints a JSON line
describing the operations at the end.
"""
import json
import os
import signal
import sys
import time


def main():
    ioc = int(sys.argv[1])
    from epics import ca, dbr

    ops = []
    conn_tmo = float(os.environ['EPICS_CA_CONN_TMO'])
    ca.initialize_libca()
    events = []

    def on_connect(pvname=None, conn=None, **kw):
        events.append((time.monotonic(), conn))

    chid = ca.create_channel('FIX:dbl', connect=False, auto_cb=False, callback=on_connect)
    if not ca.connect_channel(chid, timeout=5.0):
        raise SystemExit('could not connect FIX:dbl')
    v = ca.get(chid, ftype=dbr.DOUBLE, timeout=5.0)
    ops.append(f'ca_create_channel FIX:dbl; ca_get as DBR_DOUBLE -> {v!r}')
    os.kill(ioc, signal.SIGSTOP)
    stopped = time.monotonic()
    ops.append('SIGSTOP to the IOC process: it no longer reads or answers, '
               'while the kernel still acknowledges what the client sends')
    deadline = stopped + conn_tmo + 15
    while time.monotonic() < deadline and not any(c is False for _, c in events):
        ca.poll(0.05)
    lost = [t for t, c in events if c is False]
    if not lost:
        raise SystemExit('libca did not find the circuit unresponsive')
    ops.append(f'EPICS_CA_CONN_TMO={conn_tmo:g}: after that long without traffic '
               'libca sends an EchoRequest; no EchoResponse comes, and '
               f'{lost[0] - stopped:.0f} s after the SIGSTOP libca reports '
               'FIX:dbl disconnected (circuit unresponsive)')
    time.sleep(0.5)
    ca.finalize_libca()
    ops.append('ca_context_destroy (pyepics finalize_libca): libca closes '
               'its circuit with a FIN and then a RST; the stopped IOC sends '
               'nothing more')
    print(json.dumps({'client': 'pyepics ' + __import__('epics').__version__
                      + ' (libca) via scripts/libca_hung.py', 'operations': ops}))


if __name__ == '__main__':
    main()
