"""The shared decoder on the recorded fixtures: every message, right class,
right role, right fields, right frame."""
import json
import re
import struct
import subprocess

import numpy as np
import pytest

import pcapca
from pcapca.output import reprs
from pcapca.capture.reader import CaptureFormatError, read_capture
from pcapca.items import Packet, Passthrough

from tests.conftest import FIXTURES, fixture, run_cli, tcp_holes

REFERENCE = json.loads((FIXTURES / "fixtures.json").read_text())
AMBIGUOUS = {"EventAddRequestOrResponse", "ClearChannelRequestOrResponse",
             "EchoRequestOrResponse"}


def decoded(name):
    return list(pcapca.read(fixture(name)))


def summary(records):
    return [(r.frame, "C>S" if r.role == "client" else "S>C", r.name) for r in records]


def _ref_class(text):
    name = text.split("(", 1)[0]
    # The reference decoder uses plain caproto, which calls the server's reply
    # to EventCancel (command 1 with no payload) an EventAddResponse; CA's
    # convention, and pcapca, call it EventCancelResponse.
    if name == "EventAddResponse" and "payload_size=0" in text:
        return "EventCancelResponse"
    return name


def reference(name, interface=None):
    """The message list of scripts/ca_decode.py, an independent decoder
    (tshark for the packets, its own reassembly, caproto per message),
    without its UNDECODABLE / INCOMPLETE entries (pcapca reports those as
    problems, not messages)."""
    return [(m["frame"], m["direction"], _ref_class(m["message"]))
            for m in REFERENCE[name]["messages"]
            if not m["message"].startswith(("UNDECODABLE", "INCOMPLETE", "GAP"))
            and (interface is None or m["interface"] == interface)]


@pytest.mark.parametrize("name", sorted(n for n in REFERENCE if not REFERENCE[n].get("per_interface")
                                         and not REFERENCE[n].get("lossy")))
def test_same_messages_as_the_independent_decoder(name):
    records = decoded(name)
    assert summary(records) == reference(name)
    assert not AMBIGUOUS & {r.name for r in records}


def test_duplicated_on_two_interfaces_decoded_once():
    # every packet of twoif.pcapng is in the file twice (lo and any): each
    # message must come out once, from the first copy
    records = decoded("twoif.pcapng")
    assert summary(records) == reference("twoif.pcapng", interface=0)
    assert len(reference("twoif.pcapng", interface=1)) == 15
    assert len(records) == 15
    assert [r.name for r in records].count("ReadNotifyResponse") == 1


def test_basic_session_fields():
    r = decoded("basic.pcap")
    names = [x.name for x in r]
    assert names == [
        "VersionRequest", "SearchRequest", "SearchRequest",
        "VersionResponse", "SearchResponse", "SearchResponse",
        "VersionRequest", "HostNameRequest", "ClientNameRequest", "VersionResponse",
        "CreateChanRequest", "AccessRightsResponse", "CreateChanResponse",
        "CreateChanRequest", "AccessRightsResponse", "CreateChanResponse",
        "ReadNotifyRequest", "ReadNotifyResponse", "ReadNotifyRequest", "ReadNotifyResponse",
        "ReadNotifyRequest", "ReadNotifyResponse", "ReadNotifyRequest", "ReadNotifyResponse",
        "WriteNotifyRequest", "WriteNotifyResponse", "ReadNotifyRequest", "ReadNotifyResponse",
        "EventAddRequest", "EventAddResponse", "EventAddResponse", "EventAddResponse",
        "EventAddResponse", "EventCancelRequest", "EventCancelResponse",
        "ClearChannelRequest", "ClearChannelResponse", "ClearChannelRequest",
        "ClearChannelResponse"]
    by = {}
    for x in r:
        by.setdefault(x.name, []).append(x)
    assert [x.command.name for x in by["SearchRequest"]] == ["FIX:dbl", "FIX:counter"]
    assert by["HostNameRequest"][0].command.name == "fixture-host"
    reads = by["ReadNotifyResponse"]
    assert [float(x.command.data[0]) for x in reads] == [3.25, 3.25, 3.25, reads[3].command.data[0], 4.5]
    assert reads[2].command.metadata.units == b"mm"
    assert reads[2].command.metadata.precision == 3
    assert float(by["WriteNotifyRequest"][0].command.data[0]) == 4.5
    counter = [int(x.command.data[0]) for x in by["EventAddResponse"]]
    assert counter == list(range(counter[0], counter[0] + 4))     # consecutive updates
    cancel = by["EventCancelResponse"][0].command
    assert (cancel.sid, cancel.subscriptionid) == (1, 0)
    # the server answers on 5064, the client on an ephemeral port, for every TCP message
    for x in r:
        if x.proto == "tcp":
            assert (x.sport == 5064) == (x.role == "server")


