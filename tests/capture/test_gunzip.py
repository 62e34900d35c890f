"""gzip-compressed captures: read as Wireshark reads them (the same packets as
the capture uncompressed), and damaged gzip data reported with the byte of the
compressed file where it is, keeping everything before it."""
import gzip
import re
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from tests.conftest import fixture, live_print, run_cli
from pcapca.capture.gunzip import Gunzip
from pcapca.capture.sources import ByteSource
from tests.builders import build, data, offsets, records

BASIC = "basic.pcap"


def pack(raw: bytes) -> bytes:
    return gzip.compress(raw, mtime=0)


def put(tmp_path, name: str, raw: bytes):
    path = tmp_path / name
    path.write_bytes(raw)
    return path


def err_lines(res):
    return res.stderr.decode().splitlines()


def labelled(lines):
    """The problem lines of an uncompressed run, as a gzip-compressed run of the
    same bytes says them: offsets are those of the decompressed capture."""
    return [re.sub(r"(byte offset \d+)", r"\1 of the decompressed capture", line)
            for line in lines]


# ------------------------------------------------------------ intact files


@pytest.mark.parametrize("name, pv, lines", [(BASIC, "FIX:dbl", 17),
                                             ("session.pcapng", "FIX:enum", 27),
                                             ("twoif.pcapng", "FIX:long", 9)])
@pytest.mark.parametrize("args", [(), ("--json",), ("--pv",)])
def test_a_compressed_capture_prints_what_the_capture_does(tmp_path, name, pv, lines, args):
    """(``--pv`` takes the filter's bulk path, which reads the decompressed buffer.)"""
    plain = fixture(name)
    packed = put(tmp_path, name + ".gz", pack(plain.read_bytes()))
    args = args + (pv,) if args == ("--pv",) else args
    want = run_cli("print", plain, *args, check=0)
    got = run_cli("print", packed, *args, check=0)
    assert want.stdout.count(b"\n") == lines if "--pv" in args else want.stdout.count(b"\n") > lines
    assert got.stdout == want.stdout and got.stderr == want.stderr


def test_stdin_annotate_and_stats_read_it_too(tmp_path):
    plain = fixture("session.pcapng")
    raw = pack(plain.read_bytes())
    packed = put(tmp_path, "session.pcapng.gz", raw)
    assert run_cli("print", "-", input=raw, check=0).stdout == \
        run_cli("print", plain, check=0).stdout
    run_cli("annotate", plain, tmp_path / "a.pcapng", check=0)
    run_cli("annotate", packed, tmp_path / "b.pcapng", check=0)
    assert (tmp_path / "a.pcapng").read_bytes() == (tmp_path / "b.pcapng").read_bytes()
    want = run_cli("stats", plain, check=0).stdout.decode()
    got = run_cli("stats", packed, check=0).stdout.decode()
    assert got == want.replace(str(plain), str(packed))
    assert "CA messages 120" in got


def test_several_members_and_zero_padding_are_one_capture(tmp_path):
    """What `cat a.gz b.gz` and gzip's NUL padding make (gzip reads both)."""
    raw = data(BASIC)
    cuts = [0, 5, 1000, 1001, 4000, len(raw)]
    joined = b"".join(pack(raw[a:b]) for a, b in zip(cuts, cuts[1:])) + bytes(300)
    want = run_cli("print", fixture(BASIC), check=0)
    got = run_cli("print", put(tmp_path, "joined.pcap.gz", joined), check=0)
    assert got.stdout == want.stdout and got.stderr == want.stderr


