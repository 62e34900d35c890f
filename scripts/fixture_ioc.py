#!/usr/bin/env python3
"""A small caproto IOC that serves the PVs used by ``record_fixtures.py``.

Usage::

    python scripts/fixture_ioc.py [--prefix FIX:] [--port 5064]
                                  [--common-name FIX:common] [--common-value 1]
                                  [--no-beacons] [--list-pvs] [-v]

``--port`` sets EPICS_CA_SERVER_PORT (the UDP search port and the first TCP
port tried).  Set EPICS_CAS_INTF_ADDR_LIST=127.0.0.1,
EPICS_CAS_AUTO_BEACON_ADDR_LIST=NO and EPICS_CAS_BEACON_ADDR_LIST=127.0.0.1
in the environment so that nothing leaves the loopback interface
(``record_fixtures.py`` does this).

PVs (names shown with the default prefix ``FIX:``):

=============== ============================================================
FIX:dbl         DOUBLE 3.25, units "mm", precision 3, display -10..10,
                alarm -8..8, warning -6..6, control -20..20
FIX:long        LONG 42, units "counts"
FIX:float       FLOAT 1.5
FIX:str         STRING "hello"
FIX:enum        ENUM ["Off", "On", "Fault"], value "On" (1)
FIX:counter     LONG, starts at 0 and is incremented every 0.1 s (free running)
FIX:burst       LONG 0; writing N makes FIX:ticks count N more times, one
                tick every 0.1 s, the first 0.1 s after the write
FIX:ticks       LONG 0, incremented only while a FIX:burst budget remains
FIX:wf          DOUBLE[200000] waveform, value i * 0.5 for i in 0..199999
FIX:limited     DOUBLE 50.0, control limits 0..100: a write outside them
                fails (caproto answers with an ErrorResponse ECA_PUTFAIL)
FIX:short_arr   SHORT[10] 0..9
FIX:char_arr    CHAR[64] b"fixture text"
FIX:slow_put    DOUBLE 0.0 whose put takes SLOW_S (600 s) to complete: a
                WriteNotify is answered only then (the circuit goes on
                answering other requests meanwhile)
FIX:slow_get    DOUBLE 0.0 whose read takes SLOW_S to complete: caproto
                reads on the circuit's one command loop, so a ReadNotify of
                it stalls every later request of that circuit
FIX:late_put    DOUBLE 0.0 whose put takes LATE_S (1.5 s) to complete: a
                WriteNotify answered after a ring buffer's next file began
FIX:flood       DOUBLE[500], all elements 0.0; writing N to FIX:flood_n makes
                it update N times, 2 ms apart (each update adds 1 to every
                element): 2 MB/s of monitor updates, for slowclient.pcap
FIX:flood_n     LONG 0: see FIX:flood
FIX:common      DOUBLE ``--common-value`` (the name is not prefixed, so two
                instances with distinct prefixes both serve it)
=============== ============================================================
"""
import argparse
import asyncio
import os
import sys
import time

import numpy as np

WF_LENGTH = 200_000
SLOW_S = 600.0          # FIX:slow_put / FIX:slow_get: longer than any recording
LATE_S = 1.5            # FIX:late_put: longer than ring.pcapng's 1 s files
FLOOD_LEN = 500         # FIX:flood: 4 kB of doubles per update


