"""`pcapca stats` on the recorded fixtures.

Expected figures come from fixtures/README.md and fixtures/CORPUS.md (what
each recording contains), and are recomputed independently of pcapca.stats:
search/first/last times and latencies from the `pcapca print --json` lines
(pairing requests and responses here, by ioid / cid, from the message
fields and the time stamps), circuit bytes and close times from the raw
packets with dpkt.
"""
import json
import math
import os
import struct
import subprocess
import sys
from collections import defaultdict
from types import SimpleNamespace

import caproto
import dpkt
import pytest
from hypothesis import given, settings, strategies as st

from pcapca.stats.bounds import RESERVOIR_SIZE
from pcapca.stats.collector import StatsCollector, collect
from pcapca.stats.rows import Reservoir, percentile
from pcapca.stats.timeline import Timeline
from pcapca.stats.render import render_text, table

from tests.builders import split_pcap
from tests.conftest import ROOT, fixture, run_cli

MISSING = ["FIX:missing_0", "FIX:missing_1", "FIX:missing_2"]
NOPE = [f"NOPE:missing_{i}" for i in range(5)]


# ------------------------------------------------------------------ helpers
def print_json(path):
    res = run_cli("print", "--json", "--quiet", path, check=0)
    return [json.loads(line) for line in res.stdout.decode().splitlines()]


def ns(text):
    s, frac = text.split(".")
    return int(s) * 10**9 + int(frac.ljust(9, "0"))


def expected_latencies(msgs):
    """{(kind, pv): [seconds]} paired here: ReadNotify/WriteNotify by
    (circuit, ioid), search by (client, cid), create by (circuit, cid)."""
    pending = {}
    out = defaultdict(list)
    for m in msgs:
        name, f = m["command"], m["fields"]
        client = (m["src"], m["sport"]) if m["role"] == "client" else (m["dst"], m["dport"])
        server = (m["dst"], m["dport"]) if m["role"] == "client" else (m["src"], m["sport"])
        circ = (m["proto"], client, server)
        if name in ("ReadNotifyRequest", "WriteNotifyRequest"):
            pending[(circ, "io", f["ioid"])] = (m["pv"], ns(m["timestamp"]))
        elif name in ("ReadNotifyResponse", "WriteNotifyResponse"):
            req = pending.pop((circ, "io", f["ioid"]), None)
            if req:
                kind = "read" if name.startswith("Read") else "write"
                out[(kind, req[0])].append((ns(m["timestamp"]) - req[1]) / 1e9)
        elif name == "SearchRequest":
            pending[(client, "search", f["cid"])] = (f["name"], ns(m["timestamp"]))
        elif name == "SearchResponse":
            req = pending.get((client, "search", f["cid"]))
            if req:
                out[("search", req[0])].append((ns(m["timestamp"]) - req[1]) / 1e9)
        elif name == "CreateChanRequest":
            pending[(circ, "create", f["cid"])] = (f["name"], ns(m["timestamp"]))
        elif name == "CreateChanResponse":
            req = pending.pop((circ, "create", f["cid"]), None)
            if req:
                out[("create", req[0])].append((ns(m["timestamp"]) - req[1]) / 1e9)
    return out


def nearest_rank(values, p):
    v = sorted(values)
    return v[max(1, math.ceil(p / 100 * len(v))) - 1]


def by(items, key, value):
    found = [i for i in items if i[key] == value]
    assert len(found) == 1, (value, items)
    return found[0]


@pytest.fixture(scope="module")
def twoservers():
    return collect([str(fixture("twoservers.pcap"))])


@pytest.fixture(scope="module")
def corpus():
    return collect([str(fixture("corpus_libca.pcap"))])


# ------------------------------------------------------------------ missing PVs
def test_unanswered_searches_twoservers(twoservers):
    msgs = print_json(fixture("twoservers.pcap"))
    un = twoservers["unanswered_searches"]
    assert [e["pv"] for e in un] == MISSING
    for e in un:
        mine = [m for m in msgs if m["command"] == "SearchRequest" and m["fields"]["name"] == e["pv"]]
        assert e["searches"] == len(mine) == 6           # 3 rounds x 2 servers
        assert e["clients"] == ["127.0.0.1:47702"] == sorted({f"{m['src']}:{m['sport']}" for m in mine})
        assert e["first"] == mine[0]["timestamp"] == "1795983084.789650000"
        assert e["last"] == mine[-1]["timestamp"] == "1795983086.544320000"
        assert e["first_iso"] == "2026-11-29T20:11:24.789650000Z"
        span = (ns(e["last"]) - ns(e["first"])) / 1e9
        assert e["rate_per_s"] == pytest.approx(5 / span)
        assert e["not_found"] == 0
    # FIX:common was answered: not listed, although searched 3 times
    assert by(twoservers["pvs"], "pv", "FIX:common")["searches"] == 3


def test_unanswered_searches_corpus_exactly_the_five_nope_names(corpus):
    msgs = print_json(fixture("corpus_libca.pcap"))
    un = corpus["unanswered_searches"]
    assert [e["pv"] for e in un] == NOPE
    for e in un:
        mine = [m for m in msgs if m["command"] == "SearchRequest" and m["fields"]["name"] == e["pv"]]
        assert e["searches"] == len(mine) == 16
        assert e["first"] == mine[0]["timestamp"] and e["last"] == mine[-1]["timestamp"]
        assert e["clients"] == ["127.0.0.1:40189"]
    # every other searched name was answered by exactly one server: no conflicts
    assert corpus["name_conflicts"] == []


def test_not_found_response_is_not_an_answer():
    """No fixture has a NotFoundResponse: fake records through the collector."""
    col = StatsCollector()

    def rec(cls, role, pv, ts, **cmd):
        command = type(cls, (), {"__len__": lambda self: 16, **cmd})()
        # (the dispatch is by caproto class: ``cls``)
        return SimpleNamespace(command=command, name=cls, cls=getattr(caproto, cls), msg=None,
                               proto="udp", role=role,
                               pv=pv, ts=ts,
                               frame=1, src="10.0.0.1" if role == "client" else "10.0.0.2",
                               sport=40000 if role == "client" else 5064,
                               dst="10.0.0.2" if role == "client" else "10.0.0.1",
                               dport=5064 if role == "client" else 40000,
                               circuit=None, latency=None if role == "client" else 0.001)
    col.add(rec("SearchRequest", "client", "X:gone", 10**9, name="X:gone", cid=1))
    col.add(rec("NotFoundResponse", "server", "X:gone", 2 * 10**9, cid=1))
    col.add(rec("SearchRequest", "client", "X:here", 3 * 10**9, name="X:here", cid=2))
    col.add(rec("SearchResponse", "server", "X:here", 4 * 10**9, cid=2, ip="255.255.255.255",
                port=5064))
    report = col.report()
    (e,) = report["unanswered_searches"]
    assert (e["pv"], e["searches"], e["not_found"], e["not_found_by"]) == \
        ("X:gone", 1, 1, ["10.0.0.2:5064"])
    assert e["rate_per_s"] is None


def test_searched_and_created_names_end_at_their_nul():
    """Issue 21 point 16: stalenames.pcap searches and creates "FIX:dbl\\0:GUN"
    (stale bytes after the NUL), host "fixture-host\\0old", user "fixture\\0old":
    the names a server reads are FIX:dbl, fixture-host and fixture."""
    report = collect([str(fixture("stalenames.pcap"))])
    assert [(e["pv"], e["searches"], e["clients"]) for e in report["unanswered_searches"]] == [
        ("FIX:dbl", 1, ["127.0.0.1:39361"])]
    assert [(p["pv"], p["messages"], p["searches"], p["creates"], p["create_failures"])
            for p in report["pvs"]] == [("FIX:dbl", 3, 1, 1, 1)]
    assert [(e["frame"], e["pv"], e["command"]) for e in report["errors"]] == [
        (10, "FIX:dbl", "CreateChFailResponse")]
    assert [(c["hosts"], c["users"]) for c in report["clients"]] == [(["fixture-host"], ["fixture"])]
    assert [(c["host"], c["user"], c["channels"]) for c in report["circuits"]] == [
        ("fixture-host", "fixture", 1)]


# ------------------------------------------------------------------ name conflicts, restarts
def test_name_conflict_two_servers_serving_fix_common(twoservers):
    (c,) = twoservers["name_conflicts"]
    assert c["pv"] == "FIX:common"
    servers = [(s["server"], s["replies"]) for s in c["servers"]]
    # the restarted IOC on 5066 (same ip:port) is one server answering twice
    assert servers == [("127.0.0.1:5064", 1), ("127.0.0.1:5066", 2)]
    assert c["servers"][0]["first"] == "1795983084.688120000"
    assert c["servers"][1]["last"] == "1795983090.224383000"