def test_a_live_compressed_pipe_shows_messages_before_it_ends():
    """A writer that flushes its gzip stream (zlib's Z_SYNC_FLUSH) is shown as
    it comes, as an uncompressed pipe is."""
    raw = data(BASIC)
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    first = comp.compress(raw[:len(raw) // 2]) + comp.flush(zlib.Z_SYNC_FLUSH)
    rest = comp.compress(raw[len(raw) // 2:]) + comp.flush()
    first_line, after, status = live_print(first, rest, "-q", "--format", "{frame} {name}")
    assert first_line == b"1 VersionRequest\n", "no output before end of input"
    assert after.count(b"\n") == 38 and status == 0


# ------------------------------------------------------------ damaged files


def test_a_cut_compressed_file_keeps_what_it_holds(tmp_path):
    raw = data(BASIC)
    full = pack(raw)
    for cut in (700, 1500, len(full) - 4):
        part = zlib.decompressobj(31).decompress(full[:cut])     # what can be had
        assert 0 < len(part) < len(raw) or cut == len(full) - 4
        path = put(tmp_path, "cut.pcap.gz", full[:cut])
        want = run_cli("print", put(tmp_path, "part.pcap", part))
        got = run_cli("print", path)
        assert got.stdout == want.stdout and got.returncode == 1
        *problems, summary = err_lines(got)
        assert problems == [
            f"pcapca: {path}: the compressed file ends early, at compressed byte {cut}: "
            f"the gzip data that starts at compressed byte 0 has no end "
            f"({len(part)} bytes decompressed)"] + labelled(err_lines(want)[:-1])
        n = 1 if part == raw else 2            # (cut in the trailer: every packet is there)
        assert len(problems) == n and f"CA messages; {n} capture problems" in summary


def test_damaged_deflate_data_names_its_compressed_byte(tmp_path):
    """zlib rejects a block at a known byte (after a full flush, a block
    header of type 3, which does not exist): everything before it is read."""
    raw = data(BASIC)
    keep = offsets(raw)[20]                   # the first 20 packets, whole
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    head = comp.compress(raw[:keep]) + comp.flush(zlib.Z_FULL_FLUSH)
    damaged = head + b"\x07" + (comp.compress(raw[keep:]) + comp.flush())[1:]
    path = put(tmp_path, "damaged.pcap.gz", damaged)
    want = run_cli("print", put(tmp_path, "first20.pcap", raw[:keep]), check=0)
    got = run_cli("print", path, check=1)
    assert got.stdout == want.stdout and want.stdout.count(b"\n") == 20
    assert err_lines(want) == ["pcapca: 20 packets; 20 CA messages"]
    assert err_lines(got) == [
        f"pcapca: {path}: the gzip data is damaged at compressed byte {len(head)} "
        f"(invalid block type); the capture is read up to there ({keep} bytes decompressed)",
        "pcapca: 20 packets; 20 CA messages; 1 capture problems"]


def test_a_failed_crc_is_reported_after_the_whole_capture(tmp_path):
    raw = data(BASIC)
    full = bytearray(pack(raw))
    full[-6] ^= 0xFF                           # in the CRC-32 of the trailer
    path = put(tmp_path, "crc.pcap.gz", bytes(full))
    want = run_cli("print", fixture(BASIC), check=0)
    got = run_cli("print", path, check=1)
    assert got.stdout == want.stdout
    assert err_lines(got)[0] == (
        f"pcapca: {path}: the gzip data that starts at compressed byte 0 fails its CRC check "
        f"at compressed byte {len(full) - 5}: what it decompressed to is damaged somewhere "
        f"({len(raw)} bytes decompressed)")


def test_junk_after_the_compressed_data_is_named_and_ignored(tmp_path):
    full = pack(data(BASIC))
    path = put(tmp_path, "junk.pcap.gz", full + b"\0\0not gzip")
    want = run_cli("print", fixture(BASIC), check=0)
    got = run_cli("print", path, check=1)
    assert got.stdout == want.stdout
    assert err_lines(got)[0] == (
        f"pcapca: {path}: data that is not gzip follows the end of the compressed capture at "
        f"compressed byte {len(full) + 2}; it is ignored ({len(data(BASIC))} bytes decompressed)")


def test_damage_inside_the_decompressed_capture_names_its_offset_there(tmp_path):
    """The reader's and the decoder's byte offsets count the decompressed
    bytes, and say so."""
    head, recs = data(BASIC)[:24], records(data(BASIC))
    recs[16][3] = recs[16][3][:80]             # frame 17 cut by a snaplen (decoder problem)
    cut = build(head, recs)[:-30]              # and the file cut in its last record (reader)
    want = run_cli("print", put(tmp_path, "d.pcap", cut), check=1)
    got = run_cli("print", put(tmp_path, "d.pcap.gz", pack(cut)), check=1)
    lines = err_lines(got)
    assert got.stdout == want.stdout
    assert lines == labelled(err_lines(want))
    off = offsets(build(head, recs))
    assert lines[0].startswith(f"pcapca: frame 17, byte offset {off[16]} of the decompressed "
                               f"capture: ")
    assert lines[1].startswith(f"pcapca: frame 54, byte offset {off[53]} of the decompressed "
                               f"capture: capture ends inside a packet")
    stats = run_cli("stats", tmp_path / "d.pcap.gz", check=1)
    assert err_lines(stats) == lines[:2]


@pytest.mark.parametrize("content, message", [
    (pack(b""), "gzip-compressed, and what it holds is not a capture: "
                "empty input, not a capture file"),
    (pack(b"hello\n"), "gzip-compressed, and what it holds is not a capture: "
                       "not a pcap or pcapng file (magic bytes 68656c6c)"),
    (pack(pack(b"x")), "gzip-compressed twice; pcapca decompresses once: "
                       "gzip -dc {path} | pcapca ... -"),
    (b"\x1f\x8b", "the compressed file ends early, at compressed byte 2: the gzip data that "
                  "starts at compressed byte 0 has no end (0 bytes decompressed)"),
    (b"\x28\xb5\x2f\xfd\0\0\0\0", "a zstd-compressed file; pcapca reads pcap, pcapng and "
                                  "gzip-compressed captures: decompress it first, e.g. "
                                  "zstd -dc {path} | pcapca print -"),
    (b"BZh91AY&SY", "a bzip2-compressed file; pcapca reads pcap, pcapng and gzip-compressed "
                    "captures: decompress it first, e.g. bzip2 -dc {path} | pcapca print -"),
])
@pytest.mark.parametrize("command", ["print", "stats"])
def test_what_is_not_a_compressed_capture_is_one_line(tmp_path, content, message, command):
    path = put(tmp_path, "x.gz", content)
    res = run_cli(command, path, check=2)
    assert res.stdout == b""
    assert err_lines(res) == [f"pcapca: error: {path}: " + message.format(path=path)]


# ------------------------------------------------------------ the stream itself


def gunzip_all(raw: bytes, piece: int):
    """Everything a Gunzip gives for ``raw`` arriving ``piece`` bytes at a time."""
    class Slow:
        def __init__(self):
            self.at = 0

        def read1(self, n):
            out = raw[self.at:self.at + min(n, piece)]
            self.at += len(out)
            return out

    gz = Gunzip(ByteSource(Slow(), "t.gz"))
    out = []
    while True:
        chunk = gz.read1(1 << 20)
        if not chunk:
            return b"".join(out), gz.problem
        out.append(chunk)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.binary(max_size=3000), st.integers(0, 4000), st.integers(1, 70000))
def test_any_cut_gives_what_zlib_can_and_a_problem(payload, cut, piece):
    full = pack(payload)
    cut = min(cut, len(full))
    got, problem = gunzip_all(full[:cut], piece)
    assert got == zlib.decompressobj(31).decompress(full[:cut])
    if cut == len(full):
        assert got == payload and problem is None
    else:
        assert problem is not None and f"at compressed byte {cut}:" in problem.message


def zlib_until_it_fails(raw: bytes) -> bytes:
    """What zlib decompresses from one gzip member fed a byte at a time, up
    to the byte it rejects or the member's end."""
    d, out = zlib.decompressobj(31), []
    for i in range(len(raw)):
        try:
            out.append(d.decompress(raw[i:i + 1]))
        except zlib.error:
            break
        if d.eof:
            break
    return b"".join(out)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.binary(min_size=1, max_size=3000), st.data(), st.integers(1, 70000))
def test_any_flipped_byte_gives_what_zlib_can_and_a_problem(payload, d, piece):
    """Damaged deflate data may decompress to garbage before zlib can tell
    (the CRC catches it at the end): the stream gives exactly what zlib gives,
    never raises, and has a problem unless the flip is one gzip ignores."""
    full = bytearray(pack(payload))
    at = d.draw(st.integers(0, len(full) - 1))
    full[at] ^= d.draw(st.integers(1, 255))
    got, problem = gunzip_all(bytes(full), piece)
    assert got == zlib_until_it_fails(bytes(full))
    if problem is None:
        assert got == payload and 4 <= at < 10          # mtime, extra flags, OS


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.binary(max_size=500), st.integers(0, 3)), min_size=1, max_size=5),
       st.integers(1, 70000))
def test_members_and_zeros_between_them_read_as_gzip_reads_them(members, piece):
    """However the pieces fall (a member's magic split over two reads...)."""
    raw = b"".join(pack(payload) + bytes(zeros) for payload, zeros in members)
    got, problem = gunzip_all(raw, piece)
    assert problem is None
    assert got == gzip.decompress(raw) == b"".join(payload for payload, _ in members)
