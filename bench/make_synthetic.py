#!/usr/bin/env python3
"""Write a deterministic synthetic Channel Access capture for benchmarks.

    python bench/make_synthetic.py --packets 300000 --out bench/synthetic.pcap

A legacy pcap (Ethernet, microsecond time stamps) of loopback traffic between
CA clients and one CA server on 127.0.0.1:5064. Every CA message is built with
caproto's command classes and serialised with ``bytes(cmd)`` (so server
payloads are padded to 8 bytes as real servers pad them):

- UDP: VersionRequest + SearchRequest(s) to 5064 and VersionResponse +
  SearchResponse replies, searches for missing PVs with no reply, beacons to
  the repeater port 5065;
- TCP: several circuits, each with a SYN / SYN-ACK / ACK handshake and
  consistent sequence and acknowledgement numbers; Version / HostName /
  ClientName; CreateChan + AccessRights / CreateChanResponse; reads
  (ReadNotify) as DBR_TIME_DOUBLE, DBR_TIME_LONG, DBR_CTRL_DOUBLE,
  DBR_DOUBLE, DBR_STRING and arrays of 1, 10, 1000 and 20000 doubles;
  EventAdd subscriptions and monitor updates; WriteNotify puts;
  ClearChannel / re-create cycles; EventCancel, ClearChannel and FIN at the
  end. Several messages often share a segment; a byte stream written at once is
  cut into segments of at most 65483 bytes, as on loopback (so a message may
  span segments, and a 160 kB array spans three). A few segments are sent
  twice (retransmissions). Receivers send pure ACKs now and then.

The same arguments give the same file, byte for byte (fixed seed, integer
time stamps). The number of packets is at least ``--packets`` (the circuits are
closed cleanly after the target is reached). The number of CA messages written
(each retransmitted one counted once) is printed, so that
``pcapca print FILE | wc -l`` can be checked against it.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np

import caproto as ca
from caproto import ChannelType as CT
from caproto import _dbr as dbr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # the repository: tests.builders
from tests import builders  # noqa: E402
from tests.builders import ACK, FIN, LOCALHOST, PSH, SYN  # noqa: E402

MSS = 65483                        # payload of a full loopback segment (MTU 65536)
SERVER_PORT = 5064
REPEATER_PORT = 5065
START_US = 1_795_977_600 * 1_000_000   # 2026-11-29T16:00:00Z
VERSION = 13

# name, native type, element count, weight (share of operations), kind
#   kind: "scalar" (read), "monitor" (subscribed and updated), "put" (written with
#   completion and read back), "array"
PVS = [
    ("SYN:ai1", "double", 1, 18.0, "scalar"),
    ("SYN:ai2", "double", 1, 12.0, "scalar"),
    ("SYN:ai3", "double", 1, 9.0, "scalar"),
    ("SYN:ai4", "double", 1, 6.0, "scalar"),
    ("SYN:ai5", "double", 1, 4.0, "scalar"),
    ("SYN:ai6", "double", 1, 2.5, "scalar"),
    ("SYN:long1", "long", 1, 8.0, "scalar"),
    ("SYN:long2", "long", 1, 4.0, "scalar"),
    ("SYN:str1", "string", 1, 5.0, "scalar"),
    ("SYN:str2", "string", 1, 2.0, "scalar"),
    ("SYN:setpoint", "double", 1, 7.0, "put"),
    ("SYN:gain", "long", 1, 3.0, "put"),
    ("SYN:counter", "long", 1, 7.0, "monitor"),
    ("SYN:sine", "double", 1, 6.0, "monitor"),
    ("SYN:wf10", "double", 10, 3.0, "array"),
    ("SYN:wf1000", "double", 1000, 1.2, "array"),
    ("SYN:wf20000", "double", 20000, 0.12, "array"),
]
MISSING = [f"SYN:missing_{i}" for i in range(4)]   # searched, never answered


class PcapWriter:
    """Legacy pcap, little-endian header, microseconds, LINKTYPE_ETHERNET."""

    def __init__(self, f):
        self.f = f
        self.packets = 0
        self.ip_id = 0
        f.write(builders.pcap_header())

    def _frame(self, proto: int, l4: bytes) -> bytes:
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        return builders.ETHERNET_IPV4 + builders.ipv4(LOCALHOST, LOCALHOST, proto, l4, self.ip_id)

    def _write(self, ts_us: int, frame: bytes) -> None:
        sec, usec = divmod(ts_us, 1_000_000)
        self.f.write(builders.pcap_record(sec, usec, frame))
        self.packets += 1

    def tcp(self, ts_us, sport, dport, seq, ack, flags, payload=b""):
        # SYNs carry MSS 65495 and window scale 7 (as Linux on loopback); the
        # window is then 65535 << 7, so 64 kB segments never fill it.
        opts = b"\x02\x04\xff\xd7\x01\x03\x03\x07" if flags & SYN else b""
        self._write(ts_us, self._frame(6, builders.tcp(LOCALHOST, LOCALHOST, sport, dport, seq,
                                                       ack, flags, payload, opts)))

    def udp(self, ts_us, sport, dport, payload):
        self._write(ts_us, self._frame(17, builders.udp(LOCALHOST, LOCALHOST, sport, dport,
                                                        payload)))


class Sim:
    def __init__(self, writer: PcapWriter, seed: int, retransmit_rate: float):
        self.w = writer
        self.rng = random.Random(seed)
        self.now = START_US
        self.messages = 0
        self.by_class = Counter()
        self.by_pv = Counter()
        self.retransmissions = 0
        self.retransmit_rate = retransmit_rate
        self.next_sid = 1000
        self.beacon_id = 0
        self.beacon_port = 38211
        self.pv = {p[0]: p for p in PVS}

    # -------------------------------------------------------------- helpers
    def tick(self, lo=2, hi=40):
        self.now += self.rng.randint(lo, hi)
        return self.now

    def count(self, cmds, pv=None):
        for cmd, name in cmds:
            self.messages += 1
            self.by_class[type(cmd).__name__] += 1
            if name:
                self.by_pv[name] += 1

    def value(self, name, dtype, count):
        """Deterministic data: (data, data_type, metadata) of a native read."""
        t = self.now / 1e6
        kind = self.pv[name][1]
        if kind == "string":
            return [f"{name} state {self.rng.randint(0, 99)}".encode()], CT.STRING, None
        if count > 1:
            return (np.sin(np.arange(count, dtype=">f8") * 0.01 + t), CT.DOUBLE, None)
        if kind == "long":
            return [self.rng.randint(-100000, 100000)], CT.LONG, None
        return [round(self.rng.uniform(-10, 10), 6)], CT.DOUBLE, None

    def response_for(self, name, ioid, sub=None):
        """(request type, response command) for a read or a monitor update."""
        kind = self.pv[name][1]
        count = self.pv[name][2]
        data, native, _ = self.value(name, None, count)
        r = self.rng.random()
        if native == CT.DOUBLE and count == 1:
            if r < 0.75:
                dtype, md = CT.TIME_DOUBLE, dbr.DBR_TIME_DOUBLE(status=0, severity=0)
            elif r < 0.90:
                dtype, md = CT.CTRL_DOUBLE, dbr.DBR_CTRL_DOUBLE(
                    status=0, severity=0, precision=3, units=b"mm",
                    upper_disp_limit=10.0, lower_disp_limit=-10.0,
                    upper_ctrl_limit=10.0, lower_ctrl_limit=-10.0)
            else:
                dtype, md = CT.DOUBLE, None
        elif native == CT.LONG:
            if r < 0.8:
                dtype, md = CT.TIME_LONG, dbr.DBR_TIME_LONG(status=0, severity=0)
            else:
                dtype, md = CT.LONG, None
        elif native == CT.STRING:
            dtype, md = CT.STRING, None
        else:  # arrays
            if count <= 1000 and r < 0.5:
                dtype, md = CT.TIME_DOUBLE, dbr.DBR_TIME_DOUBLE(status=0, severity=0)
            else:
                dtype, md = CT.DOUBLE, None
        if md is not None and hasattr(md, "stamp"):
            sec, usec = divmod(self.now, 1_000_000)
            md.stamp.secondsSinceEpoch = sec - 631152000
            md.stamp.nanoSeconds = usec * 1000
        if sub is None:
            resp = ca.ReadNotifyResponse(data=data, metadata=md, data_type=dtype,
                                         data_count=count, status=1, ioid=ioid)
        else:
            resp = ca.EventAddResponse(data=data, metadata=md, data_type=dtype,
                                       data_count=count, status=1, subscriptionid=sub)
        return dtype, count, resp

    # -------------------------------------------------------------- UDP
    def search(self, client_udp_port, names, answer=True):
        cmds = [(ca.VersionRequest(priority=0, version=VERSION), None)]
        cids = {}
        for name in names:
            cid = self.rng.randint(1, 1 << 30)
            cids[name] = cid
            cmds.append((ca.SearchRequest(name=name, cid=cid, version=VERSION), name))
        self.w.udp(self.tick(), client_udp_port, SERVER_PORT, b"".join(bytes(c) for c, _ in cmds))
        self.count(cmds)
        if not answer:
            return
        for name in names:
            reply = [(ca.VersionResponse(version=VERSION), None),
                     (ca.SearchResponse(port=SERVER_PORT, ip="255.255.255.255",
                                        cid=cids[name], version=VERSION), name)]
            self.w.udp(self.tick(20, 90), SERVER_PORT, client_udp_port,
                       b"".join(bytes(c) for c, _ in reply))
            self.count(reply)

    def beacon(self):
        cmd = ca.Beacon(version=VERSION, server_port=SERVER_PORT, beacon_id=self.beacon_id,
                        address="127.0.0.1")
        self.beacon_id += 1
        self.w.udp(self.tick(), self.beacon_port, REPEATER_PORT, bytes(cmd))
        self.count([(cmd, None)])


class Circuit:
    def __init__(self, sim: Sim, number: int):
        self.sim = sim
        self.rng = sim.rng
        self.cport = 41000 + 17 * number
        self.udp_port = 52000 + 11 * number
        self.cseq = sim.rng.randint(0, 1 << 32)
        self.sseq = sim.rng.randint(0, 1 << 32)
        self.channels = {}          # name -> (cid, sid)
        self.subs = {}              # subscription id -> name
        self.next_cid = 1
        self.next_ioid = 1
        self.next_sub = 1
        self.names = [p[0] for p in PVS if self.rng.random() < 0.8 or p[4] == "monitor"]
        if "SYN:wf20000" not in self.names and number == 0:
            self.names.append("SYN:wf20000")

    # -------------------------------------------------------------- TCP
    def send(self, from_client: bool, cmds, lo=2, hi=40):
        """Write the commands as one write() on a socket: cut in segments."""
        sim = self.sim
        data = b"".join(bytes(c) for c, _ in cmds)
        sim.count(cmds)
        if from_client:
            sport, dport = self.cport, SERVER_PORT
        else:
            sport, dport = SERVER_PORT, self.cport
        pos = 0
        first = True
        while pos < len(data):
            chunk = data[pos:pos + MSS]
            seq = self.cseq if from_client else self.sseq
            ack = self.sseq if from_client else self.cseq
            ts = sim.tick(lo, hi) if first else sim.tick(3, 12)
            first = False
            sim.w.tcp(ts, sport, dport, seq, ack, PSH | ACK, chunk)
            if self.rng.random() < sim.retransmit_rate:
                sim.retransmissions += 1
                sim.w.tcp(sim.tick(150, 400), sport, dport, seq, ack, PSH | ACK, chunk)
            if from_client:
                self.cseq = (self.cseq + len(chunk)) & 0xFFFFFFFF
            else:
                self.sseq = (self.sseq + len(chunk)) & 0xFFFFFFFF
            pos += len(chunk)
        if len(data) > MSS or self.rng.random() < 0.4:
            self.pure_ack(not from_client)

    def pure_ack(self, from_client: bool):
        sim = self.sim
        if from_client:
            sim.w.tcp(sim.tick(), self.cport, SERVER_PORT, self.cseq, self.sseq, ACK)
        else:
            sim.w.tcp(sim.tick(), SERVER_PORT, self.cport, self.sseq, self.cseq, ACK)

    def open(self):
        sim = self.sim
        sim.search(self.udp_port, self.names)
        w = sim.w
        w.tcp(sim.tick(), self.cport, SERVER_PORT, self.cseq, 0, SYN)
        self.cseq += 1
        w.tcp(sim.tick(), SERVER_PORT, self.cport, self.sseq, self.cseq, SYN | ACK)
        self.sseq += 1
        w.tcp(sim.tick(), self.cport, SERVER_PORT, self.cseq, self.sseq, ACK)
        self.send(True, [(ca.VersionRequest(priority=0, version=VERSION), None),
                         (ca.HostNameRequest(name="synthhost"), None),
                         (ca.ClientNameRequest(name=f"bench{self.cport}"), None)])
        self.send(False, [(ca.VersionResponse(version=VERSION), None)])
        for name in self.names:
            self.create(name)
        for name in self.names:
            if sim.pv[name][4] == "monitor":
                self.subscribe(name)

    def create(self, name):
        cid = self.next_cid
        self.next_cid += 1
        self.send(True, [(ca.CreateChanRequest(name=name, cid=cid, version=VERSION), name)])
        sid = self.sim.next_sid
        self.sim.next_sid += 1
        native = {"double": CT.DOUBLE, "long": CT.LONG, "string": CT.STRING}[self.sim.pv[name][1]]
        self.send(False, [(ca.AccessRightsResponse(cid=cid, access_rights=3), name),
                          (ca.CreateChanResponse(data_type=native, data_count=self.sim.pv[name][2],
                                                 cid=cid, sid=sid), name)])
        self.channels[name] = (cid, sid)

    def subscribe(self, name):
        sub = self.next_sub
        self.next_sub += 1
        cid, sid = self.channels[name]
        dtype, count, resp = self.sim.response_for(name, None, sub=sub)
        self.send(True, [(ca.EventAddRequest(data_type=dtype, data_count=count, sid=sid,
                                             subscriptionid=sub, low=0.0, high=0.0, to=0.0,
                                             mask=5), name)])
        self.send(False, [(resp, name)])
        self.subs[sub] = name

    def reads(self, names):
        reqs, resps = [], []
        for name in names:
            ioid = self.next_ioid
            self.next_ioid += 1
            dtype, count, resp = self.sim.response_for(name, ioid)
            reqs.append((ca.ReadNotifyRequest(data_type=dtype, data_count=count,
                                              sid=self.channels[name][1], ioid=ioid), name))
            resps.append((resp, name))
        self.send(True, reqs)
        self.send(False, resps, 10, 80)

    def put(self, name):
        ioid = self.next_ioid
        self.next_ioid += 1
        # Puts are DBR_DOUBLE, also to the LONG PV (as pyepics does for a float):
        # caproto-shark's validation rejects a 4-byte value padded to 8 and then
        # ignores that port for good, which would leave it nearly nothing to
        # decode here; with double puts it keeps the client streams, as it does
        # on real libca captures (it loses the server side there too).
        if self.sim.pv[name][1] == "long":
            data = [float(self.rng.randint(0, 1000))]
        else:
            data = [round(self.rng.uniform(0, 100), 3)]
        dtype = CT.DOUBLE
        self.send(True, [(ca.WriteNotifyRequest(data=data, data_type=dtype, data_count=1,
                                                sid=self.channels[name][1], ioid=ioid), name)])
        self.send(False, [(ca.WriteNotifyResponse(data_type=dtype, data_count=1, status=1,
                                                  ioid=ioid), name)], 20, 120)

    def updates(self):
        if not self.subs:
            return
        subs = sorted(self.subs)
        n = 1 if self.rng.random() < 0.7 else len(subs)
        cmds = []
        for sub in self.rng.sample(subs, n):
            name = self.subs[sub]
            _, _, resp = self.sim.response_for(name, None, sub=sub)
            cmds.append((resp, name))
        self.send(False, cmds, 5, 60)

    def recycle(self, name):
        """Clear a channel, search for it again and re-create it."""
        if name not in self.channels or any(n == name for n in self.subs.values()):
            return
        cid, sid = self.channels.pop(name)
        self.send(True, [(ca.ClearChannelRequest(sid=sid, cid=cid), name)])
        self.send(False, [(ca.ClearChannelResponse(sid=sid, cid=cid), name)])
        self.sim.search(self.udp_port, [name])
        self.create(name)

    def close(self):
        sim = self.sim
        for sub, name in sorted(self.subs.items()):
            cid, sid = self.channels[name]
            dtype, count, _ = sim.response_for(name, None, sub=sub)
            self.send(True, [(ca.EventCancelRequest(data_type=dtype, sid=sid,
                                                    subscriptionid=sub), name)])
            self.send(False, [(ca.EventAddResponse(data=[], data_type=dtype, data_count=0,
                                                   status=1, subscriptionid=sub), name)])
        self.subs.clear()
        for name, (cid, sid) in sorted(self.channels.items()):
            self.send(True, [(ca.ClearChannelRequest(sid=sid, cid=cid), name)])
            self.send(False, [(ca.ClearChannelResponse(sid=sid, cid=cid), name)])
        self.channels.clear()
        w = sim.w
        w.tcp(sim.tick(), self.cport, SERVER_PORT, self.cseq, self.sseq, FIN | ACK)
        self.cseq += 1
        w.tcp(sim.tick(), SERVER_PORT, self.cport, self.sseq, self.cseq, FIN | ACK)
        self.sseq += 1
        w.tcp(sim.tick(), self.cport, SERVER_PORT, self.cseq, self.sseq, ACK)


def generate(out: str, packets: int, seed: int = 20261129, circuits: int = 6,
             retransmit_rate: float = 0.0002) -> dict:
    with open(out, "wb") as f:
        w = PcapWriter(f)
        sim = Sim(w, seed, retransmit_rate)
        rng = sim.rng
        sim.beacon()
        conns = []
        for i in range(circuits):
            c = Circuit(sim, i)
            c.open()
            conns.append(c)
        steps = 0
        while w.packets < packets:
            steps += 1
            c = rng.choice(conns)
            r = rng.random()
            weights = [sim.pv[n][3] for n in c.names]
            if r < 0.62:
                pool = [n for n in c.names if sim.pv[n][4] != "monitor" and n in c.channels]
                pw = [sim.pv[n][3] for n in pool]
                k = 1 if rng.random() < 0.7 else rng.randint(2, 8)
                c.reads(rng.choices(pool, pw, k=k))
            elif r < 0.72:
                pool = [n for n in c.names if sim.pv[n][4] == "put" and n in c.channels]
                if pool:
                    c.put(rng.choices(pool, [sim.pv[n][3] for n in pool])[0])
            elif r < 0.995:
                c.updates()
            elif r < 0.9975:
                c.recycle(rng.choices(c.names, weights)[0])
            else:
                sim.search(c.udp_port, [rng.choice(MISSING)], answer=False)
            sim.tick(30, 700)           # idle time between operations
            if steps % 2000 == 0:
                sim.beacon()
        for c in conns:
            c.close()
        sim.beacon()
    return {"file": out, "packets": w.packets, "messages": sim.messages,
            "retransmitted_segments": sim.retransmissions,
            "by_class": dict(sim.by_class.most_common()),
            "by_pv": dict(sim.by_pv.most_common()),
            "duration_s": (sim.now - START_US) / 1e6}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=300_000,
                    help="minimum number of packets (default %(default)s)")
    ap.add_argument("--out", default="bench/synthetic.pcap", help="output pcap")
    ap.add_argument("--seed", type=int, default=20261129)
    ap.add_argument("--circuits", type=int, default=6, help="TCP circuits (default 6)")
    ap.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = ap.parse_args(argv)
    info = generate(args.out, args.packets, seed=args.seed, circuits=args.circuits)
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        print(f"{info['file']}: {info['packets']} packets, {info['messages']} CA messages, "
              f"{info['retransmitted_segments']} retransmitted segments, "
              f"{info['duration_s']:.1f} s of capture time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