def test_beacons_restart_and_repeater_copies(twoservers):
    msgs = print_json(fixture("twoservers.pcap"))
    beacons = [m for m in msgs if m["command"] == "Beacon"]
    a = by(twoservers["beacons"], "server", "127.0.0.1:5064")
    b = by(twoservers["beacons"], "server", "127.0.0.1:5066")
    # every beacon is seen twice (from the IOC, then forwarded from port 5065),
    # except the two sent before the client registered with the repeater
    from_repeater = [m for m in beacons if m["sport"] == 5065]
    assert a["beacons"] + b["beacons"] == len(beacons) - len(from_repeater) == 21
    assert a["copies"] + b["copies"] == len(from_repeater) == 19
    assert (a["beacons"], a["first_id"], a["last_id"], a["restarts"]) == (9, 5, 13, [])
    assert (b["beacons"], b["first_id"], b["last_id"]) == (12, 4, 7)
    (r,) = b["restarts"]
    assert (r["frame"], r["from_id"], r["to_id"], r["time"], r["sender"]) == \
        (46, 7, 0, "1795983088.382061000", "127.0.0.1:59071")
    assert b["senders"] == ["127.0.0.1:57012", "127.0.0.1:59071"]    # the old and the new IOC
    # intervals of IOC A's beacons, every 1 s; measured on the originals
    ts_a = [ns(m["timestamp"]) for m in beacons
            if m["fields"]["server_port"] == 5064 and m["sport"] != 5065]
    gaps = sorted((y - x) / 1e9 for x, y in zip(ts_a, ts_a[1:]))
    assert a["interval"]["count"] == len(gaps) == 8
    assert a["interval"]["min"] == pytest.approx(gaps[0], abs=1e-9)
    assert a["interval"]["max"] == pytest.approx(gaps[-1], abs=1e-9)
    assert a["interval"]["median"] == pytest.approx(nearest_rank(gaps, 50), abs=1e-9)


# ------------------------------------------------------------------ errors
def test_failing_put_reuse():
    report = collect([str(fixture("reuse.pcap"))])
    errors = report["errors"]
    assert report["errors_total"] == 2
    assert [(e["frame"], e["command"], e["pv"], e["status"], e["request"]) for e in errors] == [
        (41, "ErrorResponse", "FIX:limited", "ECA_PUTFAIL", "WriteNotifyRequest"),
        (44, "ErrorResponse", "FIX:limited", "ECA_PUTFAIL", "WriteRequest")]
    for e in errors:
        assert "Cannot write data 150.0" in e["text"]
        assert e["server"] == "127.0.0.1:5064"
    # the WriteNotify's error answers the pending put: it has a latency
    assert errors[0]["latency"] == pytest.approx(0.003649, abs=1e-9)
    assert by(report["pvs"], "pv", "FIX:limited")["errors"] == 2


def test_failing_put_corpus(corpus):
    (e,) = corpus["errors"]
    assert (e["frame"], e["pv"], e["status"]) == (758, "CORPUS:limited", "ECA_PUTFAIL")
    assert e["text"] == "Python exception: ValueError value too large for CORPUS:limited"


# ------------------------------------------------------------------ latencies
@pytest.mark.parametrize("name", ["corpus_libca.pcap", "twoservers.pcap", "basic.pcap",
                                  "rsrv.pcap"])
def test_latency_percentiles_match_timestamps(name):
    report = collect([str(fixture(name))])
    expected = expected_latencies(print_json(fixture(name)))
    assert expected
    seen = 0
    for (kind, pv), values in expected.items():
        got = by(report["pvs"], "pv", pv)["latency"][kind]
        assert got["count"] == len(values), (kind, pv)
        for p in (50, 95):
            assert got[f"p{p}"] == pytest.approx(nearest_rank(values, p), abs=1e-9), (kind, pv, p)
        assert got["max"] == pytest.approx(max(values), abs=1e-9)
        seen += 1
    kinds = {k for k, _ in expected}
    assert {"read", "search", "create"} <= kinds
    for p in report["pvs"]:                      # nothing measured that was not expected
        for kind in p["latency"]:
            assert (kind, p["pv"]) in expected


def test_latency_by_server_corpus(corpus):
    """The caproto IOC (5064) is slower than rsrv (5066): the question
    'which IOC is slow' answered from the read latencies per server."""
    expected = defaultdict(list)
    msgs = print_json(fixture("corpus_libca.pcap"))
    pending = {}
    for m in msgs:
        if m["command"] == "ReadNotifyRequest":
            pending[(m["dport"], m["fields"]["ioid"])] = ns(m["timestamp"])
        elif m["command"] == "ReadNotifyResponse":
            expected[m["sport"]].append((ns(m["timestamp"]) - pending.pop((m["sport"], m["fields"]["ioid"]))) / 1e9)
    for port in (5064, 5066):
        got = by(corpus["servers"], "server", f"127.0.0.1:{port}")["latency"]["read"]
        assert got["count"] == len(expected[port])
        assert got["p50"] == pytest.approx(nearest_rank(expected[port], 50), abs=1e-9)
        assert got["max"] == pytest.approx(max(expected[port]), abs=1e-9)
    assert sum(len(v) for v in expected.values()) == 230


def test_per_pv_counts_corpus(corpus):
    msgs = print_json(fixture("corpus_libca.pcap"))
    count = defaultdict(lambda: defaultdict(int))
    for m in msgs:
        if m["pv"]:
            count[m["pv"]][m["command"]] += 1
            count[m["pv"]]["*"] += 1
    for p in corpus["pvs"]:
        c = count[p["pv"]]
        assert p["messages"] == c["*"]
        assert p["reads"] == c["ReadNotifyRequest"] + c["ReadRequest"]
        assert p["writes"] == c["WriteRequest"]
        assert p["puts_notify"] == c["WriteNotifyRequest"]
        assert p["updates"] == c["EventAddResponse"]
        assert p["subscriptions"] == c["EventAddRequest"]
        assert p["searches"] == c["SearchRequest"]
    assert len(corpus["pvs"]) == 32          # 27 PVs and 5 missing names
    dbl = by(corpus["pvs"], "pv", "CORPUS:dbl")
    assert dbl["messages"] == 38              # fixtures/CORPUS.md
    assert sum(p["messages"] for p in corpus["pvs"]) == 915 - 42


# ------------------------------------------------------------------ circuits
def tcp_packets(path):
    """(ts_ns, src, sport, dst, dport, flags, payload bytes, seq) of every TCP packet."""
    out = []
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        link = {dpkt.pcap.DLT_LINUX_SLL: dpkt.sll.SLL, 276: dpkt.sll2.SLL2}.get(
            reader.datalink(), dpkt.ethernet.Ethernet)
        for ts, buf in reader:
            eth = link(buf)
            ip = eth.data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            t = round(ts * 10**6) * 1000
            out.append((t, dpkt.utils.inet_to_str(ip.src), tcp.sport,
                        dpkt.utils.inet_to_str(ip.dst), tcp.dport, tcp.flags, len(tcp.data),
                        tcp.seq))
    return out


def test_circuits_twoservers_bytes_and_times(twoservers):
    packets = tcp_packets(fixture("twoservers.pcap"))
    circuits = twoservers["circuits"]
    assert len(circuits) == 2
    for c, server_port in zip(circuits, (5064, 5066)):
        cport = int(c["client"].split(":")[1])
        assert c["server"] == f"127.0.0.1:{server_port}"
        mine = [p for p in packets if {p[2], p[4]} == {cport, server_port}]
        up = sum(p[6] for p in mine if p[2] == cport)
        down = sum(p[6] for p in mine if p[2] == server_port)
        # no retransmissions in the fixture: CA bytes = TCP payload bytes
        assert (c["bytes_to_server"], c["bytes_to_client"]) == (up, down) == (136, 104)
        assert (c["messages_to_server"], c["messages_to_client"]) == (6, 5)
        assert (c["host"], c["user"], c["channels"], c["state"]) == ("fixture-host", "fixture", 1, "closed")
        fins = [p for p in mine if p[5] & dpkt.tcp.TH_FIN]
        assert len(fins) == 2
        assert ns(c["end"]) == fins[1][0]          # closed by the second FIN
        first_data = next(p for p in mine if p[6])
        assert ns(c["start"]) == first_data[0]


def test_circuit_open_at_end_of_capture():
    report = collect([str(fixture("midstream.pcap"))])
    (c,) = report["circuits"]
    assert c["state"] == "open" and c["end"] is None


