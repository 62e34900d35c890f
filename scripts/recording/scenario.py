"""The scenario registry, the context a scenario runs in, and what several
scenarios of different groups share.

A scenario is one function in one group module, registered with
``@scenario(FILE NAME, needs=..., netns=...)``: it gets a ``Ctx`` and returns
a dict with: command (how captured), client, operations (list of strings),
expected (list of message descriptions as produced by ca_decode.describe, or
None) and how to compare (see verify.compare).
"""
from __future__ import annotations

import os
import subprocess
from typing import Callable, NamedTuple

import caproto as ca

import ca_client
import ca_decode

from .procs import PY, Procs, apply_env, base_env, start_ioc


class Scenario(NamedTuple):
    fn: Callable
    needs: tuple        # programs, and python modules as 'module:NAME'
    netns: bool         # recorded in a private network namespace (netns.py)


SCENARIOS = {}          # file name -> Scenario, in the order the groups are imported


def scenario(name, *, needs=(), netns=False):
    def deco(fn):
        SCENARIOS[name] = Scenario(fn, needs, netns)
        return fn
    return deco


def transcript_descr(client, start=0):
    return [(d, t, ca_decode.describe(c))
            for d, t, c in client.transcript[start:]
            if not isinstance(c, ca.Beacon)]


def channels_of(client, names):
    """Search ``names``, connect to the server of the first, create a
    channel for each: (circuit, [channel, ...])."""
    found = client.search(names)
    circ = client.connect(found[names[0]])
    return circ, [client.create(circ, n) for n in names]


def ioc_and_client(ctx):
    """A fresh fixture IOC, a caproto client and an empty list of operations."""
    env = ctx.env()
    ctx.start_ioc(env)
    return env, ca_client.Client(), []


def have_module(name):
    r = subprocess.run([PY, '-c', f'import {name}'], capture_output=True)
    return r.returncode == 0


# --------------------------------------------------------------- context
class Ctx:
    def __init__(self, name, tmp):
        self.name = name
        self.tmp = tmp
        self.procs = Procs(tmp)
        self.tmpfile = os.path.join(tmp, name)
        self._env = None

    def env(self, **extra):
        self._env = base_env(**extra)
        apply_env(self._env)
        return self._env

    def start_ioc(self, env, **kw):
        return start_ioc(self.procs, env, **kw)
