#!/usr/bin/env python3
"""Batched caproto searches for ``soak.py --searcher``: SEED SECONDS.

Every 0.1 s, a random batch of 10 to 70 names (random lengths; a few served
by the IOCs, most not) is searched for at both IOCs, packed into datagrams
of up to 1472 bytes as caproto's threading client packs them
(``caproto.Broadcaster`` and ``caproto._utils.batch_requests``, the code it
uses); the replies are read and dropped. A lo with an MTU under 1500
(``soak.py --mtu 1450``) sends such datagrams in IPv4 fragments.
Deterministic choices from SEED; the wire order depends on timing."""
import random
import socket
import sys
import time


def main():
    seed, seconds = int(sys.argv[1]), float(sys.argv[2])
    import caproto as ca
    from caproto._constants import SEARCH_MAX_DATAGRAM_BYTES
    from caproto._utils import batch_requests
    rng = random.Random(seed)
    served = ['FIX:dbl', 'FIX:long', 'FIX:str', 'FIX:enum', 'FIX:counter', 'FIX:wf']
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(('127.0.0.1', 0))
    sock.settimeout(0.1)
    bcast = ca.Broadcaster(our_role=ca.CLIENT)
    bcast.client_address = sock.getsockname()
    end = time.monotonic() + seconds
    cid = 0
    while time.monotonic() < end:
        names = {rng.choice(served) for _ in range(rng.randrange(3))}
        size = rng.randrange(10, 70)
        while len(names) < size:
            names.add(f'SOAK:{cid + len(names)}:' + 'x' * rng.randrange(1, 40))
        requests = []
        for name in sorted(names):
            requests.append(ca.SearchRequest(name, cid, ca.DEFAULT_PROTOCOL_VERSION))
            cid += 1
        version = ca.VersionRequest(0, ca.DEFAULT_PROTOCOL_VERSION)
        for batch in batch_requests(requests, SEARCH_MAX_DATAGRAM_BYTES - len(version)):
            data = bcast.send(version, *batch)
            for port in (5064, 5066):
                sock.sendto(data, ('127.0.0.1', port))
        deadline = time.monotonic() + 0.1
        while time.monotonic() < deadline:
            try:
                sock.recvfrom(65536)
            except socket.timeout:
                break


if __name__ == '__main__':
    main()