# ------------------------------------------------------------------ unanswered requests
def packet_times(path):
    """[(ts ns, tcp flags)] of every packet, read with dpkt."""
    out = []
    with open(path, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(buf).data
            out.append((int(round(ts * 10**6)) * 1000,
                        ip.data.flags if isinstance(ip.data, dpkt.tcp.TCP) else 0))
    return out


def test_unanswered_requests_of_a_slow_ioc():
    """unanswered.pcap (fixtures/README.md): a WriteNotify still running when
    the capture stops, and a circuit closed by its client with a ReadNotify,
    an EventAdd and a CreateChan the IOC never answered."""
    path = fixture("unanswered.pcap")
    msgs = print_json(path)
    packets = packet_times(path)
    capture_end = packets[-1][0]
    fins = [ts for ts, flags in packets if flags & dpkt.tcp.TH_FIN]
    # client 2's FIN, then the IOC's (which closes the circuit), then the last ACK
    assert len(fins) == 2 and fins[1] < capture_end and packets[-1][1] == dpkt.tcp.TH_ACK
    report = collect([str(path)])
    got = report["unanswered_requests"]
    expected = [("FIX:slow_put", "WriteNotifyRequest", "capture ended", capture_end),
                ("FIX:slow_get", "ReadNotifyRequest", "circuit closed by the client", fins[1]),
                ("FIX:dbl", "EventAddRequest", "circuit closed by the client", fins[1]),
                ("FIX:long", "CreateChanRequest", "circuit closed by the client", fins[1])]
    assert [(e["pv"], e["request"], e["until"]) for e in got] == [x[:3] for x in expected]
    assert report["unanswered_requests_total"] == 4
    for e, (pv, request, until, end) in zip(got, expected):
        (m,) = [m for m in msgs if m["pv"] == pv and m["command"] == request
                and m["fields"].get("ioid", m["fields"].get("subscriptionid", 0)) == 0
                or (pv, request) == ("FIX:slow_put", "WriteNotifyRequest") == (m["pv"], m["command"])]
        assert e["count"] == 1
        assert e["first"] == e["last"] == m["timestamp"]
        assert e["first_frame"] == e["last_frame"] == m["frame"]
        assert e["first_file"] == e["last_file"] == str(path)
        assert e["longest_wait_s"] == (end - ns(m["timestamp"])) / 1e9
        assert e["server"] == "127.0.0.1:5064"
        client = f"{m['src']}:{m['sport']}"
        assert e["client"] == client
    # the two clients' circuits, as the Circuits section names them
    assert {e["client"] for e in got} == {c["client"] for c in report["circuits"]}
    # every other request of the capture was answered: by print's pairing, the
    # requests no reply names (EventAdd is not paired there: its only one)
    requests = [m["frame"] for m in msgs if m["command"] in (
        "ReadNotifyRequest", "WriteNotifyRequest", "EventAddRequest", "CreateChanRequest")]
    paired = {m["request_frame"] for m in msgs if m["role"] == "server"}
    assert len(requests) == 10
    assert [f for f in requests if f not in paired] == [e["first_frame"] for e in got]


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "fixtures").iterdir()
                                        if p.suffix in (".pcap", ".pcapng")
                                        and p.name not in ("unanswered.pcap", "hung.pcap",
                                                           "lossy.pcap", "iocdeath.pcap")))
def test_every_request_of_the_other_fixtures_was_answered(name):
    """Their clients waited for each answer (reuse.pcap's failed puts are
    answered by ErrorResponses quoting them; cancels by EventCancelResponse),
    and their captures lost nothing."""
    report = collect([str(fixture(name))])
    assert report["unanswered_requests"] == [] and report["unanswered_requests_total"] == 0
    assert all(c["bytes_not_captured_to_server"] == c["bytes_not_captured_to_client"] == 0
               for c in report["circuits"])


def test_unanswered_when_the_capture_lost_the_answers():
    """lossy.pcap: the kernel dropped parts of the three FIX:wf replies
    (fixtures/README.md). Their reads count as unanswered, and the row says
    how many bytes of the server the capture lacks on that circuit: the
    answers may be there. The circuit says it too."""
    from tests.conftest import tcp_holes
    lost = sum(n for _, n in tcp_holes(fixture("lossy.pcap"), 5064))
    assert lost == 152080
    report = collect([str(fixture("lossy.pcap"))])
    (e,) = report["unanswered_requests"]
    assert (e["pv"], e["request"], e["count"], e["until"], e["server_bytes_not_captured"]) == (
        "FIX:wf", "ReadNotifyRequest", 3, "circuit closed by the client", lost)
    (c,) = report["circuits"]
    assert (c["bytes_not_captured_to_server"], c["bytes_not_captured_to_client"]) == (0, lost)
    assert report["capture"]["tcp_bytes_missing"] == lost
    text = render_text(report)
    assert text.split("Unanswered requests (3 requests)\n")[1].splitlines()[1].endswith(
        "circuit closed by the client; 152080 bytes from the server not captured")
    assert ("  circuit 1: bytes not captured (lost by the capture): 0 to the server, "
            "152080 to the client") in text.splitlines()
    assert ("  missing   152080 TCP bytes of CA circuits were not captured (holes in their "
            "sequence numbers): CA messages may be missing") in text.splitlines()
    # with --top cutting the table, the line stays under its circuit's row
    more = collect([str(fixture("lossy.pcap")), str(fixture("twoservers.pcap"))])
    section = render_text(more, top=1).split("Circuits (3, busiest first)\n")[1].split(
        "\n\n")[0].splitlines()
    assert [line.split()[0] for line in section] == ["#", "1", "circuit", "..."]
    assert section[2:] == ["  circuit 1: bytes not captured (lost by the capture): 0 to the "
                           "server, 152080 to the client", "  ... 2 more (--top 0 shows all)"]
    # where nothing was lost, the rows and circuits say nothing of it
    plain = collect([str(fixture("unanswered.pcap"))])
    assert {e["server_bytes_not_captured"] for e in plain["unanswered_requests"]} == {0}
    assert "not captured" not in render_text(plain)


def test_unanswered_echo_of_a_hung_ioc():
    """hung.pcap (fixtures/README.md): libca's EchoRequests to a stopped
    IOC, never answered; libca then closes the circuit (FIN, RST)."""
    path = fixture("hung.pcap")
    msgs = print_json(path)
    echoes = [m for m in msgs if m["command"] == "EchoRequest"]
    assert [m["frame"] for m in echoes] == [15, 17]
    packets = packet_times(path)
    assert packets[-1][1] & dpkt.tcp.TH_RST
    report = collect([str(path)])
    (e,) = report["unanswered_requests"]
    assert (e["pv"], e["request"], e["count"], e["until"]) == (None, "EchoRequest", 2,
                                                                 "circuit closed by the client")
    assert (e["first_frame"], e["last_frame"]) == (15, 17)
    assert (e["first"], e["last"]) == (echoes[0]["timestamp"], echoes[1]["timestamp"])
    assert e["longest_wait_s"] == (packets[-1][0] - ns(echoes[0]["timestamp"])) / 1e9
    assert e["client"] == f"{echoes[0]['src']}:{echoes[0]['sport']}"


def test_echo_answers_the_oldest_echo_request():
    """No fixture has an answered echo: fake records through the collector."""
    from pcapca.ca import _caproto
    col = StatsCollector()
    key = (1, ("10.0.0.1", 40000), ("10.0.0.2", 5064))

    def echo(ts, role):
        cls = _caproto.Commands[_caproto.CLIENT if role == "client" else _caproto.SERVER][23]
        return SimpleNamespace(name=cls.__name__, cls=cls, fields=(23, 0, 0, 0, 0, 0),
                               msg=b"\0" * 16, proto="tcp", role=role, pv=None, ts=ts,
                               frame=ts // 10**9, src="10.0.0.1", sport=40000, dst="10.0.0.2",
                               dport=5064, circuit=key, latency=None)
    col.add(echo(1 * 10**9, "client"))
    col.add(echo(2 * 10**9, "client"))
    col.add(echo(3 * 10**9, "server"))      # answers the first
    (e,) = col.report()["unanswered_requests"]
    assert (e["request"], e["first_frame"], e["count"]) == ("EchoRequest", 2, 1)
    col = StatsCollector()
    col.add(echo(1 * 10**9, "client"))
    col.add(echo(2 * 10**9, "server"))      # answers it
    col.add(echo(3 * 10**9, "server"))      # answers nothing (its request was not seen)
    col.add(echo(4 * 10**9, "client"))      # so this one stays unanswered
    (e,) = col.report()["unanswered_requests"]
    assert (e["request"], e["first_frame"], e["count"]) == ("EchoRequest", 4, 1)


def test_unanswered_requests_filtered():
    path = fixture("unanswered.pcap")
    r = json.loads(run_cli("stats", "--json", "--pv", "FIX:slow_*", path, check=0).stdout)
    assert [(e["pv"], e["request"]) for e in r["unanswered_requests"]] == [
        ("FIX:slow_put", "WriteNotifyRequest"), ("FIX:slow_get", "ReadNotifyRequest")]
    # a filter that drops the answers: they still answer the requests it keeps
    r = json.loads(run_cli("stats", "--json", "--command", "ReadNotifyRequest",
                           fixture("basic.pcap"), check=0).stdout)
    assert r["unanswered_requests"] == [] and sum(p["reads"] for p in r["pvs"]) == 5
    r = json.loads(run_cli("stats", "--json", "--command", "*Request", path, check=0).stdout)
    assert r["unanswered_requests_total"] == 4


