"""Beacons per server: intervals, repeater copies, IOC restarts (beacon id back to 0, a new port)."""
from __future__ import annotations

import random
from typing import Dict, List, Tuple

from caproto import Beacon

from ..output.jsonout import ts_string
from ..times import iso
from . import bounds
from .bounds import add_bounded, fold
from .rows import Reservoir, addr, percentile

ANY_ADDRESS = ("255.255.255.255", "0.0.0.0")
BEACON_COPY_NS = 250 * 10**6  # the same beacon id of a server again within this: a copy
FOLDED = {"beacons": ("beacons", lambda b: b.count)}    # (see traffic.FOLDED)


class BeaconServer:
    __slots__ = ("count", "copies", "first", "last", "first_id", "last_id", "recent",
                 "intervals", "senders", "restarts", "prev_ts")

    def __init__(self, ts, rng):
        self.count = self.copies = 0
        self.first = self.last = ts
        self.first_id = self.last_id = None
        self.recent: List[Tuple[int, int]] = []     # (beacon id, ts) of the last few beacons
        self.intervals = Reservoir(rng)
        self.senders: Dict[str, None] = {}
        self.restarts: List[dict] = []
        self.prev_ts = None


class Beacons:
    """Per beacon server (at most MAX_ROWS), and the server ports seen per
    host (at most MAX_HOST_PORTS each). ``capture``: the CaptureFiles."""

    def __init__(self, capture, rng: random.Random):
        self.capture = capture
        self.rng = rng
        self.servers: Dict[Tuple[str, int], BeaconServer] = {}
        self.hosts: Dict[str, Dict[int, int]] = {}   # ip -> server port -> first ts
        self.folded = {"beacons": [0, 0]}

    def handlers(self) -> dict:
        """After the filter: (record, its PV's row or None, its CircuitStats or None)."""
        return {Beacon: self._beacon}

    def _beacon(self, record, pv, circuit) -> None:
        if pv is not None:
            return
        cmd = record.command
        ts = record.ts
        ip = cmd.address
        if not ip or ip in ANY_ADDRESS:
            ip = record.src
        key = (ip, cmd.server_port)
        b = self.servers.get(key)
        if b is None:
            if len(self.servers) >= bounds.MAX_ROWS:
                self._fold()
            b = self.servers[key] = BeaconServer(ts, self.rng)
            ports = self.hosts.setdefault(ip, {})
            if len(ports) < bounds.MAX_HOST_PORTS:
                ports.setdefault(cmd.server_port, ts)
        bid = cmd.beacon_id
        for rid, rts in b.recent:
            if rid == bid and ts - rts <= BEACON_COPY_NS:
                b.copies += 1                # forwarded by a repeater, or sent twice
                return
        b.recent.append((bid, ts))
        if len(b.recent) > 8:
            del b.recent[0]
        b.count += 1
        add_bounded(b.senders, addr((record.src, record.sport)), 16)
        sender = addr((record.src, record.sport))
        if b.first_id is None:
            b.first_id = bid
        elif bid < b.last_id:
            b.restarts.append({"time": ts_string(ts), "iso": iso(ts), "file": self.capture.name(),
                               "frame": self.capture.local(record.frame), "from_id": b.last_id,
                               "to_id": bid, "sender": sender, "reason": "beacon id went back"})
        if b.prev_ts is not None:
            b.intervals.add((ts - b.prev_ts) / 1e9)
        b.prev_ts = ts
        b.last_id = bid
        b.last = ts

    def _fold(self) -> None:
        """fold for the beacon servers; the hosts' ports follow the rows kept."""
        fold(self.servers, FOLDED["beacons"][1], self.folded["beacons"])
        hosts = self.hosts
        self.hosts = {}
        for ip, port in self.servers:
            first = hosts[ip].get(port)
            if first is not None:
                self.hosts.setdefault(ip, {})[port] = first

    def rows(self) -> List[dict]:
        out = []
        for key, b in sorted(self.servers.items()):
            ports = self.hosts.get(key[0], {})
            started = b.first_id == 0
            earlier = [p for p in ports if p != key[1] and ports[p] < b.first]
            entry = {"server": addr(key), "beacons": b.count, "copies": b.copies,
                     "first": ts_string(b.first), "last": ts_string(b.last),
                     "first_id": b.first_id, "last_id": b.last_id,
                     "senders": list(b.senders),
                     "interval": None, "restarts": list(b.restarts),
                     "started_in_capture": started,
                     "new_port_for_host": bool(started and earlier),
                     "other_ports_of_host": sorted(p for p in ports if p != key[1])}
            if b.intervals.count:
                vals = sorted(b.intervals.values)
                entry["interval"] = {"count": b.intervals.count,
                                     "median": percentile(vals, 50),
                                     "min": vals[0], "max": b.intervals.max}
            out.append(entry)
        return out
