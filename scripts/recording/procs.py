"""Process control: the EPICS environment of the IOCs and clients, processes
in their own process groups (all stopped at the end, whatever happens), the
IOCs, the repeater and the capture tools (tcpdump, dumpcap)."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))    # scripts/
ROOT = os.path.dirname(HERE)
PY = sys.executable
BIN = os.path.dirname(PY)
CA_PORTS_FILTER = 'port 5064 or port 5065 or port 5066'
ANY_FILTER = f'host 127.0.0.1 and ({CA_PORTS_FILTER})'


def log(*args):
    print('[record]', *args, file=sys.stderr, flush=True)


def base_env(**extra):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith('EPICS_'):
            del env[k]
    env.update(EPICS_CA_ADDR_LIST='127.0.0.1',
               EPICS_CA_AUTO_ADDR_LIST='NO',
               EPICS_CAS_INTF_ADDR_LIST='127.0.0.1',
               EPICS_CAS_AUTO_BEACON_ADDR_LIST='NO',
               EPICS_CAS_BEACON_ADDR_LIST='127.0.0.1',
               EPICS_CA_SERVER_PORT='5064',
               EPICS_CA_REPEATER_PORT='5065',
               EPICS_CAS_BEACON_PORT='5065',
               PYTHONUNBUFFERED='1')
    env.update({k: str(v) for k, v in extra.items()})
    return env


def apply_env(env):
    """Make this process's own caproto code see the same environment."""
    for k in list(os.environ):
        if k.startswith('EPICS_'):
            del os.environ[k]
    os.environ.update({k: v for k, v in env.items() if k.startswith('EPICS_')})


# --------------------------------------------------------------- processes
class Procs:
    """Start processes in their own process group; stop them all at exit."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []

    def start(self, name, cmd, env=None, cwd=None):
        out = open(os.path.join(self.tmp, f'{name}.log'), 'wb')
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                             start_new_session=True)
        p.name = name
        p.logpath = out.name
        out.close()
        self.procs.append(p)
        log(f'started {name} (pid {p.pid}): {" ".join(cmd)}')
        return p

    def log_text(self, p):
        with open(p.logpath, 'rb') as f:
            return f.read().decode('utf-8', 'replace')

    def wait_for_text(self, p, text, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_text(p):
                return
            if p.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f'{p.name}: {text!r} not seen in {timeout} s; '
                           f'log:\n{self.log_text(p)[-2000:]}')

    def stop(self, p, sig=signal.SIGINT, timeout=10.0):
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGCONT)     # (hung.pcap stops its IOC)
            for s in (sig, signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(p.pid, s)
                except ProcessLookupError:
                    break
                try:
                    p.wait(timeout=timeout if s != signal.SIGKILL else 5)
                    break
                except subprocess.TimeoutExpired:
                    log(f'{p.name} did not stop on {s!r}')
        else:
            # the leader is gone; make sure no child of the group survives
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in reversed(list(self.procs)):
            self.stop(p, signal.SIGTERM, timeout=5)


def start_ioc(procs, env, port=5064, prefix='FIX:', common=1.0,
              beacons=False, name=None):
    cmd = [PY, os.path.join(HERE, 'fixture_ioc.py'), '--port', str(port),
           '--prefix', prefix, '--common-value', str(common)]
    if not beacons:
        cmd.append('--no-beacons')
    p = procs.start(name or f'ioc{port}', cmd, env=env)
    procs.wait_for_text(p, f'Listening on 127.0.0.1:{port}')
    time.sleep(0.3)
    return p


def start_rsrv(procs, env):
    """The EPICS rsrv IOC of rsrv_ioc.py (pythonSoftIOC), once it serves."""
    p = procs.start('softioc', [PY, os.path.join(HERE, 'rsrv_ioc.py')], env=env)
    procs.wait_for_text(p, 'RSRV-READY')
    time.sleep(0.5)
    return p


def start_repeater(procs, env):
    p = procs.start('repeater', [os.path.join(BIN, 'caproto-repeater')],
                    env=env)
    # wait until the repeater port is bound
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(('127.0.0.1', 5065))
        except OSError:
            time.sleep(0.3)
            return p
        finally:
            s.close()
        time.sleep(0.05)
    raise RuntimeError('caproto-repeater did not bind port 5065')


# ----------------------------------------------------------------- capture
class Capture:
    def __init__(self, procs, tool, path, args, ready_text):
        self.procs, self.tool, self.path = procs, tool, path
        self.args, self.ready_text = args, ready_text
        self.p = None

    def __enter__(self):
        self.start()
        return self

    def start(self):
        self.p = self.procs.start(self.tool, self.args)
        self.procs.wait_for_text(self.p, self.ready_text)
        time.sleep(0.5)
        return self

    def stop(self):
        if self.p is not None:
            time.sleep(1.5)
            self.procs.stop(self.p, signal.SIGINT)
            log(f'{self.tool}: {self.procs.log_text(self.p).strip()!r}')
            self.p = None

    def __exit__(self, *exc):
        self.stop()


def tcpdump(procs, path, iface='lo', filt=CA_PORTS_FILTER, extra=(),
            buffer_kib=65536, immediate=True):
    # --immediate-mode: otherwise libpcap hands packets over in blocks (up
    # to 1 s late) and the packets still in the ring buffer at SIGINT are lost
    # -B: a 64 MiB kernel buffer, or the MB-sized bursts of bigarray are
    # dropped (lossy.pcap wants them dropped)
    args = ['tcpdump', '-i', iface, *(['--immediate-mode'] if immediate else []),
            '-B', str(buffer_kib), '-U', '-Z', 'root', '-w', path, *extra]
    if filt:
        args.append(filt)
    return Capture(procs, 'tcpdump', path, args, 'listening on')


def dumpcap(procs, path, ifaces, extra=()):
    """ifaces: list of (interface, capture filter or None)."""
    args = ['dumpcap', '-q', '-B', '64']
    for iface, filt in ifaces:
        args += ['-i', iface]
        if filt:
            args += ['-f', filt]
    args += ['-w', path, *extra]
    return Capture(procs, 'dumpcap', path, args, 'Capturing on')