def test_unanswered_requests_when_reading_stops(tmp_path):
    """Cut in frame 41: the circuits are still open. Read to the end, the
    capture ended; with --strict reading stops at the damage."""
    data = fixture("unanswered.pcap").read_bytes()
    pos = 24
    for _ in range(40):
        pos += 16 + struct.unpack("<I", data[pos + 8:pos + 12])[0]
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:pos + 20])
    res = run_cli("print", "--json", "--quiet", cut, check=1)
    assert res.stderr.startswith(b"pcapca: frame 41, byte offset 3992: capture ends inside")
    last = ns(json.loads(res.stdout.splitlines()[-1])["timestamp"])   # frame 40, the EventAdd
    for args, until in (((), "capture ended"), (("--strict",), "reading stopped")):
        res = run_cli("stats", "--json", *args, cut, check=1)
        r = json.loads(res.stdout)
        assert [(e["pv"], e["request"], e["until"]) for e in r["unanswered_requests"]] == [
            ("FIX:slow_put", "WriteNotifyRequest", until),
            ("FIX:slow_get", "ReadNotifyRequest", until),
            ("FIX:dbl", "EventAddRequest", until)]
        for e in r["unanswered_requests"]:
            assert e["longest_wait_s"] == (last - ns(e["first"])) / 1e9


def test_unanswered_requests_memory_is_bounded(monkeypatch):
    """Past MAX_PENDING requests waiting on one circuit, the oldest half is
    counted as unanswered at once."""
    import pcapca.stats.bounds
    monkeypatch.setattr(pcapca.stats.bounds, "MAX_PENDING", 2)
    report = collect([str(fixture("unanswered.pcap"))])
    untils = [(e["pv"], e["request"], e["until"]) for e in report["unanswered_requests"]]
    assert untils == [("FIX:slow_put", "WriteNotifyRequest", "capture ended"),
                      ("FIX:slow_get", "ReadNotifyRequest", "over 2 pending"),
                      ("FIX:dbl", "EventAddRequest", "circuit closed by the client"),
                      ("FIX:long", "CreateChanRequest", "circuit closed by the client")]
    slow_get, create = report["unanswered_requests"][1], report["unanswered_requests"][3]
    assert slow_get["longest_wait_s"] == (ns(create["first"]) - ns(slow_get["first"])) / 1e9


def test_unanswered_request_rows_are_bounded(monkeypatch):
    """Past MAX_ERRORS rows, unanswered requests are counted, not listed."""
    import pcapca.stats.bounds
    monkeypatch.setattr(pcapca.stats.bounds, "MAX_ERRORS", 2)
    report = collect([str(fixture("unanswered.pcap"))])
    # (the first rows made: client 2's circuit closed before the capture ended)
    assert [e["request"] for e in report["unanswered_requests"]] == [
        "ReadNotifyRequest", "EventAddRequest"]
    assert report["unanswered_requests_total"] == 4
    text = render_text(report)
    assert "Unanswered requests (4 requests)" in text
    assert text.split("Unanswered requests")[1].split("\n\n")[0].splitlines()[-1] == \
        "  (2 more not listed)"


def test_unanswered_request_whose_id_is_used_again():
    """No fixture reuses a pending ioid: fake records through the collector."""
    from pcapca.ca import _caproto
    col = StatsCollector()
    key = (1, ("10.0.0.1", 40000), ("10.0.0.2", 5064))
    cls = _caproto.Commands[_caproto.CLIENT][15]

    def read(ts, ioid):
        return SimpleNamespace(name="ReadNotifyRequest", cls=cls, fields=(15, 0, 6, 1, 7, ioid),
                               msg=b"\0" * 16, proto="tcp", role="client", pv="X:a", ts=ts,
                               frame=ts // 10**9, src="10.0.0.1", sport=40000, dst="10.0.0.2",
                               dport=5064, circuit=key, latency=None)
    col.add(read(1 * 10**9, 5))
    col.add(read(3 * 10**9, 5))
    # (the second is still waiting when the report is made: no capture was read to its end)
    assert [(e["until"], e["first_frame"], e["longest_wait_s"])
            for e in col.report()["unanswered_requests"]] == [
        ("its id was used again", 1, 2.0), ("reading stopped", 3, 0.0)]


def test_text_report_unanswered_requests():
    text = run_cli("stats", fixture("unanswered.pcap"), check=0).stdout.decode()
    section = text.split("Unanswered requests (4 requests)\n")[1].split("\n\n")[0].splitlines()
    assert section[0].split() == ["PV", "REQUEST", "COUNT", "FIRST", "FRAME", "WAITED", "s",
                                  "CLIENT", "SERVER", "UNTIL"]
    rows = [line.split() for line in section[1:]]
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [
        ("FIX:slow_put", "WriteNotifyRequest", "1", "19"),
        ("FIX:slow_get", "ReadNotifyRequest", "1", "38"),
        ("FIX:dbl", "EventAddRequest", "1", "40"),
        ("FIX:long", "CreateChanRequest", "1", "42")]
    assert [line.split("127.0.0.1:5064")[-1].strip() for line in section[1:]] == [
        "capture ended"] + ["circuit closed by the client"] * 3
    assert "Unanswered requests (0 requests)\n  none" in run_cli(
        "stats", fixture("basic.pcap"), check=0).stdout.decode()


# ------------------------------------------------------------------ several files
def strip(report):
    r = json.loads(json.dumps(report))
    r.pop("capture")
    for b in r["beacons"]:
        for x in b["restarts"]:
            x.pop("frame"), x.pop("file")
    for e in r["errors"]:
        e.pop("frame"), e.pop("file")
    for e in r["unanswered_requests"]:
        for k in ("first_frame", "first_file", "last_frame", "last_file"):
            e.pop(k)
    for e in r["subscriptions"]:
        e.pop("start_frame"), e.pop("start_file")
    return r


@pytest.mark.parametrize("name,at", [("twoservers.pcap", 6), ("twoservers.pcap", 36),
                                     ("corpus_libca.pcap", 400), ("reuse.pcap", 41),
                                     ("unanswered.pcap", 39), ("slowclient.pcap", 26)])
def test_split_capture_gives_the_same_report(tmp_path, name, at):
    """A capture cut in two (between a request and its reply, inside a TCP
    circuit) read as two files: the state carries over, the report is the same."""
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    split_pcap(fixture(name), a, b, at)
    whole = collect([str(fixture(name))])
    parts = collect([str(a), str(b)])
    assert strip(parts) == strip(whole)
    assert [f["path"] for f in parts["capture"]["files"]] == [str(a), str(b)]
    assert parts["capture"]["packets"] == whole["capture"]["packets"]
    assert parts["capture"]["first"] == whole["capture"]["first"]
    assert parts["capture"]["last"] == whole["capture"]["last"]


def test_two_files_cli(tmp_path):
    res = run_cli("stats", "--json", fixture("twoservers.pcap"), fixture("reuse.pcap"), check=0)
    r = json.loads(res.stdout)
    assert [os.path.basename(f["path"]) for f in r["capture"]["files"]] == ["twoservers.pcap", "reuse.pcap"]
    assert r["capture"]["packets"] == 92 + 54
    assert len(r["circuits"]) == 3
    assert {os.path.basename(e["file"]) for e in r["errors"]} == {"reuse.pcap"}
    assert os.path.basename(by(r["beacons"], "server", "127.0.0.1:5066")["restarts"][0]["file"]) == "twoservers.pcap"
    text = run_cli("stats", fixture("twoservers.pcap"), fixture("reuse.pcap"), check=0).stdout.decode()
    assert "reuse.pcap" in text.split("Errors (2)")[1]


# ------------------------------------------------------------------ filters
def test_filter_pv(corpus):
    r = json.loads(run_cli("stats", "--json", "--pv", "NOPE:*", fixture("corpus_libca.pcap"),
                           check=0).stdout)
    assert [p["pv"] for p in r["pvs"]] == NOPE
    assert [e["pv"] for e in r["unanswered_searches"]] == NOPE
    assert r["circuits"] == [] and r["servers"] == [] and r["beacons"] == [] and r["errors"] == []
    assert r["capture"]["messages_counted"] == 80
    assert r["capture"]["messages"] == 915


def test_filter_since_and_command():
    # searches from the third round on: 2 searches of each missing name
    r = json.loads(run_cli("stats", "--json", "--since", "1795983086.19", "--command", "Search*",
                           fixture("twoservers.pcap"), check=0).stdout)
    assert [(e["pv"], e["searches"]) for e in r["unanswered_searches"]] == [(n, 2) for n in MISSING]
    assert r["name_conflicts"] == []          # only 5066 answered after that time


def test_filter_config_file(tmp_path):
    cfg = tmp_path / "f.yaml"
    cfg.write_text("filter:\n  pv: 'FIX:limited'\n")
    r = json.loads(run_cli("stats", "--json", "--config", cfg, fixture("reuse.pcap"), check=0).stdout)
    assert [p["pv"] for p in r["pvs"]] == ["FIX:limited"]
    assert r["errors_total"] == 2


