"""``pcapca print`` and ``annotate`` of several captures read in order as one:
a ring buffer (pcapca.capture.sets).

fixtures/ring/ holds the files ``dumpcap -b duration:1`` wrote while a
caproto client created three channels, subscribed, read and put (one put
answered 1.5 s later, in a later file); fixtures/ring.pcapng is the same
files joined (one pcapng section each), which the independent decoder
checked when it was recorded (tests/test_pipeline.py)."""
import json
import re
import shutil
import struct
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from pcapca.times import iso

from tests.builders import blocks, build, records, split_pcap
from tests.conftest import FIXTURES, expected_comments, fixture, frames, needs_tshark, run_cli

PARTS = sorted(str(p.relative_to(FIXTURES.parent)) for p in (FIXTURES / "ring").glob("*.pcapng"))
FORMAT = "{frame} {request_frame} {pv} {latency} {name} {command}"


def packets_in(path) -> int:
    return sum(btype == 6 for _, btype, _ in blocks((FIXTURES.parent / path).read_bytes()))


def lines(*args, check=0):
    res = run_cli("print", *args, check=check)
    return res.stdout.decode().splitlines()


def test_the_ring_is_several_files_some_empty():
    """What the fixture is: 5 files; the last two are empty (the client was
    done), as dumpcap writes them while nothing is captured."""
    assert len(PARTS) == 5
    assert [packets_in(p) for p in PARTS] == [32, 24, 38, 0, 0]


def test_ring_files_read_as_one_print_what_the_joined_file_prints():
    """Frames numbered across the files (as in the joined file), PV names,
    request frames and latencies carried from one file to the next."""
    joined = lines("-f", FORMAT, fixture("ring.pcapng"))
    assert len(joined) == 61
    assert lines("-f", FORMAT, *PARTS) == joined
    whole = [json.loads(line) for line in lines("--json", fixture("ring.pcapng"))]
    parts = [json.loads(line) for line in lines("--json", *PARTS)]
    for obj in parts:
        assert list(obj)[:3] == ["frame", "file", "file_frame"]
        del obj["file"], obj["file_frame"]
    assert parts == whole


def test_file_and_file_frame_name_the_packet_in_its_own_file():
    starts, first = [], 1
    for part in PARTS:
        starts.append(first)
        first += packets_in(part)
    assert first - 1 == 94
    seen = set()
    for line in lines("-f", "{frame} {file} {file_frame}", *PARTS):
        frame, name, local = line.split()
        i = max(k for k, s in enumerate(starts) if s <= int(frame))
        assert (name, int(local)) == (PARTS[i], int(frame) - starts[i] + 1)
        seen.add(name)
    assert seen == set(PARTS[:3])
    objs = [json.loads(line) for line in lines("--json", *PARTS)]
    assert [(o["file"], o["file_frame"]) for o in objs] == [
        (PARTS[max(k for k, s in enumerate(starts) if s <= o["frame"])],
         o["frame"] - starts[max(k for k, s in enumerate(starts) if s <= o["frame"])] + 1)
        for o in objs]


def test_later_files_alone_lose_the_names_read_after_the_first_they_keep_them():
    """Why the files must be read together: the second file alone has the
    monitor updates of FIX:counter, but not the channel's creation."""
    alone = lines("-f", "{pv}|{name}|{request_frame}", PARTS[1])
    assert alone == ["|EventAddResponse|"] * 11 + ["|WriteNotifyResponse|"]
    together = [line.split("|") for line in lines("-f", "{file}|{pv}|{name}", *PARTS)]
    second = [(pv, name) for f, pv, name in together if f == PARTS[1]]
    assert len(second) == len(alone)
    assert all(pv for pv, _ in second)
    assert {pv for pv, name in second if name == "EventAddResponse"} == {"FIX:counter"}


def test_a_reply_in_a_later_file_than_its_request():
    """FIX:late_put's WriteNotify is answered 1.5 s later: the reply is in
    a later file; its request frame is in the numbering across the files,
    and its latency is the IOC's 1.5 s."""
    rows = [line.split("|") for line in
            lines("-f", "{file}|{file_frame}|{frame}|{request_frame}|{latency}|{name}|{pv}",
                  *PARTS)]
    put = [r for r in rows if r[5] == "WriteNotifyRequest"]
    done = [r for r in rows if r[5] == "WriteNotifyResponse"]
    assert len(put) == len(done) == 1
    assert done[0][3] == put[0][2] and done[0][6] == put[0][6] == "FIX:late_put"
    assert PARTS.index(done[0][0]) > PARTS.index(put[0][0])
    assert 1.5 <= float(done[0][4]) < 1.6


