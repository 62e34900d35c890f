"""Tests for pcapca.capture.pcapng: reading and writing pcapng.

Inputs are built in code with struct (helpers below), outputs are checked
with an independent struct parser (``parse_file``) and, where installed,
with tshark.
"""
from __future__ import annotations

import glob
import io
import json
import os
import struct
import subprocess
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pcapca.capture.reader import _SourceFile
from pcapca.items import Interface, Packet, Passthrough, Problem
from pcapca.capture.pcapng import (
    MAX_OPTION_LEN, PcapngWriter, _CountingReader, cut_comment, pack_epb, read_pcapng,
)
from pcapca.capture.sources import ByteSource
from tests.conftest import FIXTURES


# ------------------------------------------------------------ building input


def opt(code, value, e="<"):
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def opts(*items, e="<"):
    return b"".join(items) + (struct.pack(e + "HH", 0, 0) if items else b"")


def block(btype, body, e="<"):
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def shb(e="<", options=b""):
    return block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options, e)


def idb(linktype=1, snaplen=0, options=b"", e="<"):
    return block(1, struct.pack(e + "HHI", linktype, 0, snaplen) + options, e)


def tsresol(byte, e="<", name=None, extra=b""):
    items = [opt(9, bytes([byte]), e)]
    if name:
        items.insert(0, opt(2, name.encode(), e))
    return opts(*items, e=e) if not extra else b"".join(items) + extra + b"\0\0\0\0"


def epb(iid, ticks, data, orig=None, options=b"", e="<"):
    orig = len(data) if orig is None else orig
    body = struct.pack(e + "5I", iid, ticks >> 32, ticks & 0xFFFFFFFF, len(data), orig)
    return block(6, body + data + b"\0" * (-len(data) % 4) + options, e)


def spb(data, orig=None, e="<"):
    orig = len(data) if orig is None else orig
    return block(3, struct.pack(e + "I", orig) + data, e)


def pb(iid, ticks, data, drops=0, options=b"", e="<"):
    body = struct.pack(e + "HH4I", iid, drops, ticks >> 32, ticks & 0xFFFFFFFF,
                       len(data), len(data))
    return block(2, body + data + b"\0" * (-len(data) % 4) + options, e)


def simple_file(n=3):
    """SHB + IDB (ns) + n EPBs; returns (bytes, list of block offsets)."""
    parts = [shb(), idb(1, 0, tsresol(9))]
    parts += [epb(0, 1_000_000_000 * (i + 1) + i, bytes([i]) * (10 + i)) for i in range(n)]
    offsets, pos = [], 0
    for p in parts:
        offsets.append(pos)
        pos += len(p)
    return b"".join(parts), offsets


def read_all(data, **kw):
    return list(read_pcapng(io.BytesIO(data), **kw))


def packets(items):
    return [i for i in items if isinstance(i, Packet)]


def problems(items):
    return [i for i in items if isinstance(i, Problem)]


def copy_all(items, comments=lambda p: [], **kw):
    out = io.BytesIO()
    w = PcapngWriter(out, **kw)
    for it in items:
        if isinstance(it, Passthrough):
            w.write_passthrough(it)
        elif isinstance(it, Packet):
            w.write_packet(it, comments(it))
    w.close()
    return out.getvalue()

# ------------------------------------------------- independent output parser


def parse_file(data):
    """Blocks of a pcapng file, parsed with struct only (not read_pcapng)."""
    out, pos, e = [], 0, None
    while pos < len(data):
        if data[pos:pos + 4] == b"\x0a\x0d\x0d\x0a":
            e = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        btype, n = struct.unpack_from(e + "II", data, pos)
        assert n % 4 == 0 and n >= 12
        assert struct.unpack_from(e + "I", data, pos + n - 4)[0] == n
        b = {"type": btype, "endian": e, "raw": data[pos:pos + n], "offset": pos}
        body = data[pos + 8:pos + n - 4]
        if btype == 6:
            iid, th, tl, cap, orig = struct.unpack_from(e + "5I", body)
            b.update(iid=iid, ticks=(th << 32) | tl, data=body[20:20 + cap], orig=orig,
                     options=parse_opts(body, 20 + cap + (-cap % 4), e))
        elif btype == 1:
            b.update(linktype=struct.unpack_from(e + "H", body)[0],
                     snaplen=struct.unpack_from(e + "I", body, 4)[0],
                     options=parse_opts(body, 8, e))
        elif btype == 0x0A0D0D0A:
            b.update(options=parse_opts(body, 16, e))
        out.append(b)
        pos += n
    return out


def parse_opts(body, i, e):
    res = []
    while i + 4 <= len(body):
        code, n = struct.unpack_from(e + "HH", body, i)
        if code == 0:
            break
        res.append((code, body[i + 4:i + 4 + n]))
        i += 4 + n + (-n % 4)
    return res


def marker(n, e="<"):
    return (2988, struct.pack(e + "I", 32473) + b"pcapca:comments=%d" % n)

# -------------------------------------------------------------------- tshark


def tshark_fields(path, fn, *fields):
    cmd = [path, "-r", str(fn), "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=|"]
    for f in fields:
        cmd += ["-e", f]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return [line.split("\t") for line in res.stdout.splitlines()]