# ------------------------------------------------------------------ text output
def test_text_report_corpus():
    res = run_cli("stats", fixture("corpus_libca.pcap"), check=0)
    text = res.stdout.decode()
    section = text.split("Unanswered searches (5 names, 80 searches)\n")[1].split("\n\n")[0]
    lines = section.splitlines()
    assert lines[0].split() == ["PV", "SEARCHES", "CLIENTS", "FIRST", "LAST", "RATE/S", "NOT-FOUND"]
    assert [l.split()[:2] for l in lines[1:]] == [[n, "16"] for n in NOPE]
    assert "ECA_PUTFAIL" in text and "CORPUS:limited" in text
    for title in ("Capture", "Name conflicts", "Circuits (2", "Servers (2)", "Clients",
                  "PVs by messages (32)", "Errors (1)", "Beacons (2 servers"):
        assert title in text
    # aligned: every row of a table as wide as its header, columns start together
    pv_table = text.split("PVs by messages (32)\n")[1].split("\n\n")[0].splitlines()
    assert len(pv_table) == 1 + 20 + 1            # header, --top 20 rows, "... 12 more"
    assert pv_table[-1] == "  ... 12 more (--top 0 shows all)"
    starts = pv_table[0].index("READS")
    assert all(row[starts - 1] == " " for row in pv_table[1:-1])
    all_rows = run_cli("stats", "--top", "0", fixture("corpus_libca.pcap"), check=0).stdout.decode()
    assert len(all_rows.split("PVs by messages (32)\n")[1].split("\n\n")[0].splitlines()) == 33
    two = run_cli("stats", "--top", "2", fixture("corpus_libca.pcap"), check=0).stdout.decode()
    assert "  ... 3 more (--top 0 shows all)" in two


def test_text_report_twoservers(twoservers):
    text = render_text(twoservers)
    assert "restart: 127.0.0.1:5066 at 20:11:28.382061 (frame 46): beacon id went back (7 -> 0)" in text
    conflict = text.split("Name conflicts")[1].split("\n\n")[0]
    assert "127.0.0.1:5064" in conflict and "127.0.0.1:5066" in conflict


def test_table_formatter():
    lines = table(["A", "NUM", "B"], [["x", 1, None], ["long", 12345, "y"]])
    assert lines == ["  A       NUM  B",
                     "  x         1  -",
                     "  long  12345  y"]


# ------------------------------------------------------------------ json
def test_json_output_shape():
    res = run_cli("stats", "--json", fixture("twoservers.pcap"), check=0)
    r = json.loads(res.stdout)
    for key in ("capture", "unanswered_searches", "name_conflicts", "circuits", "pvs", "errors",
                "beacons", "servers", "clients", "flow_control"):
        assert key in r
    cap = r["capture"]
    assert cap["first"] == "1795983084.355215000"
    assert cap["first_iso"] == "2026-11-29T20:11:24.355215000Z"
    assert (cap["packets"], cap["messages"], cap["decode_problems"]) == (92, 100, 0)
    e = r["unanswered_searches"][0]
    assert set(e) >= {"pv", "searches", "clients", "first", "last"}
    assert res.stderr == b""


# ------------------------------------------------------------------ plot
def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "t.png"
    res = run_cli("stats", "--plot", out, fixture("twoservers.pcap"), check=0)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"timeline written to {out}" in res.stderr.decode()


def test_plot_without_matplotlib(tmp_path):
    fake = tmp_path / "fake" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake.parent), str(ROOT)]))
    res = subprocess.run([sys.executable, "-m", "pcapca", "stats", "--plot", str(tmp_path / "x.png"),
                          str(fixture("twoservers.pcap"))], capture_output=True, env=env, cwd=str(ROOT))
    assert res.returncode == 2
    err = res.stderr.decode().splitlines()
    assert err == ["pcapca: error: --plot needs matplotlib, which is not installed: "
                   "pip install 'pcapca[plot]'"]
    assert res.stdout == b""
    assert not (tmp_path / "x.png").exists()


def test_timeline_counts_and_coarsening(monkeypatch):
    import pcapca.stats.bounds as stats
    report = collect([str(fixture("twoservers.pcap"))], timeline=True)
    t = report["_timeline"]
    total = sum(sum(row) for row in t.bins.values())
    assert total == 100
    assert sum(t.unanswered().values()) == 18
    monkeypatch.setattr(stats, "MAX_BINS", 5)
    tl = Timeline()
    for i in range(100):
        tl.add(i * 10**7, 0)           # one message every 10 ms for 1 s
        tl.search(i * 10**7, "gone")
    assert len(tl.bins) <= 5 and tl.width == 10**9
    assert sum(r[0] for r in tl.bins.values()) == 100
    assert sum(tl.unanswered().values()) == 100


# ------------------------------------------------------------------ errors of use
@pytest.mark.parametrize("args,message", [
    (["--top", "-1", "F"], "pcapca: error: --top -1: must be 0 (all) or more"),
    (["/nonexistent.pcap"], "pcapca: error: cannot open '/nonexistent.pcap': No such file or directory"),
    (["F", "README"], "not a pcap or pcapng file"),
    (["-", "-"], "pcapca: error: stdin (-) can be read only once"),
    (["--since", "tomorrow", "F"], "--since"),
])
def test_usage_errors_one_line_exit_2(args, message):
    args = [str(fixture("twoservers.pcap")) if a == "F" else
            str(ROOT / "fixtures" / "README.md") if a == "README" else a for a in args]
    res = run_cli("stats", *args)
    assert res.returncode == 2
    err = res.stderr.decode().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert res.stdout == b""


def test_stdin():
    with open(fixture("reuse.pcap"), "rb") as f:
        res = run_cli("stats", "--json", "-", input=f.read(), check=0)
    assert json.loads(res.stdout)["errors_total"] == 2


# ------------------------------------------------------------------ bounded memory
def test_reservoir_bounded_exact_count_and_max_deterministic():
    import random
    values = [((i * 7919) % 100003) / 1e5 for i in range(3 * RESERVOIR_SIZE)]
    r1, r2 = Reservoir(random.Random(1)), Reservoir(random.Random(1))
    for v in values:
        r1.add(v)
        r2.add(v)
    assert len(r1.values) == RESERVOIR_SIZE and r1.count == len(values)
    assert r1.max == max(values) and r1.values == r2.values
    s = r1.summary()
    assert s["sampled"] and abs(s["p50"] - nearest_rank(values, 50)) < 0.02
    assert percentile([1, 2, 3, 4], 50) == 2 and percentile([1, 2, 3, 4], 95) == 4
    assert percentile([5], 50) == 5


def test_problems_reported_and_strict():
    """noise.pcap has junk on CA ports: each problem one line on stderr, the
    report covers the rest (exit 0); --strict stops at the first (exit 1)."""
    res = run_cli("stats", "--json", fixture("noise.pcap"), check=0)
    r = json.loads(res.stdout)
    assert r["capture"]["decode_problems"] == 3
    assert len(res.stderr.decode().splitlines()) == 3
    res = run_cli("stats", "--json", "--strict", fixture("noise.pcap"), check=1)
    r = json.loads(res.stdout)
    assert r["capture"]["decode_problems"] == 1
    assert len(res.stderr.decode().splitlines()) == 1


def test_problem_lines_name_their_file_when_there_are_several(tmp_path):
    """Frame numbers and byte offsets count from the start of each file: with
    several files, each problem line names the file it is in."""
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(fixture("basic.pcap").read_bytes()[:3000])
    one = run_cli("stats", fixture("noise.pcap"), check=0).stderr.decode().splitlines()
    assert len(one) == 3 and all(l.startswith("pcapca: frame ") for l in one)
    res = run_cli("stats", "-q", cut, fixture("basic.pcap"), fixture("noise.pcap"), check=1)
    assert res.stderr.decode().splitlines() == [
        f"pcapca: {cut}, frame 29, byte offset 2920: capture ends inside a packet: 64 of 82 bytes"
    ] + [l.replace("pcapca: ", f"pcapca: {fixture('noise.pcap')}, ", 1) for l in one]


@pytest.mark.parametrize("name", ["basic.pcap", "corpus_libca.pcap", "rsrv.pcap", "reuse.pcap",
                                  "bigarray.pcap"])
def test_circuit_bytes_are_the_tcp_payload_bytes(name):
    """Bytes each way = the TCP payload bytes of the circuit (each sequence
    number counted once), whatever the messages: rsrv's and libca's replies
    are padded to 8 bytes (caproto's len() of a message leaves the padding
    out), bigarray's messages span many segments."""
    seen = set()
    sent = defaultdict(int)
    for _, src, sport, _, dport, _, size, seq in tcp_packets(fixture(name)):
        if size and (src, sport, dport, seq) not in seen:
            seen.add((src, sport, dport, seq))
            sent[(src, sport, dport)] += size
    report = collect([str(fixture(name))])
    assert report["circuits"]
    for c in report["circuits"]:
        cip, cport = c["client"].rsplit(":", 1)
        sip, sport = c["server"].rsplit(":", 1)
        assert c["bytes_to_server"] == sent[(cip, int(cport), int(sport))]
        assert c["bytes_to_client"] == sent[(sip, int(sport), int(cport))]


