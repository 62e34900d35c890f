"""Hostile captures and options that once flooded stderr or took gigabytes
(issue 21, points 8 and 9): each bound of docs/troubleshooting.md#bounds is
reached here on a small input, with the bound lowered where it is large,
and checked with counters, never by time or memory measured."""
from __future__ import annotations

import importlib.util
import io
import struct

import pytest

from tests.conftest import ROOT, fixture
from pcapca.ca import circuits as decoder_mod
from pcapca.capture import pcapng as pcapng_io
from pcapca.cli import main as cli
from pcapca.ca.circuits import Decoder
from pcapca.items import Passthrough, Problem
from pcapca.pipeline import decode
from pcapca.ca.records import Decoded
from tests.builders import blocks, build, data, pieces, records

PCAP_HEAD = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


def main(capsys, *argv):
    """(exit status, stdout lines, stderr lines) of ``pcapca ARGV``, in this process."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def count_line(n, *kinds):
    return (f"pcapca: {n} more problems were only counted, not shown (the first 10 of each "
            f"kind and sender are): {', '.join(kinds)}")


# ------------------------------------------------------------ problems: the first 10 shown


def test_a_pcap_of_zeros_shows_10_problems_and_counts_the_rest(tmp_path, capsys):
    """A pcap header and 16 MiB of zeros printed 1,048,577 lines: each 16
    zero bytes are an empty record. (2000 records here.)"""
    path = tmp_path / "zeros.pcap"
    path.write_bytes(PCAP_HEAD + bytes(16 * 2000))
    shown = [f"pcapca: frame {i}, byte offset {24 + 16 * (i - 1)}: empty packet record "
             f"(0 captured bytes, length 0)" for i in range(1, 11)]
    code, out, err = main(capsys, "print", path)
    assert (code, out) == (1, [])
    assert err == shown + [count_line(1990, "1990 empty packet record"),
                           "pcapca: 2000 packets; 0 CA messages; 2000 capture problems; 2000 "
                           "packets skipped (2000 truncated link header)"]
    code, out, err = main(capsys, "print", "-q", path)
    assert (code, err) == (1, shown + [count_line(1990, "1990 empty packet record")])
    code, out, err = main(capsys, "stats", "-q", path)
    assert (code, err) == (1, shown + [count_line(1990, "1990 empty packet record")])
    code, out, err = main(capsys, "annotate", "-q", path, tmp_path / "out.pcapng")
    assert (code, err) == (1, shown + [count_line(1990, "1990 empty packet record")])


def _junk_udp(recs, sender: bytes):
    """basic.pcap's first record, a search datagram, with command id 200 and
    the source address ``sender``."""
    x = bytearray(recs[0][3])
    struct.pack_into(">H", x, 42, 200)
    x[26:30] = sender
    return [recs[0][0], recs[0][1], recs[0][2], bytes(x)]


def test_junk_datagrams_show_10_per_sender(tmp_path, capsys):
    """50k junk UDP datagrams from one sender printed 50,001 lines."""
    d = data("basic.pcap")
    recs = records(d)
    one, two = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    path = tmp_path / "junk.pcap"
    path.write_bytes(build(d[:24], [_junk_udp(recs, one)] * 30 + [_junk_udp(recs, two)] * 12))
    code, out, err = main(capsys, "print", "-q", path)
    assert (code, out) == (0, [])
    line = "pcapca: frame {}: UDP datagram 10.0.0.{}:56289->127.0.0.1:5064 is not CA: " \
           "command id 200 is not a CA request"
    assert err == ([line.format(i, 1) for i in range(1, 11)]
                   + [line.format(i, 2) for i in range(31, 41)]
                   + [count_line(22, "22 UDP datagram not CA")])


def test_lost_fragments_show_10(tmp_path, capsys):
    """200k unfinished IPv4 fragments printed 200,001 lines. (300 here, each
    the first fragment of its own datagram.)"""
    head, recs = pieces()
    first = recs[0]
    frags = []
    for ip_id in range(300):
        x = bytearray(first[3])
        struct.pack_into(">H", x, 18, ip_id)
        frags.append([first[0], first[1], first[2], bytes(x)])
    path = tmp_path / "frags.pcap"
    path.write_bytes(build(head, frags))
    code, out, err = main(capsys, "print", "-q", path)
    assert (code, out) == (0, [])
    assert len(err) == 11 and all("is not complete at the end of the capture" in e
                                  for e in err[:10])
    assert err[10] == count_line(290, "290 IPv4 datagram lost")


def test_the_kinds_and_senders_shown_are_bounded(tmp_path, capsys, monkeypatch):
    """Junk from many senders: KINDS_SHOWN (kind, sender) pairs get lines."""
    monkeypatch.setattr(decoder_mod, "KINDS_SHOWN", 3)
    d = data("basic.pcap")
    recs = records(d)
    path = tmp_path / "junk.pcap"
    path.write_bytes(build(d[:24], [_junk_udp(recs, bytes([10, 0, 0, i])) for i in range(50)]))
    code, out, err = main(capsys, "print", "-q", path)
    assert [e.split("UDP datagram ")[1].split(":")[0] for e in err[:-1]] == [
        "10.0.0.0", "10.0.0.1", "10.0.0.2"]
    assert err[-1] == count_line(47, "47 UDP datagram not CA")


def test_shown_keeps_exit_status_and_fatal_problems():
    """Problems not shown still count (summary, exit status); a problem that
    stops the reading is always shown; untagged ones are kinds by their text."""
    dec = Decoder()
    same = [Problem("x", frame=i) for i in range(12)]
    assert [dec.shown(p) for p in same] == [True] * 10 + [False] * 2
    assert dec.shown(Problem("x", fatal=True))
    assert dec.shown(Problem("y"))
    assert dec.stats.unshown == {"other capture problem": 2}
    items = list(Decoder().run(iter([Problem("z", topic="t")] * 15)))
    assert len(items) == 10


# ------------------------------------------------------------ format widths, output batches


@pytest.mark.parametrize("spec", [">99999999", "1001", ".1001", "0>1001", ">٩٩٩٩٩٩٩٩",
                                  "_>1001.3f"])
def test_format_widths_over_1000_are_a_usage_error(capsys, spec):
    """{frame:>99999999} took 11-14 GB."""
    fmt = "{frame:" + spec + "} {pv}"
    code, out, err = main(capsys, "print", fixture("basic.pcap"), "--format", fmt)
    assert (code, out) == (2, [])
    assert err == [f"pcapca: error: format string {fmt!r}: '{{frame:{spec}}}': a width or "
                   f"precision over 1000 is not supported"]


def test_format_width_1000_is_fine(capsys):
    code, out, err = main(capsys, "print", "-q", fixture("basic.pcap"), "--format",
                          "{frame:>1000.1000}|{latency:.1000}")
    assert code == 0 and len(out) == 39 and {len(line.split("|")[0]) for line in out} == {1000}


class _Writes(io.StringIO):
    """stdout counting the characters of each write."""
    def __init__(self):
        super().__init__()
        self.sizes = []

    def write(self, s):
        self.sizes.append(len(s))
        return super().write(s)


@pytest.mark.parametrize("args", [("--json",), ("--format", "{frame:>1000}")])
def test_print_writes_long_lines_without_batching_them(monkeypatch, args):
    """print --json of 200 x 1 MiB arrays took 2.8 GB: its lines were
    batched by 512. Beyond OUTPUT_BATCH characters a batch is written."""
    monkeypatch.setattr(cli, "OUTPUT_BATCH", 1000)
    out = _Writes()
    monkeypatch.setattr("sys.stdout", out)
    assert cli.main(["print", "-q", str(fixture("bigarray.pcap")), *args]) == 0
    lines = out.getvalue().splitlines()
    longest = max(map(len, lines))
    assert len(lines) == 21 and longest >= 1000
    # (a batch ends with the lines of the packet that took it over 1000
    # characters: at most 3 here)
    assert len(out.sizes) >= 9 and max(out.sizes) <= 1000 + 3 * (longest + 1)


# ------------------------------------------------------------ bytes buffered, all circuits


def _adversarial():
    """scripts/make_adversarial.py, for its packet builder ``frame``."""
    spec = importlib.util.spec_from_file_location("make_adversarial",
                                                  ROOT / "scripts" / "make_adversarial.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _unfinished(circuits: int, size: int, sent: int) -> bytes:
    """A pcap of ``circuits`` TCP circuits to port 5064, each client sending
    ``sent`` bytes of a WriteNotifyRequest of ``size`` DBR_CHAR bytes (an
    extended header), never the rest."""
    adv = _adversarial()
    server = bytes([127, 0, 0, 1])
    head = struct.pack(">HHHHII", 19, 0xFFFF, 4, 0, 1, 2) + struct.pack(">II", size, size)
    msg = (head + bytes(size))[:sent]
    recs = []
    t = 1767225600
    for i in range(circuits):
        ip, port = bytes([127, 0, 0, 2]), 2000 + i
        cseq, sseq = 1000 * i, 7000 * i
        for pkt in (adv.frame(ip, server, port, 5064, cseq, 0, 0x02),
                    adv.frame(server, ip, 5064, port, sseq, cseq + 1, 0x12),
                    adv.frame(ip, server, port, 5064, cseq + 1, sseq + 1, 0x18, msg)):
            recs.append([t, i, len(pkt), pkt])
    return build(PCAP_HEAD, recs)


def test_bytes_buffered_over_all_circuits_are_bounded(monkeypatch):
    """200 circuits each with 1 MiB of an unfinished message took 263 MB.
    (20 circuits with 4000 bytes each, a bound of 20000 bytes here.) The
    least recently active circuits give up their bytes, one line each."""
    monkeypatch.setattr(decoder_mod, "MAX_BUFFERED", 16000)
    dec = Decoder(max_message=10000)
    assert dec.max_buffered == 20000                # (twice --max-message, when more)
    peak, problems = 0, []
    for item in decode(_unfinished(20, 8000, 4000), decoder=dec):
        peak = max(peak, dec.buffered)
        if item.__class__ is Problem:
            problems.append(str(item))
    assert peak == 20000
    given_up = [p for p in problems if "were given up" in p]
    # the 6th circuit's segment (frame 18) brings 24000 bytes: the 3 oldest
    # give theirs up (down to 15000 at most), and so on
    assert given_up[0] == (
        "frame 18: 127.0.0.2:2000->127.0.0.1:5064: 4000 bytes waiting to be decoded were "
        "given up: over the 20000-byte limit for all circuits; decoding resumes at the next "
        "CA header (further problems in this stream are only counted)")
    assert [p.split(":")[0] for p in given_up] == ["frame 18"] * 3 + ["frame 27"] * 3 + [
        "frame 36"] * 3 + ["frame 45"]          # (10 of 15 shown: one sender)
    assert dec.stats.unshown == {"TCP stream problem": 5}
    assert dec.stats.problems == 15 and dec.buffered == 0 and dec.circuits == {}


def test_bytes_buffered_under_the_bound_are_kept(monkeypatch):
    dec = Decoder(max_message=10000)
    problems = [i for i in decode(_unfinished(20, 8000, 4000), decoder=dec)
                if i.__class__ is Problem]
    assert problems == [] and dec.stats.cut_messages == 20


# ------------------------------------------------------------ interfaces per pcapng section


def test_interfaces_kept_per_section_are_bounded(monkeypatch, tmp_path, capsys):
    """A pcapng with 10^6 interface blocks took 280 MB. Beyond MAX_INTERFACES
    (3 here) an IDB is copied, not kept: one line per section."""
    monkeypatch.setattr(pcapng_io, "MAX_INTERFACES", 3)
    d = data("session.pcapng")
    (idb_at, _, idb_len), = [b for b in blocks(d) if b[1] == 1]
    idb = d[idb_at:idb_at + idb_len]
    end = idb_at + idb_len
    d = d[:end] + idb * 5 + d[end:]
    path = tmp_path / "idbs.pcapng"
    path.write_bytes(d)
    code, out, err = main(capsys, "print", "-q", path)
    assert code == 1 and out == main(capsys, "print", "-q", fixture("session.pcapng"))[1]
    at = end + 2 * idb_len
    assert err == [f"pcapca: frame 1, byte offset {at}: interface description block at byte "
                   f"offset {at}: its section has over 3 interfaces; the packets of this one "
                   f"and those after it are copied, not decoded"]
    assert main(capsys, "annotate", "-q", path, tmp_path / "o.pcapng")[0] == 1
    writer = pcapng_io.PcapngWriter(io.BytesIO())
    for item in decode(d):
        if item.__class__ is Passthrough:
            writer.write_passthrough(item)
        elif item.__class__ is Decoded:
            writer.write_packet(item.packet)
    assert writer.out.getvalue() == d and (writer._idbs, len(writer._ifaces)) == (6, 3)
