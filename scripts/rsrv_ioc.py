#!/usr/bin/env python3
"""A real EPICS IOC (pythonSoftIOC: EPICS base, rsrv CA server) serving the
fixture PVs that ``libca_session.py`` uses, for ``rsrv.pcap``.

Run by record_fixtures.py with EPICS_CAS_INTF_ADDR_LIST=127.0.0.1,
EPICS_CAS_AUTO_BEACON_ADDR_LIST=NO, EPICS_CAS_BEACON_ADDR_LIST=127.0.0.1 and
EPICS_CAS_BEACON_PORT=5099 (beacons go nowhere that is captured); the PV
Access server is not started.  Prints RSRV-READY when serving; stops on
SIGTERM/SIGINT.

Records (prefix FIX:): dbl (ao 3.25, EGU mm, PREC 3, LOPR/HOPR -10/10,
LOLO/LOW/HIGH/HIHI -8/-6/6/8, DRVL/DRVH -20/20), long (longout 42, EGU
counts), str (stringout "hello"), enum (mbbo Off/On/Fault = 1), short_arr
(waveform SHORT[10] 0..9), ticks (longin 0), burst (longout: writing N makes
ticks count N times, 0.1 s apart, starting 0.1 s after the write).
"""
import os
import signal
import threading
import time

for k, v in dict(EPICS_CAS_INTF_ADDR_LIST='127.0.0.1',
                 EPICS_CAS_AUTO_BEACON_ADDR_LIST='NO',
                 EPICS_CAS_BEACON_ADDR_LIST='127.0.0.1',
                 EPICS_PVAS_INTF_ADDR_LIST='127.0.0.1',
                 EPICS_PVAS_AUTO_BEACON_ADDR_LIST='NO',
                 EPICS_PVAS_BEACON_ADDR_LIST='127.0.0.1',
                 EPICS_PVA_ADDR_LIST='127.0.0.1',
                 EPICS_PVA_AUTO_ADDR_LIST='NO').items():
    os.environ.setdefault(k, v)

import numpy as np  # noqa: E402
from softioc import asyncio_dispatcher, builder, softioc  # noqa: E402


def main():
    dispatcher = asyncio_dispatcher.AsyncioDispatcher()
    builder.SetDeviceName('FIX')
    builder.aOut('dbl', initial_value=3.25, EGU='mm', PREC=3,
                 DRVL=-20, DRVH=20, LOPR=-10, HOPR=10,
                 LOLO=-8, LOW=-6, HIGH=6, HIHI=8)
    builder.longOut('long', initial_value=42, EGU='counts')
    builder.stringOut('str', initial_value='hello')
    builder.mbbOut('enum', 'Off', 'On', 'Fault', initial_value=1)
    builder.WaveformOut('short_arr',
                        initial_value=np.arange(10, dtype=np.int16))
    ticks = builder.longIn('ticks', initial_value=0)

    def run_burst(n):
        t0 = time.monotonic()
        for i in range(int(n)):
            time.sleep(max(0.0, t0 + 0.1 * (i + 1) - time.monotonic()))
            ticks.set(ticks.get() + 1)

    def on_burst(value):
        threading.Thread(target=run_burst, args=(value,), daemon=True).start()

    builder.longOut('burst', initial_value=0, on_update=on_burst)
    builder.LoadDatabase()
    softioc.iocInit(dispatcher, enable_pva=False)
    print('RSRV-READY', flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    deadline = time.monotonic() + 600          # never run for more than 10 min
    while not stop.is_set() and time.monotonic() < deadline:
        stop.wait(0.2)
    os._exit(0)


if __name__ == '__main__':
    main()
