#!/usr/bin/env python3
"""Random libca (pyepics) traffic for ``soak.py``: SEED SECONDS.

Four threads read random PVs as random DBR types (0..34), put (with and
without completion), subscribe with random masks and cancel, against the
caproto IOC on 5064 and the rsrv IOC on 5066 (both serve FIX:*, so libca
takes whichever answers first). Deterministic choices from SEED; the wire
order depends on timing."""
import random
import sys
import threading
import time


def main():
    seed, seconds = int(sys.argv[1]), float(sys.argv[2])
    from epics import ca
    ca.initialize_libca()
    names = ['FIX:dbl', 'FIX:long', 'FIX:str', 'FIX:enum', 'FIX:short_arr',
             'FIX:ticks', 'FIX:burst', 'FIX:counter', 'FIX:float',
             'FIX:char_arr', 'FIX:limited', 'FIX:wf', 'NOPE:missing']
    chids = {n: ca.create_channel(n, connect=False, auto_cb=False) for n in names}
    for n in names:
        ca.connect_channel(chids[n], timeout=2.0)
    writable = ('FIX:dbl', 'FIX:long', 'FIX:float', 'FIX:limited', 'FIX:burst')
    subs = []

    def worker(k):
        rng = random.Random(seed * 100 + k)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            name = rng.choice(names[:-1])
            chid = chids[name]
            if not ca.isConnected(chid):
                continue
            r = rng.random()
            try:
                if r < 0.5:
                    count = rng.choice([None, 1, 5]) if name in ('FIX:wf', 'FIX:short_arr') else None
                    ca.get(chid, ftype=rng.randrange(35) if rng.random() < 0.7 else None,
                           count=count, timeout=2.0)
                elif r < 0.7 and name in writable:
                    ca.put(chid, rng.choice([1, 2.5, 7, 150]), wait=rng.random() < 0.5,
                           timeout=2.0)
                elif r < 0.8 and name != 'FIX:wf':
                    subs.append(ca.create_subscription(
                        chid, mask=rng.choice([1, 5, 7]), callback=lambda **kw: None,
                        use_time=rng.random() < 0.5))
                elif r < 0.85 and subs:
                    ca.clear_subscription(subs.pop()[2])
                ca.poll(0.001)
            except Exception:      # a put outside the limits, a timeout: part of the traffic
                pass
            time.sleep(rng.random() * 0.01)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ca.poll(0.2)
    ca.finalize_libca()


if __name__ == '__main__':
    main()