def test_tcp_roles_per_circuit_and_frames_complete_messages():
    r = decoded("basic.pcap")
    # messages carried in one segment share its frame
    assert [x.frame for x in r[:3]] == [1, 1, 1]
    assert {x.proto for x in r[:6]} == {"udp"}
    assert r[6].proto == "tcp"


def test_link_types_sll_and_sll2():
    for name, linktype in (("sll.pcap", 113), ("sll2.pcap", 276)):
        packets = [p for p in read_capture(fixture(name)) if isinstance(p, Packet)]
        assert {p.interface.linktype for p in packets} == {linktype}
        assert summary(decoded(name)) == reference(name)


def _pcap_records(path):
    """Timestamps straight from the pcap records (an independent reader)."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    nano = magic == 0xA1B23C4D
    pos, out = 24, []
    while pos + 16 <= len(data):
        sec, frac, caplen, _length = struct.unpack_from("<IIII", data, pos)
        out.append(sec * 10**9 + (frac if nano else frac * 1000))
        pos += 16 + caplen
    return nano, out


@pytest.mark.parametrize("name,nano", [("nanosec.pcap", True), ("basic.pcap", False)])
def test_timestamps_are_exact_integers(name, nano):
    is_nano, stamps = _pcap_records(fixture(name))
    assert is_nano == nano
    packets = [p for p in read_capture(fixture(name)) if isinstance(p, Packet)]
    assert [p.ts for p in packets] == stamps
    if nano:
        assert any(ts % 1000 for ts in stamps)   # real nanosecond digits
    rec = decoded(name)[0]
    sec, ns = divmod(stamps[rec.frame - 1], 10**9)
    assert rec.timestamp == sec + ns / 1e9


def test_timestamps_match_tshark(tshark):
    out = subprocess.run([tshark, "-r", str(fixture("nanosec.pcap")), "-T", "fields",
                          "-e", "frame.time_epoch"], capture_output=True, text=True, check=True)
    theirs = [line.strip() for line in out.stdout.splitlines()]
    ours = [f"{p.ts // 10**9}.{p.ts % 10**9:09d}"
            for p in read_capture(fixture("nanosec.pcap")) if isinstance(p, Packet)]
    assert ours == theirs


def test_pcapng_session_and_interfaces():
    items = list(read_capture(fixture("session.pcapng")))
    assert isinstance(items[0], Passthrough) and items[0].block_type == 0x0A0D0D0A
    packets = [p for p in items if isinstance(p, Packet)]
    assert [p.frame for p in packets] == list(range(1, len(packets) + 1))
    assert summary(decoded("session.pcapng")) == reference("session.pcapng")


def test_big_array_spans_many_segments():
    r = decoded("bigarray.pcap")
    big = [x for x in r if x.name in ("ReadNotifyResponse", "EventAddResponse",
                                      "WriteNotifyRequest") and x.command.data_count == 100000]
    assert {x.name for x in big} == {"ReadNotifyResponse", "EventAddResponse", "WriteNotifyRequest"}
    packets = {p.frame: p for p in read_capture(fixture("bigarray.pcap")) if isinstance(p, Packet)}
    for x in big:
        # extended header: payload_size in the 32-bit field
        assert x.command.header.payload_size == 100000 * 8
        # the message belongs to the frame that completes it, after many segments
        assert len(packets[x.frame].data) < 100000 * 8
    read = next(x for x in big if x.name == "ReadNotifyResponse")
    np.testing.assert_array_equal(read.command.data, np.arange(100000) * 0.5)
    # the monitor's cancel reply: command 1 without payload, count 100000
    cancel = next(x for x in r if x.name == "EventCancelResponse")
    assert cancel.command.header.payload_size == 0 and cancel.command.data_count == 100000
    assert read.pv == "FIX:wf"


def test_midstream_capture_has_no_names_and_right_roles():
    r = decoded("midstream.pcap")
    assert summary(r) == reference("midstream.pcap")
    assert all(x.pv is None for x in r)
    assert {x.role for x in r if x.name == "EventAddResponse"} == {"server"}


def test_noise_yields_no_ca_from_other_traffic():
    r = decoded("noise.pcap")
    assert summary(r) == reference("noise.pcap")
    assert {x.sport for x in r} | {x.dport for x in r} <= {5064, 5065} | {x.sport for x in r if x.role == "client"} | {x.dport for x in r if x.role == "server"}
    assert not [x for x in r if 8089 in (x.sport, x.dport)]


def test_noise_problems_are_one_line_each():
    problems = []
    list(pcapca.read(fixture("noise.pcap"), on_problem=problems.append))
    texts = [str(p) for p in problems]
    assert texts, "junk sent to the CA ports must be reported"
    assert all("\n" not in t for t in texts)
    assert any("5064" in t for t in texts)


def test_rsrv_session_named_throughout():
    # a real EPICS rsrv IOC (pythonSoftIOC) and libca (pyepics)
    r = decoded("rsrv.pcap")
    assert summary(r) == reference("rsrv.pcap")
    channel = [x for x in r if x.name not in ("VersionRequest", "VersionResponse",
                                              "HostNameRequest", "ClientNameRequest")]
    assert all(x.pv for x in channel)


def test_searches_over_tcp_to_a_name_server():
    # nameserver.pcap: libca with EPICS_CA_NAME_SERVERS and no UDP search list
    # (CA through an SSH tunnel): searches and replies on the TCP circuit, rsrv's
    # replies without payload; each reply named and paired with its search
    r = decoded("nameserver.pcap")
    assert summary(r) == reference("nameserver.pcap")
    assert {x.proto for x in r} == {"tcp"}
    searches = [(x.frame, x.name, x.pv, x.request_frame) for x in r
                if x.name.startswith("Search")]
    assert searches == ([(8, "SearchRequest", "FIX:dbl", None),
                         (10, "SearchResponse", "FIX:dbl", 8),
                         (15, "SearchRequest", "FIX:long", None),
                         (16, "SearchResponse", "FIX:long", 15)]
                        + [(f, "SearchRequest", "NOPE:missing", None)
                           for f in (21, 22, 24, 26, 28, 30)])
    reply = next(x for x in r if x.name == "SearchResponse")
    assert reply.command.header.payload_size == 0 and reply.latency == pytest.approx(51e-6)
    # caproto's repr of a reply without the version: its safe_repr's text
    assert reprs.record_repr(reply) == repr(reply.command) == (
        "SearchResponse(port=5064, ip='255.255.255.255', cid=1, version=(repr: "
        "Buffer size too small (0 instead of at least 2 bytes)))")
    stats = json.loads(run_cli("stats", "--json", fixture("nameserver.pcap"), check=0).stdout)
    assert [(p["pv"], p["searches"], p["search_replies"]) for p in stats["pvs"]] == [
        ("FIX:dbl", 1, 1), ("FIX:long", 1, 1), ("NOPE:missing", 6, 0)]
    assert [(u["pv"], u["searches"]) for u in stats["unanswered_searches"]] == [
        ("NOPE:missing", 6)]


def test_server_port_learned_from_search_replies():
    # twoservers.pcap: the second IOC serves CA on 5066; its circuit is
    # decoded with the right roles because the search reply named the port
    r = decoded("twoservers.pcap")
    assert summary(r) == reference("twoservers.pcap")
    on_5066 = [x for x in r if x.proto == "tcp" and 5066 in (x.sport, x.dport)]
    assert on_5066
    assert all((x.sport == 5066) == (x.role == "server") for x in on_5066)
    assert [x.pv for x in on_5066 if x.name == "ReadNotifyResponse"] == ["FIX:common"]


def test_unknown_format_and_empty_input():
    with pytest.raises(CaptureFormatError, match="not a pcap or pcapng file"):
        read_capture(FIXTURES / "README.md")
    with pytest.raises(CaptureFormatError, match="empty"):
        read_capture(b"")


def _pcap_rebuilt(path, order=None, edit=None):
    """The records of a real pcap, reordered (list of 1-based frames) or
    edited (frame -> new bytes), as a new pcap."""
    data = path.read_bytes()
    head, pos, recs = data[:24], 24, []
    while pos + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        recs.append(bytearray(data[pos:pos + 16 + caplen]))
        pos += 16 + caplen
    if edit:
        for frame, fn in edit.items():
            recs[frame - 1] = fn(recs[frame - 1])
    order = order or range(1, len(recs) + 1)
    return head + b"".join(bytes(recs[f - 1]) for f in order)


def test_out_of_order_segments_put_back_in_order():
    # basic.pcap frames 37 and 39 carry the 2nd and 3rd monitor updates
    # (server -> client); put 39 before 37, ACKs after both
    n = len([p for p in read_capture(fixture("basic.pcap")) if isinstance(p, Packet)])
    order = list(range(1, 37)) + [39, 37, 38] + list(range(40, n + 1))
    problems = []
    got = list(pcapca.read(_pcap_rebuilt(fixture("basic.pcap"), order), on_problem=problems.append))
    want = decoded("basic.pcap")
    assert [(r.name, r.role) for r in got] == [(r.name, r.role) for r in want]
    updates = [int(r.command.data[0]) for r in got if r.name == "EventAddResponse"]
    assert updates == [int(r.command.data[0]) for r in want if r.name == "EventAddResponse"]
    # both updates are completed by the segment that filled the hole (37, now frame 38)
    assert [r.frame for r in got if r.name == "EventAddResponse"][1:3] == [38, 38]
    assert problems == []


def test_message_without_caproto_class_is_shown_with_its_header():
    # rsrv answers READ_SYNC (command 10) with a reply caproto has no class for:
    # turn the server's WriteNotifyResponse (frame 29, no payload) into command 10
    def to_read_sync(rec):
        ca_start = 16 + 14 + 20 + 32          # record header, Ethernet, IPv4, TCP with options
        assert rec[ca_start:ca_start + 2] == b"\x00\x13"
        rec[ca_start:ca_start + 2] = b"\x00\x0a"
        return rec
    data = _pcap_rebuilt(fixture("basic.pcap"), edit={29: to_read_sync})
    rec = next(r for r in pcapca.read(data) if r.frame == 29)
    assert rec.name == "UnknownCommand" and rec.role == "server" and rec.pv is None
    assert repr(rec.command) == ("UnknownCommand(command=10, payload_size=0, data_type=6, "
                                 "data_count=1, parameter1=1, parameter2=4)")
    later = [r.name for r in pcapca.read(data) if r.frame > 29]
    assert later == [r.name for r in decoded("basic.pcap") if r.frame > 29]


def test_an_oversized_message_skipped_to_its_end_is_not_incomplete():
    """--max-message: the bytes of a message over the limit are dropped as
    they come; once its last byte has come, nothing is left incomplete."""
    import caproto as ca
    from pcapca.ca._caproto import CLIENT
    from pcapca.ca.framing import StreamDecoder
    write = bytes(ca.WriteNotifyRequest(data=[0.0] * 10, data_type=6, data_count=10, sid=1,
                                        ioid=2))
    assert len(write) == 96
    stream = StreamDecoder(CLIENT, max_message=64)
    out = stream.feed(write[:80])
    assert out == ["message (command 19) claims 80 bytes, over the 64-byte limit; skipped"]
    assert stream.partial
    assert stream.feed(write[80:90]) == [] and stream.partial
    assert stream.feed(write[90:]) == [] and not stream.partial
    read = bytes(ca.ReadNotifyRequest(data_type=6, data_count=1, sid=1, ioid=3))
    assert [m[0].__name__ for m in stream.feed(read)] == ["ReadNotifyRequest"]


def _ports_moved(raw: bytes, old: int, new: int) -> bytes:
    """A little-endian Ethernet/IPv4 pcap with TCP/UDP port ``old`` made ``new``
    (checksums are not checked by pcapca, so they are left as they are)."""
    out, pos = [raw[:24]], 24
    while pos + 16 <= len(raw):
        caplen = struct.unpack_from("<I", raw, pos + 8)[0]
        rec = bytearray(raw[pos:pos + 16 + caplen])
        l4 = 16 + 14 + (rec[16 + 14] & 0x0F) * 4
        if rec[16 + 12:16 + 14] == b"\x08\x00" and rec[16 + 23] in (6, 17):
            for at in (l4, l4 + 2):
                if struct.unpack_from(">H", rec, at)[0] == old:
                    struct.pack_into(">H", rec, at, new)
        out.append(bytes(rec))
        pos += 16 + caplen
    return b"".join(out)


def test_server_port_option_for_a_server_on_another_port(tmp_path):
    """basic.pcap as if the IOC ran with EPICS_CA_SERVER_PORT=5070. Searches
    starting with a version request are recognised on any port, and TCP
    circuits by their SYN; but when the capture lacks the search, the reply
    from 5070 can only be told from a request by --server-port."""
    from tests.builders import build, records
    raw = _ports_moved(fixture("basic.pcap").read_bytes(), 5064, 5070)
    moved = tmp_path / "port5070.pcap"
    moved.write_bytes(raw)
    fmt = ("--format", "{frame} {proto} {role} {name} {pv}")
    want = run_cli("print", fixture("basic.pcap"), *fmt, check=0)
    assert run_cli("print", moved, *fmt, check=0).stdout == want.stdout
    recs = records(raw)
    del recs[0]                              # the search request: not captured
    late = tmp_path / "late.pcap"
    late.write_bytes(build(raw[:24], recs))
    right = run_cli("print", late, "--server-port", "5070", *fmt, check=0)
    assert right.stdout.decode().splitlines()[:3] == [
        "1 udp server VersionResponse ", "1 udp server SearchResponse ",
        "1 udp server SearchResponse "]
    assert right.stdout.decode().splitlines()[3:] == [
        f"{int(line.split()[0]) - 1} {line.split(' ', 1)[1]}"
        for line in want.stdout.decode().splitlines()[6:]]
    wrong = run_cli("print", late, *fmt, check=0)
    # (its version bytes as a name: "\\x00\\r", which ends at its NUL: the empty name)
    assert wrong.stdout.decode().splitlines()[:3] == [
        "1 udp client VersionRequest ", "1 udp client SearchRequest ",
        "1 udp client SearchRequest "]


def test_ethernet_sized_segments_and_a_header_across_two():
    """mtu1500.pcap: lo cut to Ethernet's 1448-byte segments (fixtures/README.md).
    Frame 100 carries a 1440-byte WriteNotifyRequest and the first 8 bytes of
    the next request's header; frame 101 the other 8: that ReadNotifyRequest
    belongs to frame 101, the frame that completes it."""
    packets = {p.frame: p for p in read_capture(fixture("mtu1500.pcap")) if isinstance(p, Packet)}
    assert max(len(p.data) for p in packets.values()) == 1514
    assert len(packets[100].data) == 1514
    records = decoded("mtu1500.pcap")
    by_frame = {}
    for r in records:
        by_frame.setdefault(r.frame, []).append(r)
    (put,) = by_frame[100]
    assert (put.name, put.pv, put.command.data_count, len(put.msg)) == (
        "WriteNotifyRequest", "FIX:wf", 178, 1440)
    np.testing.assert_array_equal(put.command.data, np.arange(178.0))
    (get,) = by_frame[101]
    assert (get.name, get.pv, get.command.data_type.name) == (
        "ReadNotifyRequest", "FIX:dbl", "TIME_DOUBLE")
    assert len(packets[101].data) - 66 == 8       # the rest of its header, and no payload
    # the 24016-byte reply to the first read, completed by a segment of at most 1448 bytes
    (first,) = [r for r in records if r.name == "ReadNotifyResponse" and r.pv == "FIX:wf"
                and r.command.data_count == 3000]
    assert len(first.msg) == 24016 and len(packets[first.frame].data) <= 1514
    np.testing.assert_array_equal(first.command.data, np.arange(3000) * 0.5)


def test_a_capture_that_lost_packets():
    """lossy.pcap: the kernel dropped 372 packets tcpdump could not take in
    time, in the middle of three 160 KB replies (fixtures/README.md). Every
    hole is counted, the first is reported, and decoding resumes at the next
    message: all three FIX:dbl reads after the FIX:wf ones are answered."""
    holes = tcp_holes(fixture("lossy.pcap"), 5064)
    assert [n for _, n in holes] == [37648, 61560, 52872]
    res = run_cli("print", "--format", "{frame} {role} {name} {pv} {request_frame}",
                  fixture("lossy.pcap"), check=0)
    err = res.stderr.decode().splitlines()
    assert len(err) == 2
    assert re.fullmatch(r"pcapca: frame 114: 37648 bytes of 127\.0\.0\.1:5064->127\.0\.0\.1:\d+ "
                        r"were not captured; decoding resumes at the next CA header "
                        r"\(further problems in this stream are only counted\)", err[0])
    assert "152080 TCP bytes missing in 3 gaps" in err[1]
    assert sum(n for _, n in holes) == 152080
    # after the channels are created: the reads, and of the replies those of FIX:dbl
    lines = res.stdout.decode().splitlines()
    assert lines[lines.index("16 client ReadNotifyRequest FIX:wf "):] == [
        "16 client ReadNotifyRequest FIX:wf ",
        "123 client ReadNotifyRequest FIX:dbl ", "124 server ReadNotifyResponse FIX:dbl 123",
        "126 client ReadNotifyRequest FIX:wf ",
        "263 client ReadNotifyRequest FIX:dbl ", "264 server ReadNotifyResponse FIX:dbl 263",
        "266 client ReadNotifyRequest FIX:wf ",
        "415 client ReadNotifyRequest FIX:dbl ", "416 server ReadNotifyResponse FIX:dbl 415"]
    ours = summary(decoded("lossy.pcap"))
    # the independent decoder does not resume after a hole: what it finds,
    # pcapca finds too, in the same frames and order
    theirs = iter(ours)
    assert all(m in theirs for m in reference("lossy.pcap"))
    assert len(ours) > len(reference("lossy.pcap"))
    dbl = [r for r in decoded("lossy.pcap") if r.pv == "FIX:dbl" and r.name == "ReadNotifyResponse"]
    assert [float(r.command.data[0]) for r in dbl] == [3.25, 3.25, 3.25]
    assert not [r for r in decoded("lossy.pcap") if r.pv == "FIX:wf" and r.role == "server"
                and r.name == "ReadNotifyResponse"]