def tshark_bytes(path, fn):
    """Each record's bytes as tshark sees them ({frame number: bytes})."""
    res = subprocess.run([path, "-r", str(fn), "-T", "json", "-x"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = {}
    for rec in json.loads(res.stdout):
        layers = rec["_source"]["layers"]
        raw = layers.get("frame_raw")
        out[int(layers["frame"]["frame.number"])] = bytes.fromhex(raw[0]) if raw else b""
    return out


def epoch(ns):
    return f"{ns // 10**9}.{ns % 10**9:09d}"

# ====================================================================== read


def test_reads_blocks_in_order_with_frames_offsets_and_raw():
    data, off = simple_file(3)
    items = read_all(data)
    assert [type(i).__name__ for i in items] == ["Passthrough", "Passthrough",
                                                 "Packet", "Packet", "Packet"]
    assert items[0].block_type == 0x0A0D0D0A and items[0].offset == 0
    assert items[0].raw == data[:off[1]] and items[0].endian == "<"
    assert items[1].block_type == 1 and items[1].raw == data[off[1]:off[2]]
    for n, p in enumerate(packets(items)):
        assert p.frame == n + 1
        assert p.offset == off[2 + n]
        assert p.raw == data[off[2 + n]:(off + [len(data)])[3 + n]]
        assert p.data == bytes([n]) * (10 + n) and p.orig_len == 10 + n
        assert p.ts == 1_000_000_000 * (n + 1) + n
        assert p.interface == Interface(1, 0, 10**9, None, items[1].raw)
    assert problems(items) == []


def test_first_frame_and_empty_stream():
    data, _ = simple_file(2)
    assert [p.frame for p in packets(read_all(data, first_frame=10))] == [10, 11]
    assert read_all(b"") == []


def test_two_sections_interfaces_resolutions_and_big_endian():
    data = (shb() + idb(1, 0, tsresol(9, name="eth0")) + idb(113, 96, tsresol(6))
            + idb(1, 0, tsresol(0x80 | 20))
            + idb(1, 0, opts(opt(9, b"\x0c"), opt(14, struct.pack("<q", -100))))
            + epb(0, 1_700_000_000_123_456_789, b"a")
            + epb(1, 1_700_000_000_123_456, b"bb")
            + epb(2, 3 * 2**20 + 1, b"ccc")
            + epb(3, 1_234_567_891_234_567, b"d")
            + shb(">") + idb(1, 0, e=">")          # no if_tsresol: microseconds
            + idb(147, 0, tsresol(9, e=">"), e=">")
            + epb(1, 5, b"e", e=">") + epb(0, 7, b"f", e=">"))
    items = read_all(data)
    assert problems(items) == []
    p = packets(items)
    assert [x.frame for x in p] == [1, 2, 3, 4, 5, 6]
    assert [x.ts for x in p] == [1_700_000_000_123_456_789, 1_700_000_000_123_456_000,
                                 3_000_000_953, 1_234_567_891_234 - 100 * 10**9, 5, 7000]
    assert [x.interface.tsresol for x in p] == [10**9, 10**6, 2**20, 10**12, 10**9, 10**6]
    assert p[0].interface.name == "eth0" and p[1].interface.linktype == 113
    assert p[1].interface.snaplen == 96
    assert [x.interface_id for x in p] == [0, 1, 2, 3, 1, 0]
    assert [x.endian for x in p] == ["<"] * 4 + [">"] * 2
    assert p[4].interface.linktype == 147
    sections = [i for i in items if isinstance(i, Passthrough) and i.block_type == 0x0A0D0D0A]
    assert [s.endian for s in sections] == ["<", ">"]
    # every Passthrough comes before the packets that follow it in the file
    assert [i.offset for i in items] == sorted(i.offset for i in items)


def test_spb_and_obsolete_packet_block():
    data = (shb() + idb(1, 4, tsresol(9)) + spb(b"abcd", orig=60)
            + pb(0, 123, b"xyz", drops=2))
    p = packets(read_all(data))
    assert p[0].ts == 0 and p[0].data == b"abcd" and p[0].orig_len == 60
    assert p[0].interface_id == 0
    assert p[1].ts == 123 and p[1].data == b"xyz" and p[1].frame == 2


def test_other_blocks_pass_through():
    nrb = block(4, opts(opt(1, b"\x7f\0\0\x01localhost\0")))
    isb = block(5, struct.pack("<III", 0, 0, 0))
    dsb = block(10, struct.pack("<II", 0x544c534b, 4) + b"keys")
    cb = block(0xBAD, struct.pack("<I", 32473) + b"custom")
    cb2 = block(0x40000BAD, struct.pack("<I", 32473) + b"nocopy")
    unk = block(0x12345678, b"whatever")
    data = shb() + idb() + nrb + epb(0, 1, b"a") + isb + dsb + cb + cb2 + unk + epb(0, 2, b"b")
    items = read_all(data)
    assert [(type(i).__name__, getattr(i, "block_type", None)) for i in items] == [
        ("Passthrough", 0x0A0D0D0A), ("Passthrough", 1), ("Passthrough", 4),
        ("Packet", None), ("Passthrough", 5), ("Passthrough", 10),
        ("Passthrough", 0xBAD), ("Passthrough", 0x40000BAD),
        ("Passthrough", 0x12345678), ("Packet", None)]
    assert items[-2].raw == unk and items[6].raw == cb
    assert packets(items)[1].frame == 2


# python-pcapng pitfall: repeated non-repeatable options and repeated unknown
# option codes raise in python-pcapng when the IDB is decoded.
def test_idb_with_repeated_and_unknown_options():
    options = opts(opt(2, b"first"), opt(2, b"second"), opt(0x7777, b"u"),
                   opt(0x7777, b"v"), opt(9, b"\x09"), opt(9, b"\x06"),
                   opt(1, b"c1"), opt(1, b"c2"))
    data = shb(options=opts(opt(4, b"a"), opt(4, b"b"))) + idb(1, 0, options) + epb(0, 42, b"x")
    items = read_all(data)
    assert problems(items) == []
    p = packets(items)[0]
    assert p.interface.name == "first" and p.ts == 42 and p.interface.tsresol == 10**9


@pytest.mark.parametrize("value, what", [
    (b"\xff", "2**-127"), (bytes([100]), "10**-100"), (bytes([0x80 | 64]), "2**-64"),
    (bytes([20]), "10**-20"), (b"\x09\x09", "2 bytes")])
def test_bogus_tsresol_gives_problem_and_microseconds(value, what):
    data = shb() + idb(1, 0, opts(opt(9, value))) + epb(0, 7, b"x")
    items = read_all(data)
    probs = problems(items)
    assert len(probs) == 1 and not probs[0].fatal
    assert "if_tsresol" in probs[0].message and what in probs[0].message
    assert probs[0].offset == len(shb()) and probs[0].frame == 1
    assert packets(items)[0].ts == 7000 and packets(items)[0].interface.tsresol == 10**6


def test_unknown_interface_id_is_reported_and_skipped():
    data = shb() + idb() + epb(0, 1, b"a") + epb(3, 2, b"b") + epb(0, 3, b"c")
    items = read_all(data)
    (prob,) = problems(items)
    bad_off = len(shb() + idb() + epb(0, 1, b"a"))
    assert prob.offset == bad_off and prob.frame == 2 and not prob.fatal
    assert "interface 3" in prob.message
    assert [(p.frame, p.data) for p in packets(items)] == [(1, b"a"), (2, b"c")]
    # the block itself is still passed on, so a copy loses nothing
    assert copy_all(items) == data


# python-pcapng pitfall: it needs tell(), so pipes fail.  Read a pipe fed
# slowly in small chunks; the writer waits until the first packet has been
# yielded before sending the rest, which only works without read-ahead.
@pytest.mark.parametrize("buffering", [0, -1])
def test_reads_slow_pipe_without_read_ahead(buffering):
    parts = [shb(), idb(1, 0, tsresol(9)), epb(0, 1, b"first"), epb(0, 2, b"second")]
    rfd, wfd = os.pipe()
    first_seen = threading.Event()
    state = {}

    def writer():
        with os.fdopen(wfd, "wb", buffering=0) as f:
            for part in parts[:3]:
                for i in range(0, len(part), 5):
                    f.write(part[i:i + 5])
                    time.sleep(0.001)
            state["first_seen_in_time"] = first_seen.wait(10)
            f.write(parts[3])
        state["done"] = True

    t = threading.Thread(target=writer)
    t.start()
    items = []
    with os.fdopen(rfd, "rb", buffering=buffering) as f:
        assert not f.seekable()
        for item in read_pcapng(f):
            items.append(item)
            if isinstance(item, Packet) and item.frame == 1:
                assert "done" not in state
                first_seen.set()
    t.join()
    assert state["first_seen_in_time"]
    assert [p.data for p in packets(items)] == [b"first", b"second"]
    assert problems(items) == []


def test_counting_reader_tell_and_short_reads():
    class Trickle(io.RawIOBase):
        def __init__(self, data):
            self.data = data

        def readable(self):
            return True

        def read(self, n=-1):
            chunk, self.data = self.data[:min(n, 3)], self.data[min(n, 3):]
            return chunk

    r = _CountingReader(Trickle(b"0123456789"))
    assert r.read(7) == b"0123456" and r.tell() == 7
    r.unread(b"56")
    assert r.tell() == 5 and r.read(10) == b"56789" and r.tell() == 10
    data, _ = simple_file(2)
    assert [p.data for p in packets(read_pcapng(Trickle(data)))] == [b"\0" * 10, b"\1" * 11]

# ------------------------------------------------------------------ damage


def test_truncated_in_block_header():
    data, off = simple_file(3)
    items = read_all(data[:off[4] + 5])
    assert [p.frame for p in packets(items)] == [1, 2]
    (prob,) = problems(items)
    assert prob.fatal and prob.offset == off[4] and prob.frame == 3
    assert "truncated" in prob.message and "after 5" in prob.message
    assert items[-1] is prob


def test_truncated_in_block_body():
    data, off = simple_file(3)
    items = read_all(data[:off[4] + 40])
    (prob,) = problems(items)
    blen = len(data) - off[4]
    assert prob.message == (f"pcapng block at byte offset {off[4]} is truncated "
                            f"(needs {blen} bytes, file ends after 40)")
    assert prob.fatal and prob.offset == off[4] and len(packets(items)) == 2


def test_truncated_section_header():
    items = read_all(shb()[:20])
    (prob,) = problems(items)
    assert prob.fatal and prob.offset == 0 and "truncated" in prob.message


@pytest.mark.parametrize("bad_len, why", [(51, "not a multiple of 4"), (8, "smaller than 12"),
                                          (0x7FFFFFF0, "larger than the 256 MiB limit")])
def test_bad_block_length_resynchronises(bad_len, why):
    data, off = simple_file(3)
    data = bytearray(data)
    struct.pack_into("<I", data, off[3] + 4, bad_len)
    items = read_all(bytes(data))
    (prob,) = problems(items)
    assert not prob.fatal and prob.offset == off[3] and why in prob.message
    assert f"reading resumed at byte offset {off[4]}" in prob.message
    assert [(p.frame, p.offset) for p in packets(items)] == [(1, off[2]), (2, off[4])]


def test_trailing_length_mismatch_resynchronises():
    data, off = simple_file(3)
    data = bytearray(data)
    struct.pack_into("<I", data, off[4] - 4, 1234)
    items = read_all(bytes(data))
    (prob,) = problems(items)
    assert "1234 at its end" in prob.message and prob.offset == off[3]
    assert f"resumed at byte offset {off[4]}" in prob.message
    assert [p.offset for p in packets(items)] == [off[2], off[4]]


def test_resynchronises_on_next_section():
    data, off = simple_file(2)
    garbage = b"\x00\x01\x02\x03" * 10
    new = shb(">") + idb(e=">") + epb(0, 9, b"z", e=">")
    items = read_all(data + garbage + new)
    (prob,) = problems(items)
    assert prob.offset == len(data) and f"resumed at byte offset {len(data) + 40}" in prob.message
    assert [p.data for p in packets(items)][-1] == b"z"


def test_garbage_without_valid_block_is_fatal():
    data, off = simple_file(2)
    items = read_all(data + b"\xff" * 64)
    (prob,) = problems(items)
    assert prob.fatal and prob.offset == len(data) and "reading stopped" in prob.message
    assert len(packets(items)) == 2 and items[-1] is prob


def test_lying_length_inside_file_resynchronises():
    """A length too large for the file, with valid blocks after it."""
    data, off = simple_file(3)
    data = bytearray(data)
    struct.pack_into("<I", data, off[3] + 4, 4000)
    items = read_all(bytes(data))
    (prob,) = problems(items)
    assert "truncated" in prob.message and f"resumed at byte offset {off[4]}" in prob.message
    assert len(packets(items)) == 2


def test_resync_skips_a_block_running_past_the_end():
    """After a bad length, a block header whose length runs 59 KB past the
    end of the file is not where reading resumes (its end is not there to
    check): the valid blocks after it are read."""
    data, off = simple_file(3)
    rest = len(data) - off[3]
    bogus = struct.pack("<II", 6, 13) + struct.pack("<II", 6, rest + 59 * 1024 + 8)
    items = read_all(data[:off[3]] + bogus + data[off[3]:])
    (prob,) = problems(items)
    assert not prob.fatal and prob.offset == off[3]
    assert prob.message.endswith(f"skipped 16 bytes, reading resumed at byte offset {off[3] + 16}")
    assert [(p.frame, p.offset) for p in packets(items)] == [(1, off[2]), (2, off[3] + 16),
                                                             (3, off[4] + 16)]


@pytest.mark.parametrize("data, text", [
    (b"\xd4\xc3\xb2\xa1" + b"\0" * 20, "does not start with a section header"),
    (b"\x0a\x0d\x0d\x0a\x1c\0\0\0XXXX" + b"\0" * 16, "byte-order magic")])
def test_not_pcapng(data, text):
    (prob,) = read_all(data)
    assert prob.fatal and prob.offset == 0 and text in prob.message


def test_packet_block_inconsistent_lengths():
    bad = block(6, struct.pack("<5I", 0, 0, 1, 500, 500) + b"abcd")
    short = block(6, struct.pack("<II", 0, 0))
    data = shb() + idb() + bad + short + epb(0, 1, b"ok")
    items = read_all(data)
    assert len(problems(items)) == 2 and not any(p.fatal for p in problems(items))
    assert [(p.frame, p.data) for p in packets(items)] == [(1, b"ok")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_input_never_raises(draw):
    data, off = simple_file(4)
    data = bytearray(data + shb(">") + idb(e=">") + epb(0, 5, b"big", e=">"))
    kind = draw.draw(st.sampled_from(["cut", "poke", "both"]))
    if kind in ("poke", "both"):
        pos = draw.draw(st.integers(0, len(data) - 1))
        data[pos:pos + 4] = draw.draw(st.binary(min_size=1, max_size=4))
    if kind in ("cut", "both"):
        data = data[:draw.draw(st.integers(0, len(data)))]
    items = read_all(bytes(data))
    assert all(isinstance(i, (Packet, Passthrough, Problem)) for i in items)
    assert sum(1 for i in items if isinstance(i, Problem) and i.fatal) <= 1
    frames = [p.frame for p in packets(items)]
    assert frames == list(range(1, len(frames) + 1))

class Trickle(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes per read, as a pipe
    fed packet by packet does."""

    def __init__(self, data: bytes, step: int):
        self.data, self.at, self.step = data, 0, step

    def readable(self):
        return True

    def read1(self, n=-1):
        n = self.step if n is None or n < 0 else min(n, self.step)
        chunk = self.data[self.at:self.at + n]
        self.at += len(chunk)
        return chunk

    read = read1


def read_buffered(data: bytes, step=None, **kw):
    """read_pcapng as pcapca reads a file or pipe: over a ByteSource, whose
    buffer lets the packet blocks already read be parsed in place."""
    stream = io.BytesIO(data) if step is None else Trickle(data, step)
    return list(read_pcapng(_SourceFile(ByteSource(stream)), **kw))


def damaged_files():
    data, _ = simple_file(6)
    yield data + shb(">") + idb(e=">") + epb(0, 5, b"big", e=">") + epb(0, 6, b"x" * 9, e=">")
    yield rich_file()
    yield shb() + idb(1, 0, tsresol(9)) + b"".join(epb(i % 2 and 1 or 0, i, bytes([i]) * i)
                                                   for i in range(40))
    with open(os.path.join(FIXTURES, "twoif.pcapng"), "rb") as f:
        yield f.read()[:6000]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_blocks_parsed_in_place_give_what_the_block_loop_gives(draw):
    """Packet blocks already buffered are parsed in place (``_epb_run``): on
    any input, damaged or cut, read from a file or from a pipe in any
    pieces, the items must be those of the loop that reads block by block
    (which ``read_pcapng`` uses on a stream with no buffer of its own)."""
    data = bytearray(draw.draw(st.sampled_from(list(damaged_files()))))
    kind = draw.draw(st.sampled_from(["none", "cut", "poke", "both"]))
    if kind in ("poke", "both"):
        pos = draw.draw(st.integers(0, len(data) - 1))
        data[pos:pos + 4] = draw.draw(st.binary(min_size=1, max_size=4))
    if kind in ("cut", "both"):
        data = data[:draw.draw(st.integers(0, len(data)))]
    step = draw.draw(st.sampled_from([None, 1, 5, 64, 333, 4096]))
    strict = draw.draw(st.booleans())
    want = read_all(bytes(data), strict=strict)
    assert read_buffered(bytes(data), step, strict=strict) == want


@pytest.mark.parametrize("name", ["twoif.pcapng", "session.pcapng", "ring.pcapng"])
def test_real_pcapng_parsed_in_place(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        data = f.read()
    want = read_all(data)
    assert len(packets(want)) > 10
    assert read_buffered(data) == want
    assert read_buffered(data, 1000) == want


# ==================================================================== write


def legacy_packets():
    eth = Interface(linktype=1, snaplen=65535, tsresol=10**6)
    sll = Interface(linktype=113, snaplen=262144, tsresol=10**9, name="any")
    return [
        Packet(1, 1_700_000_000_123_456_000, b"\x01" * 60, 60, eth),
        Packet(2, 1_700_000_000_999_999_999, b"\x02" * 33, 1500, sll),
        Packet(3, 1_700_000_001_000_000_001, b"", 0, eth),       # empty packet
        Packet(4, 1_700_000_002_000_000_000, b"\x04" * 5, 5, sll),
    ]


def write_legacy(comments, **kw):
    out = io.BytesIO()
    w = PcapngWriter(out, **kw)
    for p in legacy_packets():
        w.write_packet(p, comments.get(p.frame, []))
    w.close()
    return out.getvalue()


COMMENTS = {1: ["CA search for \"PV:1\"", "second"], 2: ["ünïcödé ✓"], 4: []}


def test_write_legacy_packets_structure():
    out = parse_file(write_legacy(COMMENTS))
    assert [b["type"] for b in out] == [0x0A0D0D0A, 1, 6, 1, 6, 6, 6]
    assert out[0]["endian"] == "<" and (4, b"pcapca") in out[0]["options"]
    assert out[1]["linktype"] == 1 and out[1]["snaplen"] == 65535
    assert (9, b"\x09") in out[1]["options"]
    assert out[3]["linktype"] == 113 and (2, b"any") in out[3]["options"]
    epbs = [b for b in out if b["type"] == 6]
    for b, p in zip(epbs, legacy_packets()):
        assert b["ticks"] == p.ts and b["data"] == p.data and b["orig"] == p.orig_len
    assert [b["iid"] for b in epbs] == [0, 1, 0, 1]
    assert epbs[0]["options"] == [(1, b"CA search for \"PV:1\""), (1, b"second"), marker(2)]
    assert epbs[1]["options"] == [(1, "ünïcödé ✓".encode()), marker(1)]
    assert epbs[2]["options"] == [] and epbs[3]["options"] == []
    assert epbs[2]["data"] == b""


def test_write_legacy_then_read_back():
    items = read_all(write_legacy(COMMENTS))
    assert problems(items) == []
    p = packets(items)
    for got, want in zip(p, legacy_packets()):
        assert (got.ts, got.data, got.orig_len) == (want.ts, want.data, want.orig_len)


@pytest.mark.tshark
def test_tshark_reads_legacy_output(tshark, tmp_path):
    fn = tmp_path / "out.pcapng"
    fn.write_bytes(write_legacy(COMMENTS))
    rows = tshark_fields(tshark, fn, "frame.number", "frame.time_epoch", "frame.len",
                         "frame.cap_len", "frame.comment", "frame.interface_id")
    want = [[str(p.frame), epoch(p.ts), str(p.orig_len), str(len(p.data)),
             "|".join(COMMENTS.get(p.frame, [])), str([0, 1, 0, 1][p.frame - 1])]
            for p in legacy_packets()]
    assert rows == want
    assert tshark_bytes(tshark, fn) == {p.frame: p.data for p in legacy_packets()}


def legacy_run(iface, n, start=1):
    """``n`` legacy packets of one interface, one after the other (what
    annotate of a pcap file writes: the writer's per-interface fast path)."""
    return [Packet(start + i, 1_700_000_000_000_000_007 + i * 1_000_001,
                   bytes([i % 256]) * (i % 7), 60 + i, iface) for i in range(n)]


RUN_COMMENTS = [["one"], [], ["two", "ünïcödé ✓"], ["é" * 40000, "after"], ["x" * 65535],
                ["y" * 65536], [""], ["a", "b", "c"]]


def check_run(blocks_, run, e, iid):
    epbs = [b for b in blocks_ if b["type"] == 6]
    assert len(epbs) == len(run)
    for b, p, texts in zip(epbs, run, RUN_COMMENTS):
        assert b["endian"] == e and b["iid"] == iid
        assert (b["ticks"], b["data"], b["orig"]) == (p.ts, p.data, p.orig_len)
        want = [(1, cut_comment(t)) for t in texts] + ([marker(len(texts), e)] if texts else [])
        assert b["options"] == want


@pytest.mark.parametrize("e", "<>")
def test_legacy_packets_in_a_row_in_sections_of_either_byte_order(e):
    """Packets of one pcap interface in a row take the writer's short path:
    the same blocks as the first (comments cut at 65535 bytes, markers, no
    options without comments), in the current section's byte order, and a
    new section gets the interface's IDB again."""
    iface = Interface(linktype=1, snaplen=65535, tsresol=10**6)
    run = legacy_run(iface, len(RUN_COMMENTS))
    pcapng = read_all(shb(e) + idb(1, 0, tsresol(9, e=e), e=e))
    out = io.BytesIO()
    w = PcapngWriter(out, flush_each=False)
    for section in (pcapng, read_all(shb(e) + idb(113, 0, tsresol(9, e=e), e=e))):
        for item in section:
            w.write_passthrough(item)
        for p, texts in zip(run, RUN_COMMENTS):
            w.write_packet(p, iter(texts))
    w.close()
    blocks_ = parse_file(out.getvalue())
    assert [b["type"] for b in blocks_] == ([0x0A0D0D0A, 1, 1] + [6] * len(run)) * 2
    assert blocks_[2]["linktype"] == 1 and (9, b"\x09") in blocks_[2]["options"]
    half = len(blocks_) // 2
    check_run(blocks_[:half], run, e, 1)
    check_run(blocks_[half:], run, e, 1)
    got = packets(read_all(out.getvalue()))
    assert [(p.ts, p.data, p.orig_len) for p in got] == [(p.ts, p.data, p.orig_len)
                                                          for p in run + run]


@pytest.mark.tshark
def test_tshark_reads_legacy_packets_in_a_row(tshark, tmp_path):
    iface = Interface(linktype=1, snaplen=65535, tsresol=10**6)
    run = legacy_run(iface, len(RUN_COMMENTS))
    out = io.BytesIO()
    w = PcapngWriter(out)
    for p, texts in zip(run, RUN_COMMENTS):
        w.write_packet(p, texts)
    w.close()
    fn = tmp_path / "run.pcapng"
    fn.write_bytes(out.getvalue())
    rows = tshark_fields(tshark, fn, "frame.number", "frame.time_epoch", "frame.len",
                         "frame.cap_len", "frame.comment")
    assert rows == [[str(p.frame), epoch(p.ts), str(p.orig_len), str(len(p.data)),
                     "|".join(cut_comment(t).decode() for t in texts)]
                    for p, texts in zip(run, RUN_COMMENTS)]


def test_writer_works_on_unseekable_stream_and_flushes_each_packet():
    class Sink(io.RawIOBase):
        def __init__(self):
            self.data, self.flushes = bytearray(), 0

        def writable(self):
            return True

        def write(self, b):
            self.data += b
            return len(b)

        def flush(self):
            self.flushes += 1

        def seekable(self):
            return False

        def tell(self):
            raise OSError("unseekable")

    sink = Sink()
    w = PcapngWriter(sink)
    for p in legacy_packets():
        w.write_packet(p, [])
        assert sink.flushes == p.frame
    w.close()
    assert not sink.closed
    sink2 = Sink()
    w = PcapngWriter(sink2, flush_each=False)
    for p in legacy_packets():
        w.write_packet(p, ["x"])
    assert sink2.flushes == 0
    w.close()
    assert sink2.flushes == 1 and len(parse_file(bytes(sink2.data))) == 7


def test_writer_through_os_pipe():
    rfd, wfd = os.pipe()
    result = {}
    t = threading.Thread(target=lambda: result.update(
        items=list(read_pcapng(os.fdopen(rfd, "rb")))))
    t.start()
    with os.fdopen(wfd, "wb") as f:
        w = PcapngWriter(f)
        for p in legacy_packets():
            w.write_packet(p, ["hi"])
        w.close()
    t.join(10)
    assert [p.ts for p in packets(result["items"])] == [p.ts for p in legacy_packets()]


def test_close_without_anything_writes_a_valid_empty_file():
    out = io.BytesIO()
    PcapngWriter(out, userappl="x").close()
    (b,) = parse_file(out.getvalue())
    assert b["type"] == 0x0A0D0D0A and (4, b"x") in b["options"]


def test_cut_comment():
    assert cut_comment("short") == b"short"
    exact = "a" * MAX_OPTION_LEN
    assert cut_comment(exact) == exact.encode()
    for text in ["é" * 40000, "x" + "✓" * 30000, "b" * 70000, "b" * 65536]:
        enc = text.encode()
        got = cut_comment(text)
        assert len(got) <= MAX_OPTION_LEN and len(got) >= MAX_OPTION_LEN - 3
        s = got.decode("utf-8")            # no split character
        kept, _, tail = s.partition("…[cut by pcapca: ")
        assert tail.endswith(" bytes]")
        assert int(tail[:-len(" bytes]")]) == len(enc) - len(kept.encode())
        assert text.startswith(kept)


@pytest.mark.tshark
def test_long_comment_is_cut_and_readable(tshark, tmp_path):
    out = io.BytesIO()
    w = PcapngWriter(out)
    w.write_packet(legacy_packets()[0], ["é" * 40000, "after"])
    w.close()
    (epb_,) = [b for b in parse_file(out.getvalue()) if b["type"] == 6]
    assert len(epb_["options"][0][1]) <= MAX_OPTION_LEN
    assert epb_["options"][1] == (1, b"after")
    fn = tmp_path / "long.pcapng"
    fn.write_bytes(out.getvalue())
    (row,) = tshark_fields(tshark, fn, "frame.comment")
    first, second = row[0].split("|")
    assert first.startswith("éé") and "[cut by pcapca:" in first and second == "after"

# ------------------------------------------------------------ copy pcapng


def rich_file():
    """Two sections (LE, BE), options of every kind, odd blocks."""
    le_opts = opts(opt(1, b"user comment"), opt(2, struct.pack("<I", 0x1)),   # flags
                   opt(3, b"\x02" + b"\xaa" * 16), opt(4, struct.pack("<Q", 3)),
                   opt(5, struct.pack("<Q", 77)), opt(6, struct.pack("<I", 1)),
                   opt(7, b"\x01verdict!"), opt(0x7777, b"unknown1"),
                   opt(0x7777, b"unknown2"),
                   opt(2988, struct.pack("<I", 12345) + b"someone else's"),
                   opt(1, b"another user comment"))
    be_opts = opts(opt(1, b"be comment", ">"), opt(2, struct.pack(">I", 2), ">"),
                   opt(0x8888, b"x", ">"), e=">")
    return (shb(options=opts(opt(4, b"dumpcap"))) + idb(1, 0, tsresol(9, name="eth0"))
            + block(4, opts(opt(1, b"\x7f\0\0\x01localhost\0")))
            + epb(0, 1_700_000_000_000_000_001, b"\x10" * 42, options=le_opts)
            + epb(0, 1_700_000_000_000_000_002, b"", 0)
            + block(0xBAD, struct.pack("<I", 32473) + b"custom")
            + block(0x40000BAD, struct.pack("<I", 32473) + b"nocopy")
            + block(0x12345678, b"unknown block")
            + block(5, struct.pack("<III", 0, 0, 0))
            + shb(">") + idb(1, 0, tsresol(6, e=">"), e=">")
            + idb(1, 8, tsresol(0x80 | 20, e=">"), e=">")
            + epb(0, 1_700_000_000_000_003, b"\x20" * 20, options=be_opts, e=">")
            + pb(1, 3 * 2**20, b"\x30" * 6, drops=4, e=">"))


def rich_file_spb():
    return shb() + idb(1, 8, tsresol(9)) + spb(b"\x40" * 8, orig=100) + spb(b"\x41" * 3)


@pytest.mark.parametrize("make", [rich_file, rich_file_spb])
def test_copy_without_comments_is_byte_identical(make):
    data = make()
    items = read_all(data)
    assert problems(items) == []
    assert copy_all(items) == data


@pytest.mark.tshark
def test_tshark_reads_copied_and_annotated_rich_file(tshark, tmp_path):
    src = tmp_path / "in.pcapng"
    src.write_bytes(rich_file())
    items = read_all(rich_file())
    ann = tmp_path / "ann.pcapng"
    ann.write_bytes(copy_all(items, comments=lambda p: [f"pcapca {p.frame}"]))
    fields = ("frame.number", "frame.time_epoch", "frame.len", "frame.cap_len",
              "frame.interface_id", "frame.comment")
    before = tshark_fields(tshark, src, *fields)
    after = tshark_fields(tshark, ann, *fields)
    assert len(before) == len(after)
    n = 0
    for b, a in zip(before, after):
        assert a[:5] == b[:5]
        if b[2] in ("42", "0", "20", "6"):   # packet frames (not custom blocks)
            n += 1
            expect = "|".join(filter(None, [b[5], f"pcapca {n}"]))
            assert a[5] == expect
    assert n == 4


def test_annotated_rebuild_keeps_all_options_and_converts_pb():
    items = read_all(rich_file())
    out = parse_file(copy_all(items, comments=lambda p: ["ours"]))
    epbs = [b for b in out if b["type"] == 6]
    assert len(epbs) == 4              # the PB became an EPB
    src = parse_file(rich_file())
    src_epbs = [b for b in src if b["type"] in (6,)]
    assert epbs[0]["options"] == src_epbs[0]["options"] + [(1, b"ours"), marker(1)]
    assert epbs[2]["options"] == src_epbs[2]["options"] + [(1, b"ours"), marker(1, ">")]
    assert epbs[3]["endian"] == ">" and epbs[3]["iid"] == 1
    assert epbs[3]["ticks"] == 3 * 2**20 and epbs[3]["data"] == b"\x30" * 6
    assert epbs[3]["options"] == [(4, struct.pack(">Q", 4)), (1, b"ours"), marker(1, ">")]
    assert epbs[1]["data"] == b"" and epbs[1]["options"] == [(1, b"ours"), marker(1)]
    # non-packet blocks are still byte-identical
    assert [b["raw"] for b in out if b["type"] != 6] == \
        [b["raw"] for b in src if b["type"] not in (6, 2)]


def test_spb_with_comment_becomes_epb_with_timestamp_zero():
    items = read_all(rich_file_spb())
    out = parse_file(copy_all(items, comments=lambda p: ["c"] if p.frame == 1 else []))
    assert [b["type"] for b in out] == [0x0A0D0D0A, 1, 6, 3]
    assert out[2]["ticks"] == 0 and out[2]["iid"] == 0 and out[2]["orig"] == 100
    assert out[2]["data"] == b"\x40" * 8


@pytest.mark.parametrize("e", ["<", ">"])
def test_reannotation_replaces_our_comments_only(e):
    user = [opt(1, b"user note", e), opt(0x7777, b"keep me", e), opt(2, b"\0\0\0\1", e),
            opt(2988, struct.pack(e + "I", 32473) + b"other:tag", e)]
    orig_block = epb(0, 10**18, b"pkt", options=opts(*user, e=e), e=e)
    data = shb(e) + idb(e=e) + orig_block
    user_opts = parse_opts(orig_block[8:-4], 20 + 4, e)

    first = copy_all(read_all(data), comments=lambda p: ["a", "b"])
    (b1,) = [b for b in parse_file(first) if b["type"] == 6]
    assert b1["options"] == user_opts + [(1, b"a"), (1, b"b"), marker(2, e)]

    second = copy_all(read_all(first), comments=lambda p: ["c"])
    (b2,) = [b for b in parse_file(second) if b["type"] == 6]
    assert b2["options"] == user_opts + [(1, b"c"), marker(1, e)]

    # no comments this time: ours are removed, the block is as it was
    third = copy_all(read_all(second))
    assert third == data
    # and copying a file without pcapca comments changes nothing
    assert copy_all(read_all(third)) == data


def test_marker_not_preceded_by_comments_removes_only_the_marker():
    block_ = epb(0, 1, b"p", options=opts(opt(1, b"mine?"), opt(0x7777, b"x"),
                                          opt(*marker(1))))
    out = copy_all(read_all(shb() + idb() + block_), comments=lambda p: ["new"])
    (b,) = [b for b in parse_file(out) if b["type"] == 6]
    assert b["options"] == [(1, b"mine?"), (0x7777, b"x"), (1, b"new"), marker(1)]


@pytest.mark.tshark
def test_tshark_sees_replaced_comments(tshark, tmp_path):
    data = shb() + idb(1, 0, tsresol(9)) + epb(0, 5, b"\0" * 14,
                                               options=opts(opt(1, b"user")))
    once = copy_all(read_all(data), comments=lambda p: ["old one", "old two"])
    twice = copy_all(read_all(once), comments=lambda p: ["new"])
    fn = tmp_path / "t.pcapng"
    fn.write_bytes(twice)
    assert tshark_fields(tshark, fn, "frame.comment") == [["user|new"]]


@pytest.mark.parametrize("e", "<>")
def test_annotated_option_less_blocks_keep_their_header(e):
    """Enhanced packet blocks without options (as dumpcap writes them), in
    the section they came from, get the comments after their data: the
    header as it was, padding zeroed, the same block _rebuild packs."""
    def padded_epb(iid, ticks, data):
        b = bytearray(epb(iid, ticks, data, e=e))
        b[28 + len(data):len(b) - 4] = b"\xff" * (len(b) - 32 - len(data))  # junk padding
        return bytes(b)
    data = (shb(e) + idb(1, 0, tsresol(9, e=e), e=e) + idb(113, 0, tsresol(6, e=e), e=e)
            + b"".join(padded_epb(i % 2, 10**15 + i, bytes([i]) * (i * 3 % 9))
                       for i in range(len(RUN_COMMENTS))))
    items = read_all(data)
    pkts = packets(items)
    out = io.BytesIO()
    w = PcapngWriter(out)
    for item in items:
        if isinstance(item, Packet):
            w.write_packet(item, iter(RUN_COMMENTS[item.frame - 1]))
        else:
            w.write_passthrough(item)
    w.close()
    blocks_ = [b for b in parse_file(out.getvalue()) if b["type"] == 6]
    assert len(blocks_) == len(pkts)
    for b, p, texts in zip(blocks_, pkts, RUN_COMMENTS):
        opts_ = [(1, cut_comment(t)) for t in texts] + ([marker(len(texts), e)] if texts else [])
        ticks = struct.unpack_from(e + "II", p.raw, 12)
        want = (pack_epb(e, p.interface_id, (ticks[0] << 32) | ticks[1], p.data, p.orig_len,
                         opts_) if texts else p.raw)
        assert b["raw"] == want
        assert b["options"] == opts_ and b["iid"] == p.interface_id
        if texts:
            assert b["raw"][28 + len(p.data):28 + len(p.data) + (-len(p.data) % 4)] == (
                b"\0" * (-len(p.data) % 4))
    again = packets(read_all(out.getvalue()))
    assert [(p.ts, p.data, p.orig_len, p.interface_id) for p in again] == [
        (p.ts, p.data, p.orig_len, p.interface_id) for p in pkts]


def test_comment_markers_follow_each_sections_byte_order():
    """One writer, sections of both byte orders (a pcapng with both, or a
    set of captures): each block's comments and marker are in its own
    section's byte order, for copied blocks and for pcap packets alike."""
    data = (shb("<") + idb(1, 0, tsresol(9)) + epb(0, 1, b"le", e="<")
            + shb(">") + idb(1, 0, tsresol(9, e=">"), e=">") + epb(0, 2, b"be", e=">"))
    items = read_all(data)
    iface = Interface(linktype=1, snaplen=65535, tsresol=10**6)
    out = io.BytesIO()
    w = PcapngWriter(out)
    for item in items:
        if isinstance(item, Packet):
            w.write_packet(item, ["a", "b"])
            for p in legacy_run(iface, 2, start=item.frame):   # (the second: the short path)
                w.write_packet(p, ["c", "d"])
        else:
            w.write_passthrough(item)
    w.close()
    epbs = [b for b in parse_file(out.getvalue()) if b["type"] == 6]
    assert [b["endian"] for b in epbs] == ["<"] * 3 + [">"] * 3
    for b in epbs:
        texts = [b"a", b"b"] if b["data"] in (b"le", b"be") else [b"c", b"d"]
        assert b["options"] == [(1, t) for t in texts] + [marker(2, b["endian"])]


def test_packets_from_pcapng_without_their_section_get_our_own():
    """Packets whose SHB/IDB were not written (other byte order) are re-packed
    in a section of ours, with nanosecond timestamps."""
    items = read_all(rich_file())
    be = [p for p in packets(items) if p.endian == ">"]
    out = io.BytesIO()
    w = PcapngWriter(out)
    for p in be:
        w.write_packet(p, ["x"])
    w.close()
    blocks_ = parse_file(out.getvalue())
    assert [b["type"] for b in blocks_] == [0x0A0D0D0A, 1, 6, 1, 6]
    epbs = [b for b in blocks_ if b["type"] == 6]
    assert [b["ticks"] for b in epbs] == [p.ts for p in be]
    assert epbs[0]["options"] == [(1, b"be comment"), (1, b"x"), marker(1)]
    assert [p.ts for p in packets(read_all(out.getvalue()))] == [p.ts for p in be]


@pytest.mark.parametrize("comments", [[], ["c"]])
def test_pcapng_packet_with_dropped_idb_gets_its_idb_copied(comments):
    data = shb() + idb(1, 0, tsresol(9)) + idb(113, 0, tsresol(6)) + epb(1, 5, b"x")
    items = read_all(data)
    out = io.BytesIO()
    w = PcapngWriter(out)
    w.write_passthrough(items[0])         # SHB only; both IDBs dropped
    w.write_packet(packets(items)[0], comments)
    w.close()
    blocks_ = parse_file(out.getvalue())
    assert [b["type"] for b in blocks_] == [0x0A0D0D0A, 1, 6]
    assert blocks_[1]["raw"] == items[2].raw and blocks_[2]["iid"] == 0
    assert blocks_[2]["options"] == ([(1, b"c"), marker(1)] if comments else [])
    assert packets(read_all(out.getvalue()))[0].ts == 5000

# --------------------------------------------------------- real captures


REAL = sorted(glob.glob(os.path.join(FIXTURES, "*.pcapng")))


@pytest.mark.parametrize("fn", REAL or [None])
def test_real_capture_copies_exactly(fn):
    if fn is None:
        pytest.skip("no fixtures/*.pcapng")
    with open(fn, "rb") as f:
        data = f.read()
    items = read_all(data)
    assert not any(p.fatal for p in problems(items))
    assert copy_all(items) == data


@pytest.mark.tshark
@pytest.mark.parametrize("fn", REAL or [None])
def test_real_capture_timestamps_match_tshark(fn, tshark):
    if fn is None:
        pytest.skip("no fixtures/*.pcapng")
    with open(fn, "rb") as f:
        pk = packets(read_pcapng(f))
    rows = tshark_fields(tshark, fn, "frame.time_epoch", "frame.cap_len", "frame.len")
    assert [[epoch(p.ts), str(len(p.data)), str(p.orig_len)] for p in pk] == rows[:len(pk)]
