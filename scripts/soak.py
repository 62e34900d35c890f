#!/usr/bin/env python3
"""Compare pcapca with the independent decoder on random real CA sessions.

    python scripts/soak.py [--runs N] [--seconds S] [--seed K] [--keep DIR] [--mtu M]
                           [--ring T] [--searcher]

Each run starts the caproto fixture IOC (127.0.0.1:5064) and a real EPICS
rsrv IOC (pythonSoftIOC, 5066), captures lo with tcpdump, runs
``soak_client.py`` (libca via pyepics, random reads of every DBR type, puts,
subscriptions, cancels from four threads) for S seconds, and compares the
CA message list pcapca decodes (frame, direction, class) with that of
``ca_decode.py`` (tshark + its own reassembly + caproto). Prints SAME or the
difference per run; exit status 1 if any run differs or pcapca reported a
problem. ``--mtu 1500`` runs it all in a private network namespace whose lo
cuts TCP as Ethernet does (MTU M, one segment per packet), so messages span
many segments. ``--ring 1`` captures with ``dumpcap -b duration:1`` (a new
file every second, as a ring buffer) and compares pcapca reading the files
as one set with ``ca_decode.py`` reading them joined (``cat``).
``--searcher`` also runs ``soak_searcher.py`` (a caproto client searching
for batches of names, in datagrams of up to 1472 bytes: with ``--mtu 1450``,
IPv4 fragments; the capture then also takes fragments). Needs what ``record_fixtures.py`` needs for rsrv.pcap (root,
tcpdump, tshark, pyepics, softioc; ``unshare`` and ``ip`` for ``--mtu``).
Only 127.0.0.1 is used.
"""
from __future__ import annotations

import argparse
import difflib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import ca_decode  # noqa: E402
from recording.files import join_ring  # noqa: E402
from recording.netns import lo_like_ethernet  # noqa: E402
from recording.procs import (PY, Procs, base_env, dumpcap, start_ioc, start_rsrv,  # noqa: E402
                             tcpdump)


def reference(path):
    """ca_decode's messages; it calls caproto's reply to a cancel (command
    1, no payload) an EventAddResponse, as caproto parses it."""
    out = []
    for frame, _, _, _, _, direction, text, _ in ca_decode.summary(path):
        if text.startswith(('UNDECODABLE', 'INCOMPLETE', 'GAP')):
            continue
        out.append((frame, direction, text.split('(', 1)[0]))
    return out


def decoded(paths, problems):
    """pcapca's messages of a capture, or of a set read as one."""
    from pcapca.capture.sets import Files
    from pcapca.items import Problem
    from pcapca.pipeline import decode_files
    from pcapca.capture.progress import open_with_progress
    from pcapca.ca.records import Decoded
    items = decode_files(Files(paths), opener=lambda p: open_with_progress(p, enabled=False))
    out = []
    for item in items:
        if item.__class__ is Decoded:
            out += [(r.frame, 'C>S' if r.role == 'client' else 'S>C',
                     'EventAddResponse' if r.name == 'EventCancelResponse' else r.name)
                    for r in item.records]
        elif item.__class__ is Problem:
            problems.append(item)
    return out


def one_run(seed, seconds, path, ring=None, searcher=False):
    """Capture a session into ``path``; with ``ring`` (seconds) into a ring
    of files next to it, joined into ``path``: returns the files."""
    tmp = tempfile.mkdtemp(prefix='soak-')
    procs = Procs(tmp)
    try:
        env = base_env(EPICS_CA_ADDR_LIST='127.0.0.1 127.0.0.1:5066')
        start_ioc(procs, env)
        start_rsrv(procs, dict(env, EPICS_CA_SERVER_PORT='5066',
                               EPICS_CAS_BEACON_PORT='5099'))
        filt = 'port 5064 or port 5066'
        if searcher:                    # (a fragment after the first has no ports)
            filt += ' or (ip[6:2] & 0x3fff != 0)'
        if ring:
            cap = dumpcap(procs, path, [('lo', filt)], extra=('-b', f'duration:{ring}'))
        else:
            cap = tcpdump(procs, path, filt=filt)
        with cap:
            extra = []
            if searcher:
                extra.append(subprocess.Popen(
                    [PY, os.path.join(HERE, 'soak_searcher.py'), str(seed), str(seconds)],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            try:
                subprocess.run([PY, os.path.join(HERE, 'soak_client.py'), str(seed),
                                str(seconds)], env=env, capture_output=True,
                               timeout=seconds + 60, check=True)
                for proc in extra:
                    if proc.wait(timeout=seconds + 60) != 0:
                        raise RuntimeError('soak_searcher.py failed')
            finally:
                for proc in extra:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return join_ring(path) if ring else [path]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--runs', type=int, default=5)
    p.add_argument('--seconds', type=float, default=8.0)
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--keep', metavar='DIR', help='keep the captures here')
    p.add_argument('--mtu', type=int, help='lo MTU, in a private network namespace')
    p.add_argument('--ring', type=int, metavar='T',
                   help='capture a ring buffer (dumpcap -b duration:T) and read its files as one')
    p.add_argument('--searcher', action='store_true',
                   help='also run a caproto client searching for batches of names')
    args = p.parse_args(argv)
    if args.mtu and not os.environ.get('SOAK_IN_NETNS'):
        cmd = ['unshare', '--net', '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh',
               PY, os.path.abspath(__file__), *(argv if argv is not None else sys.argv[1:])]
        return subprocess.run(cmd, env=dict(os.environ, SOAK_IN_NETNS='1')).returncode
    if args.mtu:
        lo_like_ethernet(args.mtu)
    out = args.keep or tempfile.mkdtemp(prefix='soak-captures-')
    os.makedirs(out, exist_ok=True)
    bad = 0
    for seed in range(args.seed, args.seed + args.runs):
        path = os.path.join(out, f'soak-{seed}.pcap' + ('ng' if args.ring else ''))
        files = one_run(seed, args.seconds, path, args.ring, args.searcher)
        problems = []
        want, got = reference(path), decoded(files, problems)
        same = want == got and not problems
        bad += not same
        print(f'seed {seed}: {len(got)} messages' + (f' in {len(files)} files'
                                                    if args.ring else '')
              + ': ' + ('SAME' if same else 'DIFFERENT'), flush=True)
        for line in list(difflib.unified_diff([str(x) for x in want], [str(x) for x in got],
                                              'ca_decode.py', 'pcapca', lineterm='', n=1))[:40]:
            print('  ' + line)
        for problem in problems[:10]:
            print(f'  pcapca: {problem}')
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
