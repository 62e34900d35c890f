"""IPv4 fragments (pcapca/ip_reassembly.py).

fragments.pcap (fixtures/README.md): on a lo with the MTU of a VXLAN overlay
network (1450), a caproto client's search datagram of 1440 bytes (36 names)
leaves in two fragments, frames 1 and 2; the IOC answers two of the names in
frame 3. The damaged variants are built from it with struct edits.
"""
from __future__ import annotations

import json
import struct
import subprocess

import pytest
from hypothesis import given, strategies as st

import pcapca
from tests.conftest import FAST, expected_comments, fixture, frames, run_cli
from pcapca.items import Packet, Interface
from pcapca.net.ip_reassembly import FRAGMENT_COST, MAX_FRAGMENTS, Reassembler
from pcapca.net.link import parse
from tests.builders import build, pieces, records, set_ip

NAMES = ["FIX:dbl", "FIX:counter"] + [f"DOCKER:missing:pv{i:02d}" for i in range(34)]
IP_ID = "0x2574"
LOST = ("IPv4 datagram 127.0.0.1->127.0.0.1 (UDP, IP id 0x2574) {}: the capture has "
        "{} of its bytes in {} {}; its CA messages are lost")


def lost(frame, reason, captured, fragments, offset=None):
    """The problem line of a datagram given up."""
    where = f"frame {frame}" + (f", byte offset {offset}" if offset is not None else "")
    return f"pcapca: {where}: " + LOST.format(reason, captured, fragments,
                                              "fragment" if fragments == 1 else "fragments")


def cli_lines(*args, path, check=0):
    res = run_cli("print", path, *args, check=check)
    return res.stdout.decode().splitlines(), res.stderr.decode().splitlines()


def write(tmp_path, recs, name="edited.pcap"):
    head, _ = pieces()
    path = tmp_path / name
    path.write_bytes(build(head, recs))
    return path


# ------------------------------------------------------------- the real capture

def test_the_search_in_two_fragments_is_decoded_at_the_frame_that_completes_it():
    records_ = list(pcapca.read(fixture("fragments.pcap")))
    first = [(r.frame, r.name, r.pv) for r in records_ if r.frame <= 3]
    assert first == ([(2, "VersionRequest", None)]
                     + [(2, "SearchRequest", n) for n in NAMES]
                     + [(3, "VersionResponse", None), (3, "SearchResponse", "FIX:dbl"),
                        (3, "SearchResponse", "FIX:counter")])
    replies = [r for r in records_ if r.name == "SearchResponse"]
    assert [r.request_frame for r in replies] == [2, 2]
    assert all(r.latency == pytest.approx(0.002236) for r in replies)
    assert [r.command.cid for r in records_ if r.frame == 2 and r.name == "SearchRequest"
            ] == list(range(36))


def test_cli_counts_no_fragment_as_skipped_and_the_tokens_see_the_whole_datagram():
    out, err = cli_lines("--format", "{frame} {ip.len} {ip.id} {transport.ulen} {name}",
                         path=fixture("fragments.pcap"))
    assert out[:2] == [f"2 1460 {int(IP_ID, 16)} 1440 VersionRequest",
                       f"2 1460 {int(IP_ID, 16)} 1440 SearchRequest"]
    assert err == ["pcapca: 32 packets; 79 CA messages; "
                   "1 packets skipped (1 TCP without CA data)"]


def test_json_and_stats_name_the_searches():
    out, _ = cli_lines("--json", "--pv", "FIX:counter", path=fixture("fragments.pcap"))
    rows = [json.loads(line) for line in out]
    assert [(r["frame"], r["command"], r.get("request_frame")) for r in rows[:2]] == [
        (2, "SearchRequest", None), (3, "SearchResponse", 2)]
    res = run_cli("stats", "--json", fixture("fragments.pcap"), check=0)
    report = json.loads(res.stdout)
    searched = {row["pv"]: row["searches"] for row in report["unanswered_searches"]}
    assert searched == {n: (2 if n < "DOCKER:missing:pv20" else 1) for n in NAMES[2:]}


def test_tshark_reassembles_in_the_same_frame_and_reads_our_comments_there(tmp_path, tshark):
    out = tmp_path / "annotated.pcapng"
    run_cli("annotate", fixture("fragments.pcap"), out, check=0)
    res = subprocess.run([tshark, "-2", "-r", str(out), "-T", "fields", "-e", "frame.number",
                          "-e", "ip.reassembled_in", "-e", "ip.reassembled.length"],
                         capture_output=True, text=True, check=True)
    rows = [line.split("\t") for line in res.stdout.splitlines()[:2]]
    assert rows == [["1", "2", ""], ["2", "", "1440"]]
    seen = frames(tshark, out)
    assert seen[1][2] == []
    assert seen[2][2] == expected_comments(fixture("fragments.pcap"))[2]
    assert len(seen[2][2]) == 37