def build_group(prefix):
    from caproto import ChannelType
    from caproto.server import PVGroup, pvproperty

    class FixtureIOC(PVGroup):
        dbl = pvproperty(name='dbl', value=3.25, dtype=ChannelType.DOUBLE,
                         units='mm', precision=3,
                         lower_disp_limit=-10.0, upper_disp_limit=10.0,
                         lower_alarm_limit=-8.0, upper_alarm_limit=8.0,
                         lower_warning_limit=-6.0, upper_warning_limit=6.0,
                         lower_ctrl_limit=-20.0, upper_ctrl_limit=20.0,
                         doc='double with units and limits')
        long = pvproperty(name='long', value=42, dtype=ChannelType.LONG,
                          units='counts')
        float = pvproperty(name='float', value=1.5, dtype=ChannelType.FLOAT)
        str = pvproperty(name='str', value='hello', dtype=ChannelType.STRING)
        enum = pvproperty(name='enum', value='On', dtype=ChannelType.ENUM,
                          enum_strings=['Off', 'On', 'Fault'])
        counter = pvproperty(name='counter', value=0, dtype=ChannelType.LONG)
        burst = pvproperty(name='burst', value=0, dtype=ChannelType.LONG)
        ticks = pvproperty(name='ticks', value=0, dtype=ChannelType.LONG)
        wf = pvproperty(name='wf',
                        value=(np.arange(WF_LENGTH) * 0.5).tolist(),
                        dtype=ChannelType.DOUBLE, max_length=WF_LENGTH)
        limited = pvproperty(name='limited', value=50.0,
                             dtype=ChannelType.DOUBLE,
                             lower_ctrl_limit=0.0, upper_ctrl_limit=100.0)
        short_arr = pvproperty(name='short_arr', value=list(range(10)),
                               dtype=ChannelType.INT, max_length=10)
        char_arr = pvproperty(name='char_arr', value=b'fixture text',
                              dtype=ChannelType.CHAR, max_length=64)

        slow_put = pvproperty(name='slow_put', value=0.0, dtype=ChannelType.DOUBLE)
        slow_get = pvproperty(name='slow_get', value=0.0, dtype=ChannelType.DOUBLE)
        late_put = pvproperty(name='late_put', value=0.0, dtype=ChannelType.DOUBLE)
        flood = pvproperty(name='flood', value=[0.0] * FLOOD_LEN, dtype=ChannelType.DOUBLE,
                           max_length=FLOOD_LEN)
        flood_n = pvproperty(name='flood_n', value=0, dtype=ChannelType.LONG)

        _burst_left = 0
        _next_tick = 0.0

        @counter.scan(period=0.1)
        async def counter(self, instance, async_lib):
            await instance.write(instance.value + 1)

        @burst.putter
        async def burst(self, instance, value):
            self._burst_left = max(0, int(value))
            self._next_tick = time.monotonic() + 0.1
            return value

        @slow_put.putter
        async def slow_put(self, instance, value):
            await asyncio.sleep(SLOW_S)
            return value

        @late_put.putter
        async def late_put(self, instance, value):
            await asyncio.sleep(LATE_S)
            return value

        @slow_get.getter
        async def slow_get(self, instance):
            await asyncio.sleep(SLOW_S)

        _flood_left = 0

        @flood_n.putter
        async def flood_n(self, instance, value):
            self._flood_left = max(0, int(value))
            return value

        @flood.scan(period=0.002)
        async def flood(self, instance, async_lib):
            if self._flood_left > 0:
                self._flood_left -= 1
                await instance.write([instance.value[0] + 1.0] * FLOOD_LEN)

        @ticks.scan(period=0.005)
        async def ticks(self, instance, async_lib):
            if self._burst_left > 0 and time.monotonic() >= self._next_tick:
                self._burst_left -= 1
                self._next_tick += 0.1
                await instance.write(instance.value + 1)

    return FixtureIOC(prefix=prefix)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--prefix', default='FIX:')
    p.add_argument('--port', type=int, default=None,
                   help='EPICS_CA_SERVER_PORT (default: from environment)')
    p.add_argument('--common-name', default='FIX:common')
    p.add_argument('--common-value', type=float, default=1.0)
    p.add_argument('--list-pvs', action='store_true')
    p.add_argument('--no-beacons', action='store_true',
                   help='do not send beacons at all (their timing would make '
                        'the captured message sequence non-deterministic)')
    p.add_argument('-v', '--verbose', action='store_true')
    args = p.parse_args(argv)

    if args.port is not None:
        os.environ['EPICS_CA_SERVER_PORT'] = str(args.port)
    os.environ.setdefault('EPICS_CAS_INTF_ADDR_LIST', '127.0.0.1')
    os.environ.setdefault('EPICS_CAS_AUTO_BEACON_ADDR_LIST', 'NO')
    os.environ.setdefault('EPICS_CAS_BEACON_ADDR_LIST', '127.0.0.1')

    from caproto.asyncio.server import Context, run
    from caproto import ChannelDouble
    import logging

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        stream=sys.stderr)
    if args.no_beacons:
        async def no_beacons(self):
            return
        Context.broadcast_beacon_loop = no_beacons
    ioc = build_group(args.prefix)
    pvdb = dict(ioc.pvdb)
    if args.common_name:
        pvdb[args.common_name] = ChannelDouble(value=args.common_value)
    if args.list_pvs:
        print('PVs:', ' '.join(sorted(pvdb)), file=sys.stderr, flush=True)
    interfaces = os.environ['EPICS_CAS_INTF_ADDR_LIST'].split()
    run(pvdb, interfaces=interfaces, log_pv_names=False)


if __name__ == '__main__':
    main()
