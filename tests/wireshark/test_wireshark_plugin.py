"""The Lua post-dissector (pcapca/wireshark/pcapca.lua) run by tshark on what
`pcapca annotate` writes: its fields are those `pcapca print` names."""
import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT, run_cli
from tests.builders import search_pcap

pytestmark = pytest.mark.tshark

PLUGIN = ROOT / "pcapca" / "wireshark" / "pcapca.lua"
CAPTURES = sorted(p.name for p in FIXTURES.iterdir() if p.suffix in (".pcap", ".pcapng"))
RING = sorted(str(p) for p in (FIXTURES / "ring").iterdir())


def shark(tshark, path, *args):
    res = subprocess.run([tshark, "-X", f"lua_script:{PLUGIN}", "-r", str(path), *args],
                         capture_output=True, check=True)
    return res.stdout.decode("utf-8")


def plugin_fields(tshark, path):
    """{frame: {field: [values]}} of the frames with pcapca fields."""
    names = ["pcapca.pv", "pcapca.latency", "pcapca.request_frame", "pcapca.command",
             "pcapca.role", "pcapca.problem"]
    out = shark(tshark, path, "-T", "json", "-e", "frame.number", *sum((["-e", n] for n in names), []))
    per_frame = {}
    for packet in json.loads(out):
        layers = packet["_source"]["layers"]
        fields = {n: layers.get(n, []) for n in names}
        if any(fields.values()):
            per_frame[int(layers["frame.number"][0])] = fields
    return per_frame


def printed(inputs, *args):
    """{frame: [(pv, latency, request_frame, name, role)]} as pcapca print says."""
    out = run_cli("print", *inputs, "-q", *args, "--format",
                  "{frame}\t{pv}\t{latency}\t{request_frame}\t{name}\t{role}", check=0)
    per_frame = {}
    for line in out.stdout.decode().splitlines():
        frame, *rest = line.split("\t")
        per_frame.setdefault(int(frame), []).append(tuple(rest))
    return per_frame


def check_capture(tshark, inputs, annotated, frame_offsets):
    """``annotated``: the annotate output files, ``frame_offsets`` the first
    frame of each (a request in an earlier file has no request_frame)."""
    want = printed(inputs)
    for frame, messages in want.items():
        first = max(f for f in frame_offsets if f <= frame)
        want[frame] = [m[:2] + ((str(int(m[2]) - first + 1) if m[2] and int(m[2]) >= first
                                 else ""),) + m[3:] for m in messages]
    got = {}
    for path, first in zip(annotated, frame_offsets):
        for frame, fields in plugin_fields(tshark, path).items():
            got[first + frame - 1] = fields
    assert {f for f, fields in got.items() if fields["pcapca.command"]} == set(want)
    for frame, messages in want.items():
        fields = got[frame]
        assert fields["pcapca.pv"] == [m[0] for m in messages if m[0]], frame
        # (tshark writes a double in its shortest form: 0.1 for 0.100000)
        assert [float(x) for x in fields["pcapca.latency"]] == [float(m[1]) for m in messages
                                                                if m[1]], frame
        assert fields["pcapca.request_frame"] == [m[2] for m in messages if m[2]], frame
        assert fields["pcapca.command"] == [m[3] for m in messages], frame
        assert fields["pcapca.role"] == [m[4] for m in messages], frame
    # a display filter by PV selects exactly the frames `print --pv` names,
    # for the PVs of most and of fewest messages
    counts = Counter(m[0] for messages in want.values() for m in messages if m[0])
    ranked = [pv for pv, _ in counts.most_common()]
    for pv in dict.fromkeys(ranked[:1] + ranked[-1:]):
        frames = sorted(printed(inputs, "--pv", pv))
        selected = []
        for path, first in zip(annotated, frame_offsets):
            out = shark(tshark, path, "-Y", f'pcapca.pv == "{pv}"', "-T", "fields",
                        "-e", "frame.number")
            selected += [first + int(n) - 1 for n in out.split()]
        assert selected == frames, pv
    return want


@pytest.mark.parametrize("name", CAPTURES)
def test_plugin_fields_are_what_print_says(tshark, tmp_path, name):
    out = tmp_path / "out.pcapng"
    run_cli("annotate", FIXTURES / name, out, "-q")
    assert out.exists()
    want = check_capture(tshark, [FIXTURES / name], [out], [1])
    if name == "basic.pcap":        # (the fields are there: not a vacuous pass)
        assert sum(map(len, want.values())) == 39


def test_plugin_fields_of_a_ring_annotated_into_a_directory(tshark, tmp_path):
    run_cli("annotate", *RING, tmp_path, "-q", check=0)
    outs = [tmp_path / (Path(p).stem + ".pcapng") for p in RING]
    firsts, first = [], 1
    for p in RING:
        firsts.append(first)
        first += len(shark(tshark, p, "-T", "fields", "-e", "frame.number").split())
    want = check_capture(tshark, RING, outs, firsts)
    assert sum(map(len, want.values())) == 61