def test_pcapng_input_gives_the_same_lines(tmp_path, tshark):
    ng = tmp_path / "fragments.pcapng"
    subprocess.run([tshark, "-r", str(fixture("fragments.pcap")), "-F", "pcapng", "-w", str(ng)],
                   check=True, capture_output=True)
    fmt = ("--format", "{frame} {pv} {latency} {command}")
    assert cli_lines(*fmt, path=ng)[0] == cli_lines(*fmt, path=fixture("fragments.pcap"))[0]


def test_fragments_captured_on_two_interfaces_are_used_once(tmp_path, tshark):
    """Each packet twice, on two interfaces of one pcapng (as `dumpcap -i lo
    -i any` captures): the second copies are ignored as captured twice."""
    two = tmp_path / "two.pcapng"
    subprocess.run(["mergecap", "-I", "none", "-F", "pcapng", "-w", str(two),
                    fixture("fragments.pcap"), fixture("fragments.pcap")],
                   check=True, capture_output=True)
    out, err = cli_lines("--format", "{frame} {pv} {name}", path=two)
    assert out[:2] == ["3  VersionRequest", "3 FIX:dbl SearchRequest"]
    assert len(out) == 79
    assert err == ["pcapca: 64 packets; 79 CA messages; 32 packets seen again on another "
                   "interface ignored; 1 packets skipped (1 TCP without CA data)"]


# ------------------------------------------------------------- damaged variants

def test_a_lost_fragment_is_one_line_and_the_rest_is_decoded(tmp_path):
    _, recs = pieces()
    path = write(tmp_path, recs[:1] + recs[2:])
    out, err = cli_lines("--format", "{frame} {pv} {name}", path=path)
    assert out[:3] == ["2  VersionResponse", "2  SearchResponse", "2  SearchResponse"]
    assert len(out) == 79 - 37
    assert err == [
        lost(1, "is not complete at the end of the capture", 1424, 1),
        "pcapca: 31 packets; 42 CA messages; 1 decode problems; 2 packets skipped "
        "(1 TCP without CA data, 1 IPv4 fragment of a lost datagram)"]


def test_fragments_in_reverse_order(tmp_path):
    _, recs = pieces()
    path = write(tmp_path, [recs[1], recs[0]] + recs[2:])
    out, err = cli_lines("--format", "{frame} {pv} {latency} {name}", path=path)
    assert out[:3] == ["2   VersionRequest", "2 FIX:dbl  SearchRequest",
                       "2 FIX:counter  SearchRequest"]
    # (the request's time is now that of the first fragment, 8 µs earlier)
    assert out[38] == "3 FIX:dbl 0.002244 SearchResponse"
    assert err[-1].startswith("pcapca: 32 packets; 79 CA messages;")


def test_a_fragment_captured_twice_is_used_once(tmp_path):
    _, recs = pieces()
    path = write(tmp_path, [recs[0], recs[0]] + recs[1:])
    out, err = cli_lines("--format", "{frame} {name}", path=path)
    assert out.count("3 SearchRequest") == 36 and "2 SearchRequest" not in out
    assert err == ["pcapca: 33 packets; 79 CA messages; 2 packets skipped "
                   "(1 IPv4 fragment seen twice, 1 TCP without CA data)"]


def test_overlapping_fragments_lose_the_datagram(tmp_path):
    _, recs = pieces()
    set_ip(recs[1], offset=1416)            # 8 bytes over the first fragment's end
    path = write(tmp_path, recs)
    out, err = cli_lines("--format", "{frame} {pv} {name}", path=path)
    assert out[0] == "3  VersionResponse"
    assert err[0] == lost(1, "has fragments that overlap (the receiver discards it)", 1440, 2)


def test_a_fragment_cut_by_the_snaplen_is_damage(tmp_path):
    _, recs = pieces()
    recs[0][3] = recs[0][3][:1000]           # orig_len stays 1458
    path = write(tmp_path, recs)
    out, err = cli_lines("--format", "{frame} {name}", path=path, check=1)
    assert out[0] == "3 VersionResponse"
    assert err[0] == lost(1, "was cut by the capture's snaplen", 1440 - 458, 2, offset=24)


def test_a_datagram_not_complete_after_30_s_is_given_up(tmp_path):
    _, recs = pieces()
    recs[1][0] += 31                          # the second fragment 31 s later
    path = write(tmp_path, recs[:2])
    out, err = cli_lines("--format", "{frame} {name}", path=path)
    assert out == []
    assert err == [
        lost(1, "was not complete 30 s after its first fragment", 1424, 1),
        lost(2, "is not complete at the end of the capture", 16, 1),
        "pcapca: 2 packets; 0 CA messages; 2 decode problems; "
        "2 packets skipped (2 IPv4 fragment of a lost datagram)"]


def test_two_last_fragments(tmp_path):
    _, recs = pieces()
    extra = [list(r) for r in recs[1:2]]
    set_ip(extra[0], offset=1440)            # after the end the first one says
    path = write(tmp_path, [recs[1], extra[0], recs[0]] + recs[2:])
    _, err = cli_lines("--format", "{frame} {name}", path=path)
    assert err[0] == lost(1, "has two last fragments", 32, 2)


# ------------------------------------------------------------- the reassembler alone

