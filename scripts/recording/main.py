"""The command line of scripts/record_fixtures.py."""
from __future__ import annotations

import argparse
import importlib
import json
import os

import ca_decode

from .netns import netns_child
from .procs import ROOT, log
from .readme import write_readme
from .record import record_one
from .scenario import SCENARIOS

# the scenario groups, in the order --list shows and a full run records them
GROUPS = ('sessions', 'files', 'network', 'servers', 'libca')
for _group in GROUPS:
    importlib.import_module(f'.{_group}', __package__)


def main(argv=None):
    p = argparse.ArgumentParser(description='Record CA fixture captures.')
    p.add_argument('--out', default=os.path.join(ROOT, 'fixtures'))
    p.add_argument('--only', nargs='+', metavar='NAME',
                   help='record only these fixtures (file names, with or '
                        'without extension)')
    p.add_argument('--list', action='store_true')
    p.add_argument('--refresh-reference', action='store_true',
                   help='recompute the decoded message lists of the recorded '
                        'fixtures (fixtures.json, README.md) without recording')
    p.add_argument('--_netns-child', dest='netns_child')
    p.add_argument('--_netns-tmp', dest='netns_tmp')
    p.add_argument('--_netns-json', dest='netns_json')
    args = p.parse_args(argv)
    if args.netns_child:
        netns_child(args.netns_child, args.netns_tmp, args.netns_json)
        return 0
    if args.list:
        print('\n'.join(SCENARIOS))
        return 0
    if args.refresh_reference:
        manifest_path = os.path.join(args.out, 'fixtures.json')
        with open(manifest_path) as f:
            manifest = json.load(f)
        for name, meta in manifest.items():
            summary = ca_decode.summary(os.path.join(args.out, name))
            meta['messages'] = [
                dict(frame=f, interface=int(i), transport=t, src=s, dst=d,
                     direction=dr, message=text)
                for f, i, t, s, d, dr, text, c in summary]
        with open(manifest_path, 'w') as f:
            json.dump(manifest, f, indent=1)
        write_readme(args.out, manifest)
        return 0
    if os.geteuid() != 0:
        log('warning: not root; captures will probably fail')
    names = list(SCENARIOS)
    if args.only:
        wanted = set(args.only)
        names = [n for n in names if n in wanted or n.split('.')[0] in wanted]
        unknown = wanted - set(names) - {n.split('.')[0] for n in names}
        if unknown:
            p.error(f'unknown fixtures: {sorted(unknown)}')
    os.makedirs(args.out, exist_ok=True)
    manifest_path = os.path.join(args.out, 'fixtures.json')
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        manifest = {}
    failures = {}
    for name in names:
        meta, err = record_one(name, args.out)
        if meta is None:
            log(f'{name}: NOT RECORDED: {err}')
            failures[name] = err
            continue
        manifest[name] = meta
        log(f"{name}: {meta['packets']} packets, {meta['size_bytes']} bytes, "
            f"{len(meta['messages'])} CA messages")
        with open(manifest_path, 'w') as f:
            json.dump(manifest, f, indent=1)
        write_readme(args.out, manifest)
    if failures:
        log('failures:\n' + '\n'.join(f'  {k}: {v}'
                                      for k, v in failures.items()))
        return 1
    return 0