@pytest.mark.parametrize("pv", ["FIX:counter", "FIX:late_put", "FIX:dbl", "NOPE"])
def test_filtered_print_of_the_ring(pv):
    """``--pv`` (whose shortcut skips packets in bulk) numbers the frames the
    same way: what it keeps is what the joined file gives."""
    assert lines("--pv", pv, "-f", FORMAT, *PARTS) == lines("--pv", pv, "-f", FORMAT,
                                                            fixture("ring.pcapng"))


@pytest.mark.parametrize("name,cuts", [("corpus_libca.pcap", (400, 700)),
                                       ("reuse.pcap", (41,)), ("unanswered.pcap", (39,)),
                                       ("bigarray.pcap", (30, 60, 90))])
def test_a_capture_cut_into_files_prints_as_the_whole(tmp_path, name, cuts):
    """A pcap cut between packets (inside circuits, between requests and
    replies, inside messages of many segments: bigarray's big reply, completed in
    frame 46, and put, in frame 81) prints as the whole, with and without the
    --pv shortcut."""
    parts, rest = [], fixture(name)
    done = 0
    for i, at in enumerate(cuts):
        a, b = tmp_path / f"part{i}.pcap", tmp_path / f"rest{i}.pcap"
        split_pcap(rest, a, b, at - done)
        parts.append(a)
        rest, done = b, at - 1
    parts.append(rest)
    assert lines("-f", FORMAT, *parts) == lines("-f", FORMAT, fixture(name))
    pv = "CORPUS:*" if name.startswith("corpus") else "FIX:*"
    assert (lines("--pv", pv, "-f", FORMAT, *parts)
            == lines("--pv", pv, "-f", FORMAT, fixture(name)))


def test_frames_are_what_mergecap_a_numbers(tmp_path):
    """{frame} of several captures is the packet's number in the file
    ``mergecap -a`` makes of them, as tshark reads it."""
    needs_tshark()
    if shutil.which("mergecap") is None:
        pytest.skip("mergecap not installed")
    merged = tmp_path / "merged.pcapng"
    subprocess.run(["mergecap", "-a", "-w", merged, *[FIXTURES.parent / p for p in PARTS]],
                   check=True)
    ours = {}
    for line in lines("-f", "{frame} {ts}", *PARTS):
        frame, ts = line.split()
        ours[int(frame)] = int(ts)
    out = subprocess.run(["tshark", "-r", merged, "-T", "fields", "-e", "frame.number",
                          "-e", "frame.time_epoch"], capture_output=True, text=True, check=True)
    theirs = {}
    for row in out.stdout.splitlines():
        frame, epoch = row.split()
        sec, frac = epoch.split(".")
        theirs[int(frame)] = int(sec) * 10**9 + int(frac.ljust(9, "0")[:9])
    assert len(theirs) == 94 and len(ours) == 50        # (the packets with CA messages)
    assert all(theirs[f] == ts for f, ts in ours.items())


def test_problems_name_their_file_and_count_from_its_start(tmp_path):
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(fixture("basic.pcap").read_bytes()[:3000])
    alone = run_cli("print", "-q", fixture("noise.pcap"), check=0).stderr.decode().splitlines()
    assert len(alone) == 3 and all(l.startswith("pcapca: frame ") for l in alone)
    res = run_cli("print", "-q", "-f", "{file} {file_frame}", cut, fixture("noise.pcap"), check=1)
    assert res.stderr.decode().splitlines() == [
        f"pcapca: {cut}, frame 29, byte offset 2920: capture ends inside a packet: 64 of 82 bytes"
    ] + [l.replace("pcapca: ", f"pcapca: {fixture('noise.pcap')}, ", 1) for l in alone]
    out = res.stdout.decode().splitlines()
    # everything readable is printed: the 28 whole packets of the cut file, then noise.pcap
    assert out[0] == f"{cut} 1" and f"{cut} 28" in out[:30]
    assert out[-1].startswith(f"{fixture('noise.pcap')} ")
    strict = run_cli("print", "-q", "--strict", "-f", "{file}", cut, fixture("noise.pcap"),
                     check=1)
    assert set(strict.stdout.decode().split()) == {str(cut)}
    assert len(strict.stderr.decode().splitlines()) == 1