def test_a_failed_put_reported_by_its_reply_status(tmp_path):
    """No fixture has a WriteNotifyResponse or ReadNotifyResponse with an
    error status (the IOCs send an ErrorResponse): a crafted circuit. The
    collector reads the status from the reply's header, unbuilt."""
    import caproto as ca
    from tests.builders import ca_bytes, tcp_capture
    putfail = ca.CAStatus.ECA_PUTFAIL.value.code_with_severity
    path = tmp_path / "putfail.pcap"
    path.write_bytes(tcp_capture([
        (True, ca_bytes(ca.VersionRequest(priority=0, version=13),
                        ca.CreateChanRequest(name="X:a", cid=1, version=13))),
        (False, ca_bytes(ca.CreateChanResponse(data_type=6, data_count=1, cid=1, sid=9))),
        (True, ca_bytes(ca.WriteNotifyRequest(data=[1.5], data_type=6, data_count=1, sid=9,
                                              ioid=3),
                        ca.ReadNotifyRequest(data_type=6, data_count=1, sid=9, ioid=4))),
        (False, ca_bytes(ca.WriteNotifyResponse(data_type=6, data_count=1, status=putfail, ioid=3),
                         ca.ReadNotifyResponse(data=[2.5], data_type=6, data_count=1, status=1,
                                               ioid=4, metadata=None))),
    ]))
    report = collect([str(path)])
    assert [(e["frame"], e["command"], e["pv"], e["status"], e["request"], e["text"])
            for e in report["errors"]] == [
        (7, "WriteNotifyResponse", "X:a", "ECA_PUTFAIL", "WriteNotifyRequest",
         ca.CAStatus.ECA_PUTFAIL.value.description)]
    (pv,) = report["pvs"]
    assert (pv["pv"], pv["errors"], pv["puts_notify"], pv["reads"]) == ("X:a", 1, 1, 1)


def test_time_stamps_past_year_9999(tmp_path):
    """troubleshooting.md's tsresol.pcapng: a bogus if_tsresol makes the
    nanosecond ticks of session.pcapng microseconds, year 58882, where
    datetime gives up; the report (which was an internal error) is written
    with the year as it is. Expected: the first packet's ticks, dated with
    datetime 140 Gregorian cycles (400 years each, 146097 days) earlier."""
    import datetime
    from tests.builders import DAMAGED, blocks
    data = DAMAGED["tsresol.pcapng"]()
    path = tmp_path / "tsresol.pcapng"
    path.write_bytes(data)
    first_epb = next(o for o, t, n in blocks(data) if t == 6)
    high, low = struct.unpack_from("<II", data, first_epb + 12)
    sec, us = divmod(high << 32 | low, 10**6)
    day = datetime.datetime.fromtimestamp(sec - 140 * 146097 * 86400, datetime.timezone.utc)
    first = f"{day.year + 140 * 400}-{day:%m-%dT%H:%M:%S}.{us:06d}000Z"
    assert first.startswith("58882-")
    res = run_cli("stats", path, check=1)
    assert f"  span      {first} .. 58882-" in res.stdout.decode()
    assert "internal error" not in res.stderr.decode()
    report = json.loads(run_cli("stats", "--json", path, check=1).stdout)
    assert report["capture"]["first_iso"] == first
    assert report["capture"]["messages"] == 120


@given(st.integers(min_value=-62135596800 * 10**9, max_value=253402300799 * 10**9 + 10**9 - 1))
@settings(max_examples=2000, deadline=None)
def test_utc_is_datetimes_where_datetime_works(ts):
    import datetime
    from pcapca.times import utc
    sec, ns = divmod(ts, 10**9)
    d = datetime.datetime.fromtimestamp(sec, datetime.timezone.utc)
    assert utc(ts) == (f"{d.year:04d}-{d:%m-%d}", f"{d:%H:%M:%S}", ns)


# ------------------------------------------------------------------ flow control
def expected_flow_control(path, report):
    """The flow_control rows of ``report``'s circuits computed with dpkt: per
    direction, from a packet advertising a zero window (not SYN/RST) to the
    next packet of that side with an open window, or to the circuit's last
    packet; EventsOff/EventsOn times from ``print --json``."""
    zero, stalls, last = {}, {}, {}
    with open(path, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(buf).data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            t = round(ts * 10**6) * 1000
            side = (dpkt.utils.inet_to_str(ip.src), tcp.sport)
            peer = (dpkt.utils.inet_to_str(ip.dst), tcp.dport)
            last[frozenset((side, peer))] = t
            if tcp.win == 0 and not tcp.flags & (dpkt.tcp.TH_SYN | dpkt.tcp.TH_RST):
                zero.setdefault(side + peer, t)
            elif tcp.win and side + peer in zero:
                stalls.setdefault(side + peer, []).append(t - zero.pop(side + peer))
    for key, since in zero.items():
        stalls.setdefault(key, []).append(last[frozenset((key[:2], key[2:]))] - since)
    msgs = print_json(path)
    rows = []
    for c in report["circuits"]:
        client = (c["client"].rsplit(":", 1)[0], int(c["client"].rsplit(":", 1)[1]))
        server = (c["server"].rsplit(":", 1)[0], int(c["server"].rsplit(":", 1)[1]))
        mine = [m for m in msgs if m["proto"] == "tcp"
                and {(m["src"], m["sport"]), (m["dst"], m["dport"])} == {client, server}]
        offs = [ns(m["timestamp"]) for m in mine if m["command"] == "EventsOffRequest"]
        ons = [ns(m["timestamp"]) for m in mine if m["command"] == "EventsOnRequest"]
        sides = [stalls.get(client + server), stalls.get(server + client)]
        if not offs and sides == [None, None]:
            continue
        rows.append({
            "number": c["number"], "client": c["client"], "server": c["server"],
            "client_not_reading": sides[0], "server_not_reading": sides[1],
            "events_off": len(offs),
            "events_off_ns": sum(b - a for a, b in zip(offs, ons)),
        })
    return rows


def flow_rows(report):
    """flow_control rows with each side as its list's (episodes, total, longest)."""
    out = []
    for r in report["flow_control"]:
        r = dict(r)
        for k in ("client_not_reading", "server_not_reading"):
            s = r[k]
            r[k] = None if s is None else (s["episodes"], round(s["total_s"] * 1e9),
                                           round(s["longest_s"] * 1e9))
        r["events_off_ns"] = round(r.pop("events_off_s") * 1e9)
        out.append(r)
    return out


def summed(rows):
    for r in rows:
        for k in ("client_not_reading", "server_not_reading"):
            if r[k] is not None:
                r[k] = (len(r[k]), sum(r[k]), max(r[k]))
    return rows


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "fixtures").glob("*.pcap")))
def test_flow_control_of_every_fixture(name):
    report = collect([str(fixture(name))])
    assert flow_rows(report) == summed(expected_flow_control(fixture(name), report))


def test_flow_control_of_a_client_that_cannot_keep_up():
    """slowclient.pcap (fixtures/README.md): the client reads nothing for 1 s
    while the IOC floods it (zero windows), then turns events off for 0.6 s."""
    report = collect([str(fixture("slowclient.pcap"))])
    (row,) = report["flow_control"]
    assert row["client_not_reading"] == {
        "episodes": 1, "total_s": 0.984267, "longest_s": 0.984267,
        "first": "1796045293.562838000", "first_iso": "2026-11-30T13:28:13.562838000Z"}
    assert row["server_not_reading"] is None
    assert (row["events_off"], row["events_off_s"]) == (1, 0.604216)
    # the IOC sent nothing while events were off, then the latest value once
    msgs = print_json(fixture("slowclient.pcap"))
    names = [m["command"] for m in msgs]
    off, on = names.index("EventsOffRequest"), names.index("EventsOnRequest")
    assert "EventAddResponse" not in names[off:on]
    assert names[on + 1] == "EventAddResponse" and names[on + 2:].count("EventAddResponse") == 0
    text = render_text(report)
    assert ("  1  127.0.0.1:50206  127.0.0.1:5064  0.984267 s (once, longest 0.984267 s)  "
            "-                   1 for 0.604216 s  13:28:13.562838") in text.splitlines()


def edited_slowclient(tmp_path, edit):
    from tests.builders import build, records
    data = fixture("slowclient.pcap").read_bytes()
    recs = records(data)
    recs = edit(recs) or recs
    path = tmp_path / "edited.pcap"
    path.write_bytes(build(data[:24], recs))
    return path


def set_window(rec, window):
    frame = bytearray(rec[3])
    struct.pack_into("!H", frame, 14 + 20 + 14, window)
    rec[3] = bytes(frame)


def test_flow_control_of_a_server_that_stops_reading(tmp_path):
    """The IOC's WriteNotifyResponse (frame 20) edited to advertise a zero
    window: the server did not read until its next packet."""
    path = edited_slowclient(tmp_path, lambda recs: set_window(recs[19], 0))
    report = collect([str(path)])
    rows = flow_rows(report)
    assert rows == summed(expected_flow_control(path, report))
    assert rows[0]["server_not_reading"][0] == 1


