"""Private network namespaces: a scenario marked ``netns=True`` is recorded
by this script run again inside ``unshare --net`` (its own lo, nothing else
on it), and the settings of that lo some scenarios make."""
from __future__ import annotations

import json
import os
import socket
import struct
import subprocess

from .procs import HERE, PY
from .scenario import SCENARIOS, Ctx

ENTRY = os.path.join(HERE, 'record_fixtures.py')


IFLA_GSO_MAX_SEGS, IFLA_GSO_MAX_SIZE, IFLA_GRO_MAX_SIZE = 40, 41, 58
IFLA_GSO_IPV4_MAX_SIZE, IFLA_GRO_IPV4_MAX_SIZE = 63, 64   # linux/if_link.h (6.3+)


def set_lo(attrs):
    """Set u32 link attributes of lo ({IFLA_*: value}) by a raw rtnetlink
    RTM_NEWLINK (Debian 12's iproute2 does not know all of them)."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    try:
        s.bind((0, 0))
        body = struct.pack('=BxHiII', socket.AF_UNSPEC, 0,
                           socket.if_nametoindex('lo'), 0, 0) + b''.join(
            struct.pack('=HHI', 8, t, v) for t, v in attrs.items())
        s.send(struct.pack('=IHHII', 16 + len(body), 16, 1 | 4, 1, 0) + body)
        error = struct.unpack_from('=i', s.recv(4096), 16)[0]
    finally:
        s.close()
    if error:
        raise RuntimeError(f'setting {attrs} on lo: netlink error {error}')


def lo_like_ethernet(mtu=1500):
    """Make lo (of a private network namespace) cut TCP as Ethernet does:
    MTU ``mtu`` and one segment per packet (GSO max segs 1)."""
    subprocess.run(['ip', 'link', 'set', 'lo', 'mtu', str(mtu)], check=True)
    set_lo({IFLA_GSO_MAX_SEGS: 1})


def big_tcp_on_lo(size):
    """Let lo's TCP send (and deliver) IPv4 packets of up to ``size`` bytes
    (Linux "BIG TCP", kernel 6.3 or later), as ``ip link set dev lo
    gso_ipv4_max_size SIZE gro_ipv4_max_size SIZE`` would."""
    set_lo({IFLA_GSO_MAX_SIZE: size, IFLA_GRO_MAX_SIZE: size,
            IFLA_GSO_IPV4_MAX_SIZE: size, IFLA_GRO_IPV4_MAX_SIZE: size})


def run_in_netns(name, tmp):
    """Re-run the script for one scenario inside a new network namespace."""
    out_json = os.path.join(tmp, 'meta.json')
    cmd = ['unshare', '--net', '--', 'sh', '-c',
           'ip link set lo up && exec "$@"', 'sh', PY, ENTRY,
           '--_netns-child', name, '--_netns-tmp', tmp, '--_netns-json', out_json]
    env = dict(os.environ, RECORD_IN_NETNS='1')
    r = subprocess.run(cmd, env=env, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f'netns child failed ({r.returncode})')
    with open(out_json) as f:
        meta = json.load(f)
    meta['expected'] = [tuple(x) for x in meta['expected']]
    return meta


def netns_child(name, tmp, out_json):
    ctx = Ctx(name, tmp)
    try:
        meta = SCENARIOS[name].fn(ctx)
    finally:
        ctx.procs.stop_all()
    meta.pop('check', None)
    with open(out_json, 'w') as f:
        json.dump(meta, f)
