"""Scenarios with EPICS's own C library: pyepics (libca) clients, a CA name
server, the rsrv IOC of pythonSoftIOC. The clients are scripts/libca_*.py."""
from __future__ import annotations

import json
import os
import shlex
import subprocess

from .procs import HERE, PY, start_repeater, start_rsrv, tcpdump
from .scenario import scenario


@scenario('libca.pcap', needs=('module:epics',))
def sc_libca(ctx):
    env = ctx.env()
    start_repeater(ctx.procs, env)
    ctx.start_ioc(env)
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        r = subprocess.run([PY, os.path.join(HERE, 'libca_session.py')],
                           env=env, capture_output=True, text=True,
                           timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f'libca_session failed: {r.stdout}\n{r.stderr}')
    info = json.loads(r.stdout.strip().splitlines()[-1])
    return dict(command=shlex.join(cap.args), client=info['client'],
                operations=info['operations'], expected=None)


@scenario('hung.pcap', needs=('module:epics',))
def sc_hung(ctx):
    """A libca client whose IOC hangs (SIGSTOP): libca's EchoRequest is
    never answered (scripts/libca_hung.py)."""
    env = ctx.env(EPICS_CA_CONN_TMO='2')
    ioc = ctx.start_ioc(env)
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        r = subprocess.run([PY, os.path.join(HERE, 'libca_hung.py'), str(ioc.pid)],
                           env=env, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f'libca_hung failed: {r.stdout}\n{r.stderr}')
    info = json.loads(r.stdout.strip().splitlines()[-1])
    return dict(command=shlex.join(cap.args), client=info['client'],
                operations=info['operations'], expected=None)


@scenario('nameserver.pcap', needs=('module:softioc', 'module:epics'))
def sc_nameserver(ctx):
    """libca finds its channels through a CA name server: searches over TCP
    (scripts/libca_nameserver.py) to the rsrv IOC, which answers them there."""
    env = ctx.env(EPICS_CAS_BEACON_PORT='5099', EPICS_CA_ADDR_LIST='',
                  EPICS_CA_NAME_SERVERS='127.0.0.1:5064')
    start_rsrv(ctx.procs, env)
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        r = subprocess.run([PY, os.path.join(HERE, 'libca_nameserver.py')], env=env,
                           capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f'libca_nameserver failed: {r.stdout}\n{r.stderr}')
    info = json.loads(r.stdout.strip().splitlines()[-1])
    return dict(command=shlex.join(cap.args), client=info['client'] +
                ' against pythonSoftIOC (EPICS rsrv)',
                operations=['EPICS_CA_NAME_SERVERS=127.0.0.1:5064, EPICS_CA_ADDR_LIST '
                            'empty, EPICS_CA_AUTO_ADDR_LIST=NO: no UDP search'] +
                info['operations'], expected=None)


@scenario('rsrv.pcap', needs=('module:softioc', 'module:epics'))
def sc_rsrv(ctx):
    env = ctx.env(EPICS_CAS_BEACON_PORT='5099')
    start_repeater(ctx.procs, env)
    start_rsrv(ctx.procs, env)
    cap = tcpdump(ctx.procs, ctx.tmpfile)
    with cap:
        r = subprocess.run([PY, os.path.join(HERE, 'libca_session.py'),
                            '--rsrv'], env=env, capture_output=True,
                           text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f'libca_session failed: {r.stdout}\n{r.stderr}')
    info = json.loads(r.stdout.strip().splitlines()[-1])
    return dict(command=shlex.join(cap.args), client=info['client'] +
                ' against pythonSoftIOC (EPICS rsrv)',
                operations=info['operations'], expected=None)