def test_flow_control_of_a_stopped_ioc():
    """stuckioc.pcap (fixtures/README.md): the IOC is stopped (SIGSTOP) while
    the client writes 12 kB to it; its 16 kB receive buffer fills (zero window
    from frame 16) until it runs again 1 s later (frame 20 opens it)."""
    report = collect([str(fixture("stuckioc.pcap"))])
    (row,) = report["flow_control"]
    times = [t for t, _ in packet_times(fixture("stuckioc.pcap"))]
    assert row["server_not_reading"] == {
        "episodes": 1, "total_s": (times[19] - times[15]) / 1e9,
        "longest_s": 1.008068, "first": "1796047238.094867000",
        "first_iso": "2026-11-30T14:00:38.094867000Z"}
    assert (row["client_not_reading"], row["events_off"]) == (None, 0)


def test_flow_control_when_the_circuit_ends_while_not_reading(tmp_path):
    """The capture cut in the middle of the client's zero window: the stall
    lasts to the circuit's last packet."""
    path = edited_slowclient(tmp_path, lambda recs: recs[:28])   # (frames 25, 27: zero windows)
    report = collect([str(path)])
    rows = flow_rows(report)
    assert rows == summed(expected_flow_control(path, report))
    (row,) = rows
    last = tcp_packets(path)[-1][0]
    first = ns(report["flow_control"][0]["client_not_reading"]["first"])
    assert first == ns("1796045293.562838000") < last
    assert row["client_not_reading"] == (1, last - first, last - first) == (1, 656002000, 656002000)


# ------------------------------------------------------------------ who closed a circuit
@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "fixtures").glob("*.pcap")))
def test_closed_by_the_side_of_the_first_fin_or_rst(name):
    report = collect([str(fixture(name))])
    packets = tcp_packets(fixture(name))
    for c in report["circuits"]:
        client = c["client"].rsplit(":", 1)
        server = c["server"].rsplit(":", 1)
        mine = [p for p in packets
                if {(p[1], p[2]), (p[3], p[4])} == {(client[0], int(client[1])),
                                                   (server[0], int(server[1]))}]
        ends = [p for p in mine if p[5] & (dpkt.tcp.TH_FIN | dpkt.tcp.TH_RST)]
        if not ends:
            assert c["closed_by"] is None and c["state"] != "closed"
            continue
        who = "client" if (ends[0][1], ends[0][2]) == (client[0], int(client[1])) else "server"
        how = "RST" if ends[0][5] & dpkt.tcp.TH_RST else "FIN"
        assert c["closed_by"] == f"{who} {how}"


def test_an_ioc_that_dies_closes_its_circuits():
    """iocdeath.pcap (fixtures/README.md): the IOC is killed while a client
    waits for a read; its kernel sends the first FIN."""
    report = collect([str(fixture("iocdeath.pcap"))])
    (c,) = report["circuits"]
    packets = tcp_packets(fixture("iocdeath.pcap"))
    fins = [p for p in packets if p[5] & dpkt.tcp.TH_FIN]
    assert [p[2] for p in fins] == [5064, int(c["client"].rsplit(":", 1)[1])]
    assert (c["closed_by"], c["state"], ns(c["end"])) == ("server FIN", "closed", fins[1][0])
    (row,) = report["unanswered_requests"]
    assert (row["pv"], row["request"], row["until"]) == (
        "FIX:slow_get", "ReadNotifyRequest", "circuit closed by the server")
    read = next(m for m in print_json(fixture("iocdeath.pcap"))
                if m["command"] == "ReadNotifyRequest" and m["pv"] == "FIX:slow_get")
    assert round(row["longest_wait_s"] * 1e9) == fins[1][0] - ns(read["timestamp"])
    text = render_text(report)
    assert "server FIN" in text.split("Circuits (1, busiest first)")[1].splitlines()[2]
    assert text.split("Unanswered requests (1 request)\n")[1].splitlines()[1].endswith(
        "circuit closed by the server")


# ------------------------------------------------------------------ subscriptions
def expected_subscriptions(path):
    """Per EventAddRequest (from print --json): (pv, client, server, start frame,
    updates, first update, last update, longest wait in ns) computed from the
    messages of its circuit and subscription id, until a cancel or a new
    request with the id."""
    msgs = print_json(path)
    out = []
    for i, m in enumerate(msgs):
        if m["command"] != "EventAddRequest":
            continue
        ends = {(m["src"], m["sport"]), (m["dst"], m["dport"])}
        sid = m["fields"]["subscriptionid"]
        times = []
        for n in msgs[i + 1:]:
            if n["proto"] != "tcp" or {(n["src"], n["sport"]), (n["dst"], n["dport"])} != ends:
                continue
            if n["fields"].get("subscriptionid") != sid:
                continue
            if n["command"] in ("EventCancelRequest", "EventAddRequest"):
                break
            if n["command"] == "EventAddResponse":
                times.append(ns(n["timestamp"]))
        start = ns(m["timestamp"])
        gaps = [b - a for a, b in zip([start] + times, times)]
        out.append((m["pv"], f"{m['src']}:{m['sport']}", f"{m['dst']}:{m['dport']}",
                    m["frame"], len(times), times[0] if times else None,
                    times[-1] if times else None, max(gaps, default=0)))
    return sorted(out, key=lambda x: x[3])


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "fixtures").glob("*.pcap")))
def test_subscriptions_of_every_fixture(name):
    report = collect([str(fixture(name))])
    rows = sorted(report["subscriptions"], key=lambda r: r["start_frame"])
    got = [(r["pv"], r["client"], r["server"], r["start_frame"], r["updates"],
            r["first_update"] and ns(r["first_update"]),
            r["last_update"] and ns(r["last_update"]), round(r["longest_gap_s"] * 1e9))
           for r in rows]
    assert got == expected_subscriptions(fixture(name))
    assert report["subscriptions_total"] == len(rows)


def test_subscriptions_how_they_ended():
    ends = {}
    for name in ("slowclient.pcap", "iocdeath.pcap", "unanswered.pcap", "midstream.pcap"):
        report = collect([str(fixture(name))])
        ends[name] = [(r["pv"], r["updates"], r["ended"], r["silent_at_end_s"])
                      for r in report["subscriptions"]]
    assert ends["slowclient.pcap"] == [("FIX:flood", 62, "cancelled", 0.300786)]
    assert ends["iocdeath.pcap"] == [("FIX:dbl", 1, "circuit closed by the server", 0.354581)]
    # the subscription the stuck IOC never answered: no update, silent until the close
    assert ends["unanswered.pcap"] == [("FIX:dbl", 0, "circuit closed by the client", 0.601454)]
    assert ends["midstream.pcap"] == []             # (its subscriptions began before)
    (row,) = collect([str(fixture("slowclient.pcap"))])["subscriptions"]
    # the longest wait: while the client read nothing (zero window), then with events off
    assert (row["longest_gap_s"], row["longest_gap_from"]) == (1.026551, "1796045293.520594000")


def test_subscriptions_filtered_and_bounded(monkeypatch):
    report = collect([str(fixture("corpus_libca.pcap"))],
                     keep=lambda r: r.pv == "CORPUS:counter" and r.name == "EventAddRequest")
    (row,) = report["subscriptions"]
    assert (row["pv"], row["updates"]) == ("CORPUS:counter", 25)   # updates whatever the filter
    import pcapca.stats.bounds as stats_module
    monkeypatch.setattr(stats_module, "MAX_ERRORS", 2)
    report = collect([str(fixture("corpus_libca.pcap"))])
    assert (len(report["subscriptions"]), report["subscriptions_total"]) == (2, 5)
    assert "  (3 more not listed)" in render_text(report).splitlines()


# ------------------------------------------------------------------ bounds (issue 21, point 8)
def _many_names_capture(tmp_path):
    """UDP searches from one client: HOT three times, then N0..N9 once each,
    and beacons: server port 7000 three times, then ports 6000..6009 once."""
    import caproto as ca
    from tests.builders import ca_bytes, tcp_capture
    search = [ca.SearchRequest(name="HOT", cid=1, version=13)] * 3 + [
        ca.SearchRequest(name=f"N{i}", cid=10 + i, version=13) for i in range(10)]
    beacon = [ca.Beacon(version=13, server_port=7000, beacon_id=i, address="10.0.0.1")
              for i in range(3)] + [
        ca.Beacon(version=13, server_port=6000 + i, beacon_id=5, address="10.0.0.1")
        for i in range(10)]
    path = tmp_path / "many.pcap"
    path.write_bytes(tcp_capture([("udp", ca_bytes(c)) for c in search + beacon],
                                 handshake=False))
    return str(path)