def fragment_packets():
    iface = Interface(1)
    return [Packet(i + 1, (s * 10**9 + f * 1000), x, n, iface)
            for i, (s, f, n, x) in enumerate(pieces()[1][:2])]


def test_reassembler_bounds_the_bytes_waiting():
    first, _second = fragment_packets()
    frag = parse(1, first.data)
    r = Reassembler(max_pending_bytes=4000)
    for ip_id in range(3):                   # three first halves of 1424 bytes each
        whole, lost = r.add(first._replace(frame=ip_id + 1), frag._replace(ip_id=ip_id))
        assert whole is None
    assert [(x.ip_id, x.first_frame) for x in lost] == [(0, 1)]
    assert lost[0].reason == "was given up: over 4000 bytes of fragments waiting"
    assert r.pending_bytes == 2 * (1424 + FRAGMENT_COST) and len(r.pending) == 2
    assert [x.ip_id for x in r.finish()] == [1, 2]
    assert r.pending_bytes == 0 and not r.pending


def test_reassembler_bounds_the_fragments_of_a_datagram():
    """8-byte fragments (each in its own place) up to the bound: the next is
    refused and the datagram given up, after linear work per fragment."""
    first, _second = fragment_packets()
    frag = parse(1, first.data)
    r = Reassembler()
    for i in range(MAX_FRAGMENTS):
        assert r.add(first, frag._replace(offset=8 * i, payload=b"x" * 8, wire_len=8)) == (None, [])
    _, lost = r.add(first, frag._replace(offset=8 * MAX_FRAGMENTS, payload=b"x" * 8, wire_len=8))
    assert [(x.reason, x.fragments, x.captured) for x in lost] == [
        (f"has over {MAX_FRAGMENTS} fragments", MAX_FRAGMENTS + 1, 8 * (MAX_FRAGMENTS + 1))]
    assert r.pending_bytes == 0 and not r.pending


def test_reassembler_rebuilds_the_frame_as_one_datagram():
    first, second = fragment_packets()
    r = Reassembler()
    assert r.add(first, parse(1, first.data)) == (None, [])
    whole, lost = r.add(second, parse(1, second.data))
    assert lost == []
    seg = parse(1, whole)
    assert (seg.sport, seg.dport, len(seg.payload)) == (58238, 5064, 1432)
    assert whole[:14] == first.data[:14]
    assert struct.unpack_from("!HHH", whole, 16) == (1460, int(IP_ID, 16), 0)
    import dpkt
    ip = dpkt.ip.IP(whole[14:])
    given = ip.sum
    ip.sum = 0                                # dpkt computes it when packing
    assert given == dpkt.ip.IP(bytes(ip)).sum
    assert r.pending_bytes == 0 and not r.pending


# ------------------------------------------------------------- any capture, fragmented

def fragmented(frame: bytes, cuts, order) -> list:
    """The Ethernet/IPv4 ``frame`` as IPv4 fragments cut at ``cuts`` (offsets
    in its IP payload, multiples of 8), in the order ``order``."""
    ihl = (frame[14] & 15) * 4
    head, payload = frame[:14 + ihl], frame[14 + ihl:]
    bounds = [0, *cuts, len(payload)]
    out = []
    for i in range(len(bounds) - 1):
        part = bytearray(head) + payload[bounds[i]:bounds[i + 1]]
        more = 0x2000 if i < len(bounds) - 2 else 0
        struct.pack_into("!HHH", part, 16, ihl + bounds[i + 1] - bounds[i], 0,
                         more | bounds[i] // 8)          # total length, id, fragment field
        struct.pack_into("!H", part, 18, struct.unpack_from("!H", frame, 18)[0])
        out.append(bytes(part))
    return [out[i] for i in order]


def outcome(path):
    return [(r.name, r.pv, r.src, r.sport, r.dst, r.dport, r.latency, repr(r.command))
            for r in pcapca.read(path)]


@given(st.data())
@FAST
def test_any_packets_cut_into_fragments_decode_as_the_whole(tmp_path_factory, data):
    """Packets of real captures (UDP searches and replies, TCP segments with
    several messages or a part of one) cut into fragments at random places,
    the fragments of each in any order, decode to the same messages."""
    name = data.draw(st.sampled_from(["basic.pcap", "mtu1500.pcap", "twoservers.pcap"]))
    d = fixture(name).read_bytes()
    recs = records(d)
    out = []
    for s, f, n, x in recs:
        ip_len = len(x) - 14 - (x[14] & 15) * 4
        if x[12:14] == b"\x08\x00" and ip_len > 8 and data.draw(st.booleans()):
            cuts = sorted(data.draw(st.sets(st.integers(1, (ip_len - 1) // 8), max_size=4)))
            parts = fragmented(x, [c * 8 for c in cuts], data.draw(st.permutations(
                range(len(cuts) + 1))))
            out += [[s, f, len(p), p] for p in parts]
        else:
            out.append([s, f, n, x])
    path = tmp_path_factory.mktemp("frag") / name
    path.write_bytes(build(d[:24], out))
    assert outcome(path) == outcome(fixture(name))