def test_stdin_among_several(tmp_path):
    data = (FIXTURES.parent / PARTS[0]).read_bytes()
    res = run_cli("print", "-f", "{file} {file_frame} {pv}", "-", *PARTS[1:],
                  input=data, check=0)
    rows = res.stdout.decode().splitlines()
    assert rows == [r.replace(PARTS[0], "-", 1) for r in
                    lines("-f", "{file} {file_frame} {pv}", *PARTS)]


@pytest.mark.parametrize("args,message", [
    (("-", "-"), "stdin (-) can be read only once"),
    (("fixtures/basic.pcap", "README.md"), "README.md: not a pcap or pcapng file"),
    (("fixtures/basic.pcap", "fixtures/no-such.pcap"), "cannot open 'fixtures/no-such.pcap'"),
])
def test_bad_sets_are_refused_before_anything_is_printed(args, message):
    res = run_cli("print", *args, check=2)
    assert res.stdout == b""
    assert message in res.stderr.decode() and len(res.stderr.decode().splitlines()) == 1


def test_file_token_of_one_capture():
    assert set(lines("-f", "{file}", "fixtures/basic.pcap")) == {"fixtures/basic.pcap"}
    assert (lines("-f", "{file_frame}", "fixtures/basic.pcap")
            == lines("-f", "{frame}", "fixtures/basic.pcap"))


def test_file_token_in_annotate_comments(tshark, tmp_path):
    out = tmp_path / "out.pcapng"
    run_cli("annotate", "--comment", "{file}:{file_frame} {name}", "fixtures/basic.pcap", out,
            check=0)
    written = frames(tshark, out)
    comments = [c for n in sorted(written) for c in written[n][2]]
    assert len(comments) == len(lines("-f", "{frame}", "fixtures/basic.pcap"))
    assert all(c.startswith("fixtures/basic.pcap:") for c in comments)
    assert comments[0] == "fixtures/basic.pcap:1 VersionRequest"


@pytest.mark.parametrize("names,several", [
    (PARTS, False), (["fixtures/ring.pcapng"], False), (["fixtures/twoif.pcapng"], True),
    (["fixtures/twoif.pcapng", PARTS[0]], False), ([PARTS[0], "fixtures/twoif.pcapng"], True)])
def test_interfaces_are_counted_per_section(names, several):
    """Packets are compared with each other (the same packet captured on two
    interfaces, dropped once) only within a pcapng section that declares
    several interfaces: each file of a ring buffer (or each section of the
    files joined) declares its own one, which is not a second interface."""
    from pcapca.capture.sets import FileFrames, read_captures
    from pcapca.ca.circuits import Decoder
    from pcapca.capture.progress import open_with_progress
    decoder = Decoder()
    files = FileFrames([str(FIXTURES.parent / n) for n in names])
    for item in decoder.run(read_captures(files, opener=lambda p: open_with_progress(p, enabled=False))):
        pass
    assert decoder.finds_duplicates is several


# ---------------------------------------------------------------- annotate IN... DIR
def annotated(tmp_path, inputs, *args, check=0):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    res = run_cli("annotate", *args, *inputs, out, check=check)
    return out, res


def test_annotate_a_ring_into_a_directory(tmp_path):
    """Each file annotated into its own, every packet of it kept as tshark
    reads it, the comments those of the files read as one: the second file's
    monitor updates are FIX:counter's, its WriteNotifyResponse FIX:late_put's."""
    tshark = needs_tshark()
    out, res = annotated(tmp_path, PARTS)
    assert res.stderr.decode() == ("pcapca: 94 packets; 61 CA messages; "
                                   "1 packets skipped (1 TCP without CA data)\n")
    names = sorted(p.name for p in out.iterdir())
    assert names == [p.split("/")[-1] for p in PARTS]
    starts = [1]
    for part in PARTS[:-1]:
        starts.append(starts[-1] + packets_in(part))
    per_frame = expected_comments(FIXTURES / "ring.pcapng", starts)   # (the joined file)
    first = 1
    for part in PARTS:
        theirs = frames(tshark, FIXTURES.parent / part)
        ours = frames(tshark, out / part.split("/")[-1])
        assert len(ours) == len(theirs) == packets_in(part)
        for n, (epoch, raw, _, iface, length) in theirs.items():
            assert ours[n][0] == epoch and ours[n][1] == raw and ours[n][4] == length
            assert ours[n][2] == per_frame.get(first + n - 1, [])
        first += len(theirs)
    second = frames(tshark, out / PARTS[1].split("/")[-1])
    texts = [c for f in second.values() for c in f[2]]
    assert len(texts) == 12
    assert sum(c.startswith("FIX:counter EventAddResponse(") for c in texts) == 11
    assert sum(c.startswith("FIX:late_put WriteNotifyResponse(") for c in texts) == 1