def test_problems_are_fields_and_expert_warnings(tshark, tmp_path):
    out = tmp_path / "noise.pcapng"
    run_cli("annotate", FIXTURES / "noise.pcap", out, "-q")
    text = shark(tshark, out, "-Y", "pcapca.problem", "-T", "fields", "-e", "frame.number",
                 "-e", "pcapca.problem")
    assert text.splitlines() == [
        "30\tUDP datagram 127.0.0.1:56612->127.0.0.1:5064 is not CA: command id 57005 is "
        "not a CA request",
        "31\tUDP datagram 127.0.0.1:56612->127.0.0.1:5065 is not CA: command id 57005 is "
        "not a CA request",
        "36\tbytes that are not CA (command id 18245) in the client stream; looking for "
        "the next message"]
    # one warning per problem, none elsewhere
    warned = shark(tshark, out, "-Y", "pcapca.problem.expert", "-T", "fields",
                   "-e", "frame.number")
    assert warned.split() == ["30", "31", "36"]
    tree = shark(tshark, out, "-Y", "frame.number == 36", "-V")
    assert tree[tree.index("\npcapca"):].strip().splitlines() == [
        "pcapca (EPICS Channel Access, from pcapca annotate) (1 message)",
        "    Problem: bytes that are not CA (command id 18245) in the client stream; looking "
        "for the next message",
        "        Problem: bytes that are not CA (command id 18245) in the client stream; "
        "looking for the next message",
        "        [Expert Info (Warning/Protocol): bytes that are not CA (command id 18245) in "
        "the client stream; looking for the next message]",
        "            [bytes that are not CA (command id 18245) in the client stream; looking "
        "for the next message]",
        "            [Severity level: Warning]",
        "            [Group: Protocol]"]


def test_hostile_pv_names_come_through_exactly(tshark, tmp_path):
    names = [b"A B]%41[pcapca/1 pv=Z]", b"caf\xc3\xa9\nx", b"bad\xff\xfe", b"%", b"t\th"]
    src, out = tmp_path / "hostile.pcap", tmp_path / "hostile.pcapng"
    src.write_bytes(search_pcap(names))
    run_cli("annotate", src, out, "-q", check=0)
    fields = plugin_fields(tshark, out)
    # (caproto reads a name as latin-1: pcapca's PV is that text)
    assert [fields[n]["pcapca.pv"] for n in sorted(fields)] == [
        [name.decode("latin-1")] for name in names]
    assert all(fields[n]["pcapca.command"] == ["SearchRequest"] for n in fields)
    first = shark(tshark, out, "-Y", 'pcapca.pv == "A B]%41[pcapca/1 pv=Z]"', "-T", "fields",
                  "-e", "frame.number")
    assert first.split() == ["1"]


def test_unknown_format_version_is_a_warning(tshark, tmp_path):
    out = tmp_path / "v9.pcapng"
    run_cli("annotate", FIXTURES / "basic.pcap", out, "-q", "--comment",
            "{pv} {name} [pcapca/9 role={role} pv=X]")
    text = shark(tshark, out, "-Y", "frame.number == 10", "-V")
    tree = text[text.index("\npcapca"):].strip().splitlines()
    assert tree == [
        "pcapca (EPICS Channel Access, from pcapca annotate) (1 message)",
        "    Comment format: 9",
        "        [Expert Info (Warning/Undecoded): pcapca comment format 9 is unknown to "
        "this plugin (it reads format 1): install the plugin of the pcapca that wrote this "
        "file (pcapca wireshark install)]",
        "            [pcapca comment format 9 is unknown to this plugin (it reads format 1): "
        "install the plugin of the pcapca that wrote this file (pcapca wireshark install)]",
        "            [Severity level: Warning]",
        "            [Group: Undecoded]"]
    assert shark(tshark, out, "-Y", "pcapca.pv", "-T", "fields", "-e", "frame.number") == ""


def test_hostile_tag_values_are_dropped_not_trusted(tshark, tmp_path):
    out = tmp_path / "bad.pcapng"
    run_cli("annotate", FIXTURES / "basic.pcap", out, "-q", "--comment",
            "{name} [pcapca/1 role=cli\u00e9nt cmd=A;B pv=%ff%41%zz req=-3 lat=1e999x] ] x")
    assert plugin_fields(tshark, out) == {}      # (not ending with the tag: not a tag)
    run_cli("annotate", FIXTURES / "basic.pcap", out, "-q", "--comment",
            "{name} [pcapca/1 role=cli\u00e9nt cmd=A;B pv=%ff%41%zz req=-3 lat=1e999x]")
    fields = plugin_fields(tshark, out)
    assert fields[10] == {"pcapca.pv": ["\\xffA%zz"], "pcapca.latency": [],
                          "pcapca.request_frame": [], "pcapca.command": [],
                          "pcapca.role": [], "pcapca.problem": []}