def test_rows_per_table_are_bounded_the_busiest_kept(tmp_path, monkeypatch, capsys):
    """Past MAX_ROWS rows a table folds the half with the lowest counts into
    a total: the rows kept, the fold line and the not_kept field."""
    import pcapca.stats.bounds
    path = _many_names_capture(tmp_path)
    full = collect([path])
    assert "not_kept" not in full and len(full["unanswered_searches"]) == 11
    monkeypatch.setattr(pcapca.stats.bounds, "MAX_ROWS", 4)
    report = collect([path])
    # HOT: 3 searches, N0..N7 folded two at a time as the table fills
    assert [(e["pv"], e["searches"]) for e in report["unanswered_searches"]] == [
        ("HOT", 3), ("N8", 1), ("N9", 1)]
    assert [(p["pv"], p["messages"]) for p in report["pvs"]] == [("HOT", 3), ("N8", 1), ("N9", 1)]
    assert [(b["server"], b["beacons"]) for b in report["beacons"]] == [
        ("10.0.0.1:6008", 1), ("10.0.0.1:6009", 1), ("10.0.0.1:7000", 3)]
    # (the host's other ports: those of the rows kept)
    assert report["beacons"][0]["other_ports_of_host"] == [6009, 7000]
    assert report["not_kept"] == {"searched_names": {"rows": 8, "searches": 8},
                                  "pvs": {"rows": 8, "messages": 8},
                                  "beacons": {"rows": 8, "beacons": 8}}
    # every search counted: the rows kept plus those folded
    assert sum(p["searches"] for p in report["pvs"]) + 8 == full["capture"]["by_command"][
        "SearchRequest"] == 13
    text = render_text(report)
    for section, line in (("Unanswered searches", "... and 8 more searched names not kept "
                                                  "(8 searches not in the rows)"),
                          ("PVs by messages", "... and 8 more PVs not kept "
                                              "(8 messages not in the rows)"),
                          ("Beacons", "... and 8 more beacon servers not kept "
                                      "(8 beacons not in the rows)")):
        block = text.split("\n" + section)[1].split("\n\n")[0].splitlines()
        assert block[5] == "  " + line, block
    # the CLI's JSON has the field (in-process, for the monkeypatch)
    from pcapca.cli.main import main
    assert main(["stats", "--json", "-q", path]) == 0
    assert json.loads(capsys.readouterr().out)["not_kept"] == report["not_kept"]


def test_rows_of_servers_clients_and_name_conflicts_are_bounded(monkeypatch):
    """Search replies from many servers, to many clients; each table folds."""
    import caproto as ca
    import pcapca.stats.bounds
    monkeypatch.setattr(pcapca.stats.bounds, "MAX_ROWS", 2)
    monkeypatch.setattr(pcapca.stats.bounds, "MAX_CLIENTS_LISTED", 2)
    c = StatsCollector()

    def record(command, pv, src, dst, **fields):
        cls = getattr(ca, command)
        cmd = cls(**fields)
        return SimpleNamespace(name=command, proto="udp", role="server" if "Response" in command
                               else "client", ts=1, msg=None, command=cmd, cls=cls, pv=pv,
                               latency=None, src=src[0], sport=src[1], dst=dst[0],
                               dport=dst[1], frame=1, circuit=None, fields=None)
    for i in range(3):                   # clients .0 .1 .2 search X
        c.add(record("SearchRequest", "X", (f"10.0.1.{i}", 5000), ("10.0.0.9", 5064),
                     name="X", cid=1, version=13))
    for i in range(3):                   # servers .0 .1 .2 answer X; .1 answers Y twice, Z
        c.add(record("SearchResponse", "X", (f"10.0.0.{i}", 5064), ("10.0.1.0", 5000),
                     port=5064, ip=f"10.0.0.{i}", cid=1, version=13))
    for i in range(2):
        c.add(record("SearchResponse", "Y", ("10.0.0.1", 5064), ("10.0.1.0", 5000),
                     port=5064, ip="10.0.0.1", cid=1, version=13))
    c.add(record("SearchResponse", "Z", ("10.0.0.1", 5064), ("10.0.1.0", 5000),
                 port=5064, ip="10.0.0.1", cid=1, version=13))
    r = c.report()
    assert [s["server"] for s in r["servers"]] == ["10.0.0.1:5064", "10.0.0.2:5064"]
    assert [x["client"] for x in r["clients"]] == ["10.0.1.1", "10.0.1.2"]
    # X: two servers kept (the third's reply counted), then Y; Z folds X (as
    # many replies as Y, and older); the PV Y (2 messages) gives way to Z
    assert [e["pv"] for e in r["name_conflicts"]] == []
    assert [p["pv"] for p in r["pvs"]] == ["X", "Z"]
    assert r["not_kept"] == {"answers": {"rows": 1, "search_replies": 3},
                             "servers": {"rows": 1, "messages_and_search_replies": 1},
                             "clients": {"rows": 1, "messages": 1},
                             "pvs": {"rows": 1, "messages": 2}}
    text = render_text(r)
    for line in ("... and 1 more answered name not kept (3 search replies not in the rows)",
                 "... and 1 more server not kept (1 messages and search replies not in the rows)",
                 "... and 1 more client not kept (1 messages not in the rows)"):
        assert "\n  " + line + "\n" in text


def test_timeline_names_are_bounded(monkeypatch):
    """--plot's searches per name not answered and the names answered: at
    most MAX_ROWS names each; the searches of names folded stay counted."""
    import pcapca.stats.bounds as stats
    monkeypatch.setattr(stats, "MAX_ROWS", 4)
    tl = Timeline()
    for i in range(10):
        tl.search(i * 10**7, f"N{i}")
        tl.search(i * 10**7, f"N{i}")
        assert len(tl.pending) <= 4
    assert list(tl.pending) == ["N8", None, "N9"]
    assert tl.pending[None] == {i: 2 for i in range(8)}
    assert sum(tl.unanswered().values()) == 20        # (N0..N7 too: their bins were folded)
    for i in range(6):
        tl.answered(f"A{i}")
        assert len(tl.answered_names) <= 4
    assert list(tl.answered_names) == ["A2", "A3", "A4", "A5"]
    tl.answered("N9")
    assert sum(tl.unanswered().values()) == 18


def test_live_subscriptions_per_circuit_are_bounded(tmp_path, monkeypatch):
    """Past MAX_PENDING live subscriptions on a circuit, the oldest half ends."""
    import caproto as ca
    import pcapca.stats.bounds
    from tests.builders import ca_bytes, tcp_capture
    monkeypatch.setattr(pcapca.stats.bounds, "MAX_PENDING", 2)
    path = tmp_path / "subs.pcap"
    path.write_bytes(tcp_capture([(True, ca_bytes(ca.VersionRequest(priority=0, version=13)))] + [
        (True, ca_bytes(ca.EventAddRequest(data_type=6, data_count=1, sid=9, subscriptionid=i,
                                           low=0.0, high=0.0, to=0.0, mask=5)))
        for i in range(1, 6)]))
    report = collect([str(path)])
    assert report["subscriptions_total"] == 5
    assert sorted((e["start_frame"], e["ended"]) for e in report["subscriptions"]) == [
        (5, "over 2 live"), (6, "over 2 live"), (7, "over 2 live"),
        (8, "capture ended"), (9, "capture ended")]


def test_closed_circuits_not_kept_are_reported(monkeypatch):
    """Past MAX_CIRCUITS_KEPT closed circuits, the rest are counted: say so."""
    import pcapca.stats.bounds
    full = collect([str(fixture("twoservers.pcap"))])
    monkeypatch.setattr(pcapca.stats.bounds, "MAX_CIRCUITS_KEPT", 1)
    report = collect([str(fixture("twoservers.pcap"))])
    assert len(report["circuits"]) == 1 and len(full["circuits"]) == 2
    assert report["not_kept"] == {"circuits": {"rows": 1}}
    block = render_text(report).split("\nCircuits")[1].split("\n\n")[0].splitlines()
    assert block[-1] == "  ... and 1 more closed circuit not kept"


def test_ports_per_beacon_host_are_bounded(tmp_path, monkeypatch):
    """A host beaconing on many ports: at most MAX_HOST_PORTS of them are
    kept (and listed as the other ports of the host)."""
    import pcapca.stats.bounds
    monkeypatch.setattr(pcapca.stats.bounds, "MAX_HOST_PORTS", 3)
    report = collect([_many_names_capture(tmp_path)])
    assert [(b["server"], b["other_ports_of_host"]) for b in report["beacons"]] == [
        (f"10.0.0.1:{port}", others) for port, others in
        [(6000, [6001, 7000])] + [(6001, [6000, 7000])]
        + [(6000 + i, [6000, 6001, 7000]) for i in range(2, 10)] + [(7000, [6000, 6001])]]


def test_collect_reads_a_binary_stream_as_a_path():
    """pcapca.stats.collector.collect() takes open binary streams too (the fuzzer
    feeds it bytes): the report's rows are those of the file read by its path."""
    import io
    path = fixture("twoservers.pcap")
    by_path = collect([str(path)])
    by_stream = collect([io.BytesIO(path.read_bytes())])
    for key in ("pvs", "servers", "unanswered_searches", "name_conflicts", "circuits"):
        assert by_stream[key] == by_path[key], key
    assert by_path["pvs"] and by_path["name_conflicts"]
    assert by_stream["capture"]["packets"] == by_path["capture"]["packets"] > 0