def test_annotate_pieces_of_a_pcap(tmp_path):
    """Legacy pcap pieces: each gets a pcapng of its own; the comments are
    those of the whole capture."""
    tshark = needs_tshark()
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    split_pcap(fixture("corpus_libca.pcap"), a, b, 400)
    out, _ = annotated(tmp_path, [a, b])
    whole = tmp_path / "whole.pcapng"
    run_cli("annotate", fixture("corpus_libca.pcap"), whole, check=0)
    joined = frames(tshark, whole)
    first, second = frames(tshark, out / "a.pcapng"), frames(tshark, out / "b.pcapng")
    assert len(first) == 399 and len(first) + len(second) == len(joined) == 807
    assert {n: f[:3] for n, f in first.items()} == {n: joined[n][:3] for n in first}
    # (req= in a tag is a frame of its own file: gone when the request is in
    # a.pcap; a comment cut to fit keeps a few more or fewer characters then)
    def cut(comment):
        return re.sub(r"^(.{1000}).*…\[cut by pcapca: \d+ bytes\]", r"\1…", comment,
                      flags=re.S)

    def local(comment):
        return cut(re.sub(r" req=(\d+)", lambda m: "" if int(m[1]) <= 399
                          else f" req={int(m[1]) - 399}", comment))
    assert {n: f[:2] + ([cut(c) for c in f[2]],) for n, f in second.items()} == {
        n: joined[n + 399][:2] + ([local(c) for c in joined[n + 399][2]],) for n in second}
    assert any(f[2] for f in second.values())
    assert any(" req=" not in c and " lat=" in c for f in second.values() for c in f[2])


def test_annotate_several_strict_keeps_the_files_done(tmp_path):
    """--strict stops at the first problem: the files finished before it
    stay, the one being written does not."""
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(fixture("basic.pcap").read_bytes()[:3000])
    out, res = annotated(tmp_path, [fixture("noise.pcap"), cut], "--strict", "-q", check=1)
    assert sorted(p.name for p in out.iterdir()) == []       # noise.pcap has decode problems
    out2, res = annotated(tmp_path, [fixture("basic.pcap"), cut], "--strict", "-q", check=1)
    assert sorted(p.name for p in out2.iterdir()) == ["basic.pcapng"]
    notes = res.stderr.decode().splitlines()      # (cut.pcap is basic.pcap's start again)
    assert len(notes) == 2 and "the files are not in time order" in notes[0]
    assert notes[1] == (f"pcapca: {cut}, frame 29, byte offset 2920: capture ends inside a "
                        f"packet: 64 of 82 bytes")


def test_annotate_several_without_strict_writes_everything_readable(tmp_path):
    tshark = needs_tshark()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(fixture("basic.pcap").read_bytes()[:3000])
    out, res = annotated(tmp_path, [cut, fixture("noise.pcap")], "-q", check=1)
    assert sorted(p.name for p in out.iterdir()) == ["cut.pcapng", "noise.pcapng"]
    assert len(frames(tshark, out / "cut.pcapng")) == 28
    assert len(frames(tshark, out / "noise.pcapng")) == 50


def test_annotate_output_names():
    from pcapca.cli.cmd_annotate import output_name
    assert [output_name(p) for p in ("/x/ring_00001_2026.pcapng", "a.pcap", "a.pcap.gz",
                                     "capture.pcap1", "trace", "b.cap")] == [
        "ring_00001_2026.pcapng", "a.pcapng", "a.pcapng", "capture.pcap1.pcapng",
        "trace.pcapng", "b.pcapng"]


