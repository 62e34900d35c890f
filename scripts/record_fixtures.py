#!/usr/bin/env python3
"""Record real, small Channel Access packet captures for pcapca's tests.

    /tmp/venv/bin/python scripts/record_fixtures.py [--out fixtures] [--only NAME ...]
                                                    [--list] [--keep-going]

Run as root (packet capture).  Everything happens on 127.0.0.1 (the ``lo``
interface, or for the fixtures in ``IN_NETNS`` the ``lo`` of a private
network namespace made with ``unshare --net``, set up as each scenario
says); nothing is sent to any other address.

Needs
-----
* tcpdump, dumpcap, tshark, capinfos (Debian: ``apt-get install tcpdump
  tshark``; dumpcap comes with wireshark-common)
* python with caproto (1.3), numpy (the IOC, the caproto clients and the
  check decoder ``ca_decode.py``)
* pyepics (``pip install pyepics``; its wheel bundles libca) for ``libca``
* pythonSoftIOC (``pip install softioc``: a real EPICS rsrv IOC) for ``rsrv``
* ``unshare`` and ``ip`` (util-linux, iproute2) for the fixtures recorded in
  a private network namespace: ``noise``, ``mtu1500``, ``lossy`` and
  ``bigtcp`` (which also needs Linux 6.3 or later, for BIG TCP over IPv4)

Fixtures that need a missing tool are skipped with a message.

How the fixtures are made
-------------------------
For each fixture the script starts ``scripts/fixture_ioc.py`` (a caproto IOC;
see its docstring for the PVs) with EPICS_CAS_INTF_ADDR_LIST=127.0.0.1,
EPICS_CAS_AUTO_BEACON_ADDR_LIST=NO, EPICS_CAS_BEACON_ADDR_LIST=127.0.0.1 and,
except for ``twoservers``, with beacons switched off (``--no-beacons``: their
timing would make the message sequence differ from run to run).  Then it starts
the capture tool and waits until it reports that it is capturing (plus 0.5 s),
runs the clients, waits 1.5 s, stops the capture with SIGINT (so the file is
flushed and closed), and stops the IOC and all helpers (process groups,
try/finally).

Most clients are ``scripts/ca_client.py``: caproto's own sans-I/O protocol code
(ca.Broadcaster / ca.VirtualCircuit / ca.ClientChannel, the code inside
caproto's sync and threading clients) driven one step at a time over plain
sockets; every request is sent only once the answer to the previous one has
arrived, with a 50 ms pause after each step.  ``session`` uses the caproto
command line tools (caproto-get / caproto-put / caproto-monitor), ``libca``
uses pyepics (libca), ``rsrv`` uses libca against a real EPICS rsrv IOC.

After recording, each file is decoded independently with tshark + caproto
(``scripts/ca_decode.py``) and the CA message sequence is compared with what
the client sent and received (or with the fixed sequence a CLI/libca scenario
must produce).  If it differs (e.g. one more monitor update slipped in before
a cancel) the fixture is recorded again (at most 3 attempts).  The decoded
sequences and the metadata are written to ``fixtures/fixtures.json`` and
``fixtures/README.md``.

The code is the package ``scripts/recording/`` (its ``__init__`` lists the
modules): a new fixture is one ``@scenario`` function in one of its scenario
groups (sessions, files, network, servers, libca).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # recording, ca_client, ca_decode

from recording.main import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