def test_annotate_several_refuses_before_writing(tmp_path):
    ring = tmp_path / "ring"
    shutil.copytree(FIXTURES / "ring", ring)
    copies = sorted(str(p) for p in ring.iterdir())
    before = {p: open(p, "rb").read() for p in copies}
    cases = [
        ((*copies, ring), "is an input file: refusing to overwrite it"),
        ((*copies, tmp_path / "no-dir"), "OUT must be a directory"),
        ((fixture("basic.pcap"), fixture("basic.pcap"), tmp_path), "would both be written to"),
        (("-", fixture("basic.pcap"), tmp_path), "stdin (-) only as its one input"),
        ((fixture("basic.pcap"), "README.md", tmp_path), "README.md: not a pcap or pcapng file"),
    ]
    for args, message in cases:
        res = run_cli("annotate", *args, check=2)
        assert message in res.stderr.decode(), args
        assert len(res.stderr.decode().splitlines()) == 1
    assert {p: open(p, "rb").read() for p in copies} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ring"]


def test_files_out_of_time_order_get_a_note():
    """A tcpdump -C set globbed as capture.pcap1, capture.pcap10,
    capture.pcap2... is read out of order: pcapca says so for each file
    whose first packet is older than the latest before it, and goes on
    (nothing is wrong with the files: exit 0, --strict does not stop)."""
    backwards = PARTS[::-1]
    res = run_cli("print", "-f", "{frame}", *backwards, check=0)
    notes = res.stderr.decode().splitlines()
    # the packets' time stamps (dumpcap: nanoseconds, if_tsresol 9)
    ts = {}
    for p in PARTS[:3]:
        d = (FIXTURES.parent / p).read_bytes()
        ts[p] = [hi << 32 | lo for at, btype, _ in blocks(d) if btype == 6
                 for hi, lo in [struct.unpack_from("<II", d, at + 12)]]
    assert notes[:2] == [
        f"pcapca: {PARTS[i]}, frame 1: its first packet ({iso(ts[PARTS[i]][0])}) is older "
        f"than the last one of {PARTS[2]} ({iso(max(ts[PARTS[2]]))}): the files are not in "
        f"time order, or they overlap; they are read in the order given (a tcpdump -C set "
        f"sorts right with ls -v)" for i in (1, 0)]
    assert len(notes) == 3 and "capture problems" not in notes[2]
    assert len(res.stdout.decode().splitlines()) == 61
    strict = run_cli("print", "--strict", "-q", "-f", "{frame}", *backwards, check=0)
    assert strict.stdout == res.stdout and strict.stderr.decode().splitlines() == notes[:2]
    assert run_cli("print", "-f", "{frame}", *PARTS, check=0).stderr.decode().count("\n") == 1


def test_a_set_of_mixed_formats(tmp_path):
    """pcapng, gzip-compressed pcap and pcap in one set: one capture still
    (the pcapng made by annotate, whose comments print does not read)."""
    import gzip
    a, rest, b, c = (tmp_path / n for n in ("a.pcap", "rest.pcap", "b.pcap", "c.pcap"))
    split_pcap(fixture("corpus_libca.pcap"), a, rest, 300)
    split_pcap(rest, b, c, 300)
    run_cli("annotate", "-q", a, tmp_path / "a.pcapng", check=0)
    (tmp_path / "b.pcap.gz").write_bytes(gzip.compress(b.read_bytes()))
    parts = [tmp_path / "a.pcapng", tmp_path / "b.pcap.gz", c]
    assert lines("-f", FORMAT, *parts) == lines("-f", FORMAT, fixture("corpus_libca.pcap"))
    assert list(dict.fromkeys(lines("-f", "{file}", *parts))) == [str(p) for p in parts]


# ---------------------------------------------------------------- property
def _records(items):
    from pcapca.output.reprs import record_repr
    from pcapca.ca.records import Decoded
    return [(r.frame, r.name, r.pv, r.request_frame, r.latency, r.role, record_repr(r))
            for item in items if item.__class__ is Decoded for r in item.records]


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(["basic.pcap", "corpus_libca.pcap", "reuse.pcap", "noise.pcap",
                             "lossy.pcap", "mtu1500.pcap", "midstream.pcap", "bigarray.pcap"]),
       cuts=st.lists(st.floats(0, 1), min_size=1, max_size=3), filtered=st.booleans())
def test_any_cut_of_a_capture_reads_as_the_whole(name, cuts, filtered):
    """Property: a real capture cut into files anywhere between packets
    decodes, read as a set, to the same records as the whole (frames, PV
    names, pairs, latencies, texts), with or without the --pv shortcut."""
    import tempfile
    from pcapca.capture.sets import FileFrames
    from pcapca.filters import Filter
    from pcapca.pipeline import decode, decode_files
    from pcapca.capture.progress import open_with_progress
    data = fixture(name).read_bytes()
    head, recs = data[:24], records(data)
    at = sorted({int(c * len(recs)) for c in cuts} | {0, len(recs)})
    flt = Filter.build(pv=["FIX:dbl", "CORPUS:dbl", "FIX:wf"]) if filtered else None
    drops = flt.drops if flt is not None else None
    whole = _records(decode(str(fixture(name)), drops=drops))
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, (a, b) in enumerate(zip(at, at[1:])):
            path = f"{tmp}/part{i}.pcap"
            with open(path, "wb") as f:
                f.write(build(head, recs[a:b]))
            paths.append(path)
        files = FileFrames(paths)
        parts = _records(decode_files(files, drops=drops,
                                      opener=lambda p: open_with_progress(p, enabled=False)))
        if flt is not None:
            whole = [r for r in whole if r[2] in ("FIX:dbl", "CORPUS:dbl", "FIX:wf")]
            parts = [r for r in parts if r[2] in ("FIX:dbl", "CORPUS:dbl", "FIX:wf")]
        assert parts == whole
        assert files.starts == [a + 1 for a in at[:-1]]


@pytest.mark.parametrize("command", ["print", "stats", "annotate"])
def test_a_pipe_among_several_captures_is_read_whole(tmp_path, command):
    """``pcapca print a.pcap <(tcpdump -r ...)``: a named pipe among the
    files is not probed before reading (the bytes a probe took would be lost
    to the reading); it is read once, when its turn comes."""
    import os
    import threading
    fifo = tmp_path / "pipe.pcap"
    os.mkfifo(fifo)
    data = fixture("reuse.pcap").read_bytes()

    def feed():
        with open(fifo, "wb") as f:
            f.write(data)
    writer = threading.Thread(target=feed)
    writer.start()
    args = {"print": ("-q", "-f", "{file} {pv} {name}"), "stats": ("-q", "--json"),
            "annotate": ("-q",)}[command]
    out = tmp_path / "out"
    out.mkdir()
    res = run_cli(command, *args, fixture("basic.pcap"), fifo,
                  *([out] if command == "annotate" else []), check=0)
    writer.join(timeout=30)
    assert res.stderr == b""
    if command == "print":
        rows = res.stdout.decode().splitlines()
        alone = lines("-q", "-f", "{pv} {name}", fixture("reuse.pcap"))
        assert [r.split(" ", 1)[1] for r in rows if r.startswith(str(fifo))] == alone
    elif command == "stats":
        files = json.loads(res.stdout)["capture"]["files"]
        assert [(f["path"], f["packets"]) for f in files] == [
            (str(fixture("basic.pcap")), 54), (str(fifo), 54)]
    else:
        assert sorted(p.name for p in out.iterdir()) == ["basic.pcapng", "pipe.pcapng"]
        assert packets_in(out / "pipe.pcapng") == 54


def test_python_api_reads_a_list_of_captures_as_one():
    """pcapca.read([...]): the ring's files give the records of the joined
    file (frames across the files, PV names and pairs carried over); an
    unreadable file is refused before any record."""
    import pcapca
    from pcapca.capture.reader import CaptureFormatError
    fields = lambda r: (r.frame, r.pv, r.name, r.request_frame, r.latency, repr(r.command))
    got = [fields(r) for r in pcapca.read([FIXTURES.parent / p for p in PARTS])]
    assert got == [fields(r) for r in pcapca.read(fixture("ring.pcapng"))]
    assert len(got) == 61
    problems = []
    records = pcapca.read((fixture("basic.pcap"), FIXTURES.parent / "README.md"),
                          on_problem=problems.append)
    with pytest.raises(CaptureFormatError, match="README.md: not a pcap or pcapng file"):
        next(records)
    assert problems == []
