"""The filtered print's shortcut (pcapca.fast.skim): the same output without it.

A ``print`` with a PV or command filter lets ``pcapca.fast.skim`` account for the
packets whose messages the filter drops instead of decoding them. Every test
here runs the same command with the shortcut and without it (``no_skim``)
and compares stdout, stderr and the exit code; the format prints what the
channel state computes (PV, request frame, latency), so a wrong ioid table
shows. The fixtures are short, so the shortcut is made to take windows of
any size (``MIN_RECORDS``), and the tests check that it did skip packets.
"""
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.builders import ca_bytes, tcp_capture
from tests.conftest import FIXTURES, fixture
from pcapca.cli import main as cli
from pcapca.capture import pcap as pcap_reader
from pcapca.fast import skim
from pcapca.fast.skim import Skimmer

FORMAT = ("{frame} {pv} {request_frame} {latency} {role} {name} {src}:{sport}->{dst}:{dport} "
          "{command}")
CAPTURES = sorted(p.name for p in FIXTURES.iterdir() if p.suffix in (".pcap", ".pcapng"))
FILTERS = [
    ["--pv", "NOPE:nothing"],
    ["--pv", "FIX:dbl"],
    ["--pv", "CORPUS:dbl"],
    ["--pv", "FIX:*", "--pv", "CORPUS:str"],
    ["--not-pv", "FIX:dbl", "--not-pv", "CORPUS:counter"],
    ["--command", "ReadNotifyResponse"],
    ["--not-command", "EventAddResponse"],
    ["--pv", "re:(dbl|long)$", "--command", "*Request"],
    ["--pv", "FIX:long", "--host", "127.0.0.1", "--port", "5064"],
]


@pytest.fixture
def skims(monkeypatch):
    """Skim windows of any size; collect the Skimmers made."""
    monkeypatch.setattr(skim, "MIN_RECORDS", 1)
    made = []
    init = Skimmer.__init__

    def record(self, *args, **kw):
        init(self, *args, **kw)
        made.append(self)
    monkeypatch.setattr(Skimmer, "__init__", record)
    return made


def no_skim(monkeypatch) -> None:
    monkeypatch.setattr(Skimmer, "handles", staticmethod(lambda linktype: False))


def run(capsys, *args):
    code = cli.main(["print", *args])
    out, err = capsys.readouterr()
    return code, out, err


def both(capsys, monkeypatch, *args):
    """(with the shortcut, without it) of one print command."""
    fast = run(capsys, *args)
    with monkeypatch.context() as m:
        no_skim(m)
        slow = run(capsys, *args)
    return fast, slow


@pytest.mark.parametrize("name", CAPTURES)
@pytest.mark.parametrize("flt", FILTERS, ids=" ".join)
def test_same_output(name, flt, skims, capsys, monkeypatch):
    fast, slow = both(capsys, monkeypatch, str(fixture(name)), "--format", FORMAT, *flt)
    assert fast == slow


@pytest.mark.parametrize("name", CAPTURES)
def test_same_default_output_and_summary(name, skims, capsys, monkeypatch):
    fast, slow = both(capsys, monkeypatch, str(fixture(name)), "--pv", "FIX:dbl")
    assert fast == slow
    assert "CA messages" in fast[2]


@pytest.mark.parametrize("flt", [["--pv", "CORPUS:dbl"], ["--not-command", "ReadNotify*"]],
                         ids=" ".join)
def test_same_json(flt, skims, capsys, monkeypatch):
    fast, slow = both(capsys, monkeypatch, str(fixture("corpus_libca.pcap")), "--json", *flt)
    assert fast == slow
    assert sum(s.skipped for s in skims) > 100


def test_corpus_capture_is_mostly_skipped(skims, capsys, monkeypatch):
    """corpus_libca.pcap (807 packets, 915 messages), --pv CORPUS:dbl: the 38
    lines of the filter tests. The shortcut takes 668 packets: all but the 37
    that carry CORPUS:dbl's messages and those it leaves to the decoder: UDP
    (searches, beacons), channel set-up and tear-down (create, access
    rights, subscribe, clear), SYN/FIN/RST, and the waveform replies that
    span several segments."""
    monkeypatch.setattr(skim, "MIN_RECORDS", 64)          # the real threshold
    fast, slow = both(capsys, monkeypatch, str(fixture("corpus_libca.pcap")),
                      "--format", FORMAT, "--pv", "CORPUS:dbl")
    assert fast == slow
    assert len(fast[1].splitlines()) == 38
    assert len({line.split()[0] for line in fast[1].splitlines()}) == 37   # frames
    assert "807 packets; 915 CA messages" in fast[2]
    assert sum(s.skipped for s in skims) == 668


def test_skips_with_every_kind_of_filter(skims, capsys):
    """Each filter of FILTERS that can drop something lets the shortcut skip."""
    for flt in FILTERS:
        skims.clear()
        run(capsys, str(fixture("corpus_libca.pcap")), *flt)
        assert sum(s.skipped for s in skims) > 0, flt


def test_no_shortcut_without_pv_or_command_filter(skims, capsys):
    run(capsys, str(fixture("corpus_libca.pcap")), "--host", "127.0.0.1", "--quiet")
    run(capsys, str(fixture("corpus_libca.pcap")), "--quiet")
    assert skims == []


@pytest.mark.parametrize("endian", "<>")
def test_pcapng(endian, skims, capsys, monkeypatch, tmp_path):
    """A pcapng file of the same packets as corpus_libca.pcap (written by
    _pcapng): the same output, the same packets skipped."""
    monkeypatch.setattr(skim, "MIN_RECORDS", 64)
    args = ("--format", FORMAT, "--pv", "CORPUS:dbl")
    expected = run(capsys, str(fixture("corpus_libca.pcap")), *args)
    path = tmp_path / "libca.pcapng"
    path.write_bytes(_pcapng(fixture("corpus_libca.pcap").read_bytes(), endian))
    skims.clear()
    fast, slow = both(capsys, monkeypatch, str(path), *args)
    assert fast == slow == expected
    # (one more than from the pcap file, whose reader reads the record after a run itself)
    assert sum(s.skipped for s in skims) == 669


def test_pcapng_session_is_skimmed(skims, capsys, monkeypatch):
    fast, slow = both(capsys, monkeypatch, str(fixture("session.pcapng")), "--format", FORMAT,
                      "--pv", "FIX:dbl")
    assert fast == slow
    assert sum(s.skipped for s in skims) > 20


def test_pcapng_with_other_blocks_between_packets(skims, capsys, monkeypatch, tmp_path):
    """Name resolution blocks every 50 packets end the runs; the blocks are
    passed through as usual."""
    path = tmp_path / "nrb.pcapng"
    path.write_bytes(_pcapng(fixture("corpus_libca.pcap").read_bytes(), "<", nrb_every=50))
    fast, slow = both(capsys, monkeypatch, str(path), "--format", FORMAT, "--pv", "CORPUS:str")
    assert fast == slow
    assert sum(s.skipped for s in skims) > 500


def test_no_shortcut_with_several_interfaces(skims, capsys, monkeypatch):
    """twoif.pcapng: packets captured on two interfaces are compared with each
    other (duplicates are dropped), so every one goes through the decoder."""
    fast, slow = both(capsys, monkeypatch, str(fixture("twoif.pcapng")), "--format", FORMAT,
                      "--pv", "FIX:long")
    assert fast == slow
    assert "seen again on another interface ignored" in fast[2]
    assert sum(s.skipped for s in skims) == 0


def _pcapng(pcap: bytes, endian: str, nrb_every: int = 0) -> bytes:
    """A little-endian Ethernet pcap (µs) as a pcapng file in byte order
    ``endian``: SHB, IDB, one EPB per packet (and a name resolution block
    every ``nrb_every`` packets)."""
    def block(btype, body):
        body += bytes(-len(body) % 4)
        return struct.pack(endian + "II", btype, 12 + len(body)) + body + \
            struct.pack(endian + "I", 12 + len(body))
    out = [block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1)),
           block(1, struct.pack(endian + "HHI", 1, 0, 262144))]
    pos, n = 24, 0
    while pos < len(pcap):
        sec, usec, caplen, length = struct.unpack_from("<IIII", pcap, pos)
        ticks = sec * 10**6 + usec
        out.append(block(6, struct.pack(endian + "IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF,
                                        caplen, length) + pcap[pos + 16:pos + 16 + caplen]))
        pos += 16 + caplen
        n += 1
        if nrb_every and n % nrb_every == 0:
            out.append(block(4, struct.pack(endian + "HH", 0, 0)))
    return b"".join(out)


@pytest.mark.parametrize("run_size", [1, 2, 7])
def test_short_runs(run_size, skims, capsys, monkeypatch):
    """Windows cut into runs of a few records (MAX_RUN): the same."""
    monkeypatch.setattr(skim, "MAX_RUN", run_size)
    fast, slow = both(capsys, monkeypatch, str(fixture("corpus_libca.pcap")),
                      "--format", FORMAT, "--pv", "CORPUS:str")
    assert fast == slow
    assert sum(s.skipped for s in skims) > 300       # (the loop reads one record after each run)


def test_eviction_packets_are_decoded(skims, capsys, monkeypatch):
    """The decoder looks for idle circuits after every EVICT_EVERY-th packet;
    those packets go through it even when the filter drops them."""
    args = (str(fixture("corpus_libca.pcap")), "--format", FORMAT, "--pv", "CORPUS:dbl")
    usual = run(capsys, *args)
    import pcapca.ca.circuits
    monkeypatch.setattr(skim, "EVICT_EVERY", 5)
    monkeypatch.setattr(pcapca.ca.circuits, "EVICT_EVERY", 5)
    monkeypatch.setattr(pcapca.ca.circuits, "IDLE_NS", 10**6)    # 1 ms: circuits do go idle
    skims.clear()
    fast, slow = both(capsys, monkeypatch, *args)
    assert fast == slow
    assert fast != usual          # circuits were forgotten (and their PV names with them)
    assert sum(s.skipped for s in skims) > 300


# ------------------------------------------------------------ damaged captures
def _damaged(data: bytes, seed: int) -> bytes:
    rng = random.Random(seed)
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        what = rng.random()
        at = rng.randrange(24, len(buf))
        if what < 0.6:
            buf[at] ^= 1 << rng.randrange(8)
        elif what < 0.8:
            del buf[at:at + rng.randint(1, 200)]
        else:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
    return bytes(buf[:rng.randint(len(buf) // 2, len(buf))])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["libca.pcap", "rsrv.pcap", "twoservers.pcap", "noise.pcap",
                             "sll.pcap", "reuse.pcap", "session.pcapng"]),
       seed=st.integers(0, 2**32 - 1),
       flt=st.sampled_from(FILTERS))
def test_same_output_on_damaged_captures(name, seed, flt, skims, capsys, monkeypatch,
                                         tmp_path):
    path = tmp_path / "damaged.pcap"
    path.write_bytes(_damaged(fixture(name).read_bytes(), seed))
    fast, slow = both(capsys, monkeypatch, str(path), "--format", FORMAT, *flt)
    assert fast == slow


# ------------------------------------------------------------ the reader's runs
def _record(caplen: int, sec: int = 1_800_000_000, frac: int = 5, length=None) -> bytes:
    return struct.pack("<IIII", sec, frac, caplen, caplen if length is None else length) \
        + bytes(caplen)


def test_good_run_stops_at_the_first_record_the_loop_would_not_take(monkeypatch):
    monkeypatch.setattr(skim, "MIN_RECORDS", 2)
    rec = struct.Struct("<IIII")
    good = [_record(60), _record(70), _record(54)]
    for bad in (_record(0), _record(60, frac=10**6), _record(60, length=59),
                _record(60, sec=1_800_000_000 + 8 * 86400)):
        buf = b"".join(good) + bad + _record(60)
        run, stop = pcap_reader._good_run(buf, 0, len(buf), rec, 262144, 10**6, None)
        offsets, caplens, lengths, secs, tss = run
        assert offsets == [0, 76, 162] and caplens == [60, 70, 54] and stop == 232
        assert tss == [1_800_000_000 * 10**9 + 5000] * 3
    # too few before the bad one: no run, and no new try before where it looked
    buf = _record(60) + _record(60, frac=10**6) + b"".join(good)
    run, stop = pcap_reader._good_run(buf, 0, len(buf), rec, 262144, 10**6, None)
    assert run is None and stop == len(buf)
    # a record cut by the end of the window ends the run
    buf = b"".join(good) + _record(60)[:40]
    run, stop = pcap_reader._good_run(buf, 0, len(buf), rec, 262144, 10**6, None)
    assert run[0] == [0, 76, 162] and stop == 232


@pytest.mark.parametrize("idle_ms", [0.2, 1, 5, 50])
def test_idle_circuits_use_the_time_of_skipped_packets(idle_ms, skims, capsys, monkeypatch):
    """A circuit's last packet time counts skipped packets too (idle eviction)."""
    import pcapca.ca.circuits
    monkeypatch.setattr(skim, "EVICT_EVERY", 3)
    monkeypatch.setattr(pcapca.ca.circuits, "EVICT_EVERY", 3)
    monkeypatch.setattr(pcapca.ca.circuits, "IDLE_NS", int(idle_ms * 10**6))
    for pv in ("CORPUS:dbl", "CORPUS:str", "NOPE"):
        fast, slow = both(capsys, monkeypatch, str(fixture("corpus_libca.pcap")),
                          "--format", FORMAT, "--pv", pv)
        assert fast == slow


@pytest.mark.parametrize("limit", [64, 200, 4000])
def test_oversized_messages(limit, skims, capsys, monkeypatch):
    """--max-message: the bytes of a skipped oversized message are not taken
    for messages."""
    fast, slow = both(capsys, monkeypatch, str(fixture("corpus_libca.pcap")),
                      "--format", FORMAT, "--not-pv", "CORPUS:dbl", "--max-message", str(limit))
    assert fast == slow
    assert "over the" in fast[2]


# ------------------------------------------------------------ crafted circuits
def test_two_replies_to_one_ioid_in_a_packet(skims, capsys, monkeypatch, tmp_path):
    """The first reply takes the pending read; the second has no PV, so
    --not-pv keeps it: the packet must not be skipped whole."""
    import caproto as ca
    reply = ca.ReadNotifyResponse(data=[1.5], data_type=ca.ChannelType.DOUBLE, data_count=1,
                                  status=1, ioid=7)
    path = tmp_path / "twice.pcap"
    path.write_bytes(tcp_capture([
        (True, ca_bytes(ca.VersionRequest(priority=0, version=13),
                        ca.CreateChanRequest(name="X:a", cid=1, version=13))),
        (False, ca_bytes(ca.CreateChanResponse(data_type=6, data_count=1, cid=1, sid=9))),
        (True, ca_bytes(ca.ReadNotifyRequest(data_type=6, data_count=1, sid=9, ioid=7))),
        (False, ca_bytes(reply, reply)),
        (True, ca_bytes(ca.ReadNotifyRequest(data_type=6, data_count=1, sid=9, ioid=8))),
        (False, ca_bytes(ca.ReadNotifyResponse(data=[2.5], data_type=ca.ChannelType.DOUBLE,
                                               data_count=1, status=1, ioid=8))),
    ]))
    fast, slow = both(capsys, monkeypatch, str(path), "--format", "{frame} {pv} {name}",
                      "--not-pv", "X:a")
    assert fast == slow
    assert fast[1].splitlines() == ["4  VersionRequest", "7  ReadNotifyResponse"]   # (no PV)
    assert sum(s.skipped for s in skims) == 4          # the ACK, frames 6, 8 and 9
    # and with the PV: every message of it, the second reply not
    fast, slow = both(capsys, monkeypatch, str(path), "--format", "{frame} {pv} {name}",
                      "--pv", "X:a")
    assert fast == slow
    assert fast[1].splitlines() == [
        "4 X:a CreateChanRequest", "5 X:a CreateChanResponse", "6 X:a ReadNotifyRequest",
        "7 X:a ReadNotifyResponse", "8 X:a ReadNotifyRequest", "9 X:a ReadNotifyResponse"]


def test_channel_state_skim_matches_the_handlers():
    """For every message of every fixture that has a skim rule,
    ChannelTracker.skim (told to drop) leaves the channel state as the
    message's handler does and names the same PV."""
    from pcapca.capture.reader import read_capture
    from pcapca.ca.channels import ChannelTracker
    from pcapca.ca.circuits import Decoder
    from pcapca.ca.records import Decoded
    checked = 0
    for name in CAPTURES:
        usual, skimming = ChannelTracker(), ChannelTracker()
        for item in Decoder().run(read_capture(str(fixture(name)))):
            if item.__class__ is not Decoded:
                continue
            for record in item.records:
                handler = usual._handlers.get(record.cls)
                if handler is None:
                    continue
                handler(record)
                rule = skimming.skim_rules.get(record.cls)
                if rule is None:
                    skimming._handlers[record.cls](record)
                    continue
                asked = []
                assert skimming.skim(skimming.state_of(record.circuit), rule,
                                     record.fields[4:6], record.cls, record.frame, record.ts,
                                     lambda pv, cls: asked.append((pv, cls)) or True)
                assert asked == [(record.pv, record.cls)]
                a, b = usual.circuits[record.circuit], skimming.circuits[record.circuit]
                assert (a.cids, a.sids, a.ioids, a.subs) == (b.cids, b.sids, b.ioids, b.subs)
                checked += 1
    assert checked == 971


def _two_channels(ca):
    return [(True, ca_bytes(ca.VersionRequest(priority=0, version=13),
                            ca.CreateChanRequest(name="X:a", cid=1, version=13),
                            ca.CreateChanRequest(name="Y:b", cid=2, version=13))),
            (False, ca_bytes(ca.CreateChanResponse(data_type=6, data_count=1, cid=1, sid=9),
                             ca.CreateChanResponse(data_type=6, data_count=1, cid=2, sid=10)))]


def test_skipped_data_keeps_a_circuit_alive(skims, capsys, monkeypatch, tmp_path):
    """Packets 1 ms apart, circuits idle for 2.5 ms forgotten, looked for at
    every third packet, a search: the skipped reads of Y:b keep the circuit
    (and so the name of X:a) alive."""
    import caproto as ca
    import pcapca.ca.circuits
    monkeypatch.setattr(skim, "EVICT_EVERY", 3)
    monkeypatch.setattr(pcapca.ca.circuits, "EVICT_EVERY", 3)
    monkeypatch.setattr(pcapca.ca.circuits, "IDLE_NS", 2_500_000)
    search = ca_bytes(ca.VersionRequest(priority=0, version=13),
                      ca.SearchRequest(name="Z:c", cid=7, version=13))
    steps = _two_channels(ca)                     # frames 4 and 5
    for ioid in range(1, 11, 2):                  # frames 6 (search), 7, 8, 9 (search)...
        steps += [("udp", search)] + [
            (True, ca_bytes(ca.ReadNotifyRequest(data_type=6, data_count=1, sid=10, ioid=i)))
            for i in (ioid, ioid + 1)]
    steps.append((True, ca_bytes(ca.ReadNotifyRequest(data_type=6, data_count=1, sid=9, ioid=99))))
    path = tmp_path / "alive.pcap"
    path.write_bytes(tcp_capture(steps, gap_us=1000))
    fast, slow = both(capsys, monkeypatch, str(path), "--format", "{frame} {pv} {name}",
                      "--pv", "X:a")
    assert fast == slow
    assert fast[1].splitlines() == ["4 X:a CreateChanRequest", "5 X:a CreateChanResponse",
                                    "21 X:a ReadNotifyRequest"]
    assert sum(s.skipped for s in skims) == 10


def test_a_segment_that_fills_a_hole_is_not_skipped(skims, capsys, monkeypatch, tmp_path):
    """Y:b's read fills the hole before X:a's (captured first): decoding it
    delivers X:a's read too, before the reply to it."""
    import caproto as ca
    steps = _two_channels(ca) + [
        (True, ca_bytes(ca.ReadNotifyRequest(data_type=6, data_count=1, sid=10, ioid=1))),
        (True, ca_bytes(ca.ReadNotifyRequest(data_type=6, data_count=1, sid=9, ioid=2))),
        (False, ca_bytes(ca.ReadNotifyResponse(data=[2.5], data_type=ca.ChannelType.DOUBLE,
                                               data_count=1, status=1, ioid=2)))]
    path = tmp_path / "hole.pcap"
    path.write_bytes(tcp_capture(steps, order=[0, 1, 2, 3, 4, 6, 5, 7]))
    fast, slow = both(capsys, monkeypatch, str(path),
                      "--format", "{frame} {pv} {name} {request_frame}", "--pv", "X:a")
    assert fast == slow
    assert fast[1].splitlines() == ["4 X:a CreateChanRequest ", "5 X:a CreateChanResponse 4",
                                    "7 X:a ReadNotifyRequest ", "8 X:a ReadNotifyResponse 7"]


def test_a_direction_not_in_step_yet_is_not_skipped(skims, capsys, monkeypatch, tmp_path):
    """A capture that starts inside a connection: the server's first segment
    is a reply caproto would take, but a payload size that is not a multiple
    of 8 is not a place to start decoding at."""
    import caproto as ca
    request = ca_bytes(ca.ReadNotifyRequest(data_type=6, data_count=1, sid=10, ioid=1))
    reply = _odd_reply(ca, 1)
    path = tmp_path / "midstream.pcap"
    path.write_bytes(tcp_capture([(True, request), (False, reply), (False, reply)],
                                 handshake=False))
    fast, slow = both(capsys, monkeypatch, str(path), "--format", "{frame} {name}",
                      "--pv", "X:a")
    assert fast == slow
    assert "3 packets; 1 CA messages" in fast[2]


def test_the_rest_of_an_oversized_message_is_not_a_message(skims, capsys, monkeypatch,
                                                          tmp_path):
    """--max-message 64: an 80-byte write is skipped; the segment with its
    last 16 bytes, which look like a read request, is not skipped."""
    import caproto as ca
    read = ca_bytes(ca.ReadNotifyRequest(data_type=6, data_count=1, sid=10, ioid=5))
    write = ca_bytes(ca.WriteNotifyRequest(data=[0.0] * 10, data_type=6, data_count=10, sid=10,
                                           ioid=4))
    big = write[:-16] + read
    assert len(big) == 96
    path = tmp_path / "big.pcap"
    path.write_bytes(tcp_capture(_two_channels(ca) + [(True, big[:80]), (True, big[80:])]))
    fast, slow = both(capsys, monkeypatch, str(path), "--format", "{frame} {pv} {name}",
                      "--pv", "X:a", "--max-message", "64")
    assert fast == slow
    assert "claims 80 bytes, over the 64-byte limit; skipped" in fast[2]
    assert fast[2].endswith("pcapca: 7 packets; 5 CA messages; 1 decode problems\n")


def _odd_reply(ca, ioid):
    """A read reply caproto decodes but whose payload size (12) is not a
    multiple of 8: not a place where decoding may start."""
    reply = bytearray(ca_bytes(ca.ReadNotifyResponse(data=[2.5], data_type=ca.ChannelType.DOUBLE,
                                                     data_count=1, status=1, ioid=ioid)))
    reply[2:4] = struct.pack("!H", 12)
    return bytes(reply) + bytes(4)


def test_after_lost_bytes_decoding_starts_at_a_plausible_message(skims, capsys, monkeypatch,
                                                                tmp_path):
    """The server's reply to read 1 was not captured (the client acknowledges
    it): decoding resumes only at a plausible header, which the next reply is
    not; the shortcut leaves such a direction to the decoder."""
    import caproto as ca
    steps = _two_channels(ca) + [
        (True, ca_bytes(ca.ReadNotifyRequest(data_type=6, data_count=1, sid=10, ioid=1))),
        (False, ca_bytes(ca.ReadNotifyResponse(data=[1.5], data_type=ca.ChannelType.DOUBLE,
                                               data_count=1, status=1, ioid=1))),
        (True, ca_bytes(ca.ReadNotifyRequest(data_type=6, data_count=1, sid=10, ioid=2))),
        (False, _odd_reply(ca, 2)),
        (True, ca_bytes(ca.ReadNotifyRequest(data_type=6, data_count=1, sid=10, ioid=3))),
        (False, _odd_reply(ca, 3))]
    path = tmp_path / "lost.pcap"
    path.write_bytes(tcp_capture(steps, order=[0, 1, 2, 3, 4, 5, 7, 8, 9, 10]))
    fast, slow = both(capsys, monkeypatch, str(path), "--format", "{frame} {name}",
                      "--pv", "X:a")
    assert fast == slow
    assert "24 bytes of 127.0.0.1:5064->127.0.0.1:40000 were not captured" in fast[2]
    assert "10 packets; 8 CA messages" in fast[2]     # (no reply decoded)


def test_a_circuit_that_is_not_ca_is_not_skipped(skims, capsys, monkeypatch, tmp_path):
    """Port 6000 is not a CA port and its first bytes are not CA: what looks
    like CA messages later on that connection is not decoded."""
    import caproto as ca
    read = ca_bytes(ca.ReadNotifyRequest(data_type=6, data_count=1, sid=10, ioid=1))
    path = tmp_path / "other.pcap"
    path.write_bytes(tcp_capture([(True, b"GET / HTTP/1.0\r\n\r\n"), (True, read), (True, read)],
                                 port=6000))
    fast, slow = both(capsys, monkeypatch, str(path), "--format", "{frame} {name}",
                      "--pv", "X:a")
    assert fast == slow
    assert "6 packets; 0 CA messages" in fast[2]


@pytest.mark.parametrize("kw", [
    {"pv": ["CORPUS:dbl"]}, {"not_pv": ["CORPUS:*"]}, {"command": ["ReadNotify*"]},
    {"not_command": ["EventAddResponse"]}, {"pv": ["re:str|dbl"], "command": ["*Response"]},
    {"pv": ["CORPUS:dbl"], "host": ["127.0.0.2"]}, {"command": ["*Request"], "port": [5065]},
    {"host": ["127.0.0.1"]}])
def test_filter_drops_agrees_with_matches(kw):
    """Filter.drops(pv, cls) says a record is dropped only when ``matches``
    drops it; with PV and command conditions only, exactly then."""
    from pcapca.filters import Filter
    from pcapca.pipeline import read
    f = Filter.build(**kw)
    records = list(read(str(fixture("corpus_libca.pcap"))))
    if not ({"pv", "not_pv", "command", "not_command"} & set(kw)):
        assert f.drops is None
        return
    dropped = [f.drops(r.pv, r.cls) for r in records]
    kept = [f.matches(r) for r in records]
    assert not any(d and k for d, k in zip(dropped, kept))
    if set(kw) <= {"pv", "not_pv", "command", "not_command"}:
        assert dropped == [not k for k in kept]
    assert 0 < sum(dropped) < len(records)


def _big_endian(data: bytes) -> bytes:
    """The same pcap written big-endian (file header and record headers)."""
    magic, major, minor, zone, sigfigs, snaplen, linktype = struct.unpack_from("<IHHiIII", data)
    out = [struct.pack(">IHHiIII", magic, major, minor, zone, sigfigs, snaplen, linktype)]
    pos = 24
    while pos < len(data):
        sec, frac, caplen, length = struct.unpack_from("<IIII", data, pos)
        out.append(struct.pack(">IIII", sec, frac, caplen, length))
        out.append(data[pos + 16:pos + 16 + caplen])
        pos += 16 + caplen
    return b"".join(out)


def test_big_endian_capture(skims, capsys, monkeypatch, tmp_path):
    path = tmp_path / "big.pcap"
    path.write_bytes(_big_endian(fixture("corpus_libca.pcap").read_bytes()))
    fast, slow = both(capsys, monkeypatch, str(path), "--format", FORMAT, "--pv", "CORPUS:dbl")
    assert fast == slow
    little = run(capsys, str(fixture("corpus_libca.pcap")), "--format", FORMAT, "--pv",
                 "CORPUS:dbl")
    assert fast == little
    assert sum(s.skipped for s in skims) == 2 * 668


class _Transparent:
    """A Skimmer that skips nothing and notes what it was given."""
    def __init__(self):
        self.runs = []

    @staticmethod
    def handles(linktype):
        return True

    @staticmethod
    def wants(interfaces):
        return True               # (the real one: only sections of one interface)

    def run(self, buf, offsets, caplens, tss, frame, linktype, data_at=16):
        self.runs.append((linktype, len(offsets), tss))
        yield from range(len(offsets))


def _block(endian, btype, body):
    body += bytes(-len(body) % 4)
    return (struct.pack(endian + "II", btype, 12 + len(body)) + body
            + struct.pack(endian + "I", 12 + len(body)))


def test_pcapng_runs_are_what_the_reader_reads(monkeypatch):
    """Two interfaces (Ethernet with 1 ns ticks and a time offset, raw IPv4),
    packets alternating in groups, a block claiming more bytes than it holds,
    one naming an interface there is not: the reader with a skimmer that
    skips nothing gives the same items as without, and every run it handed
    over had one link type."""
    from pcapca.capture.reader import read_capture
    monkeypatch.setattr(skim, "MIN_RECORDS", 2)
    e = "<"
    eth = b"\0" * 12 + b"\x08\x00"
    ip = bytes([0x45]) + bytes(19)
    idb_eth = struct.pack(e + "HHI", 1, 0, 0) + struct.pack(e + "HHB3x", 9, 1, 9) \
        + struct.pack(e + "HHq", 14, 8, 1000) + bytes(4)
    idb_raw = struct.pack(e + "HHI", 101, 0, 0)
    blocks = [_block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1)),
              _block(e, 1, idb_eth), _block(e, 1, idb_raw)]
    n = 0
    for group in range(6):
        iid, data = (0, eth + ip) if group % 2 == 0 else (1, ip)
        for _ in range(3 + group):
            n += 1
            ticks = 1_800_000_000_000_000_000 + n
            caplen = len(data) + (100 if n == 20 else 0)       # block 20: too short for it
            blocks.append(_block(e, 6, struct.pack(e + "IIIII", 7 if n == 25 else iid,
                                                   ticks >> 32, ticks & 0xFFFFFFFF, caplen,
                                                   len(data)) + data))   # 25: no interface 7
    capture = b"".join(blocks)
    plain = list(read_capture(capture))
    fake = _Transparent()
    skimmed = list(read_capture(capture, skim=fake))
    assert skimmed == plain
    problems = [p.message for p in plain if p.__class__.__name__ == "Problem"]
    assert any("claims" in m for m in problems) and any("interface 7" in m for m in problems)
    packets = [p for p in plain if p.__class__.__name__ == "Packet"]
    assert packets[0].ts == 1_800_000_000_000_000_001 + 1000 * 10**9
    handed = [ts for _, _, tss in fake.runs for ts in tss]
    assert handed and set(handed) <= {p.ts for p in packets}
    for linktype, count, tss in fake.runs:
        assert {p.interface.linktype for p in packets if p.ts in tss} == {linktype}


def test_a_skipped_first_message_ends_the_start_of_its_stream(skims, capsys, monkeypatch,
                                                             tmp_path):
    """Decoding resumes at a version request only at the very start of a
    stream: once the client's first message (skipped) has gone by, bytes
    lost later are followed by a search for the next other header."""
    import caproto as ca
    steps = [
        (True, ca_bytes(ca.ReadNotifyRequest(data_type=6, data_count=1, sid=10, ioid=1))),
        (True, ca_bytes(ca.ReadNotifyRequest(data_type=6, data_count=1, sid=10, ioid=2))),  # lost
        (False, ca_bytes(ca.ReadNotifyResponse(data=[1.5], data_type=ca.ChannelType.DOUBLE,
                                               data_count=1, status=1, ioid=1))),
        (True, ca_bytes(ca.VersionRequest(priority=0, version=13),
                        ca.CreateChanRequest(name="X:a", cid=1, version=13)))]
    path = tmp_path / "start.pcap"
    path.write_bytes(tcp_capture(steps, order=[0, 1, 2, 3, 5, 6]))
    fast, slow = both(capsys, monkeypatch, str(path), "--format", "{frame} {pv} {name}",
                      "--pv", "X:a")
    assert fast == slow
    assert fast[1].splitlines() == ["6 X:a CreateChanRequest"]
    assert "6 packets; 3 CA messages" in fast[2]        # (not the version request)
    assert sum(s.skipped for s in skims) >= 1


def test_a_skipped_message_completes_its_stream(skims, capsys, monkeypatch, tmp_path):
    """A message cut by lost bytes, then the client's SYN again (the stream
    starts over) and a read the shortcut skips: nothing is left incomplete."""
    import caproto as ca
    read = ca_bytes(ca.ReadNotifyRequest(data_type=6, data_count=1, sid=10, ioid=1))
    steps = [(True, read[:10]), (True, read[10:]),                     # the second is lost
             (False, ca_bytes(ca.ReadNotifyResponse(data=[1.5], data_type=ca.ChannelType.DOUBLE,
                                                    data_count=1, status=1, ioid=1))),
             ("syn", b""), (True, read)]
    path = tmp_path / "again.pcap"
    path.write_bytes(tcp_capture(steps, order=[0, 1, 2, 3, 5, 6, 7]))
    fast, slow = both(capsys, monkeypatch, str(path), "--format", "{frame} {pv} {name}",
                      "--pv", "X:a")
    assert fast == slow
    assert fast[2].endswith("pcapca: 7 packets; 2 CA messages; 1 decode problems; "
                            "6 TCP bytes missing in 1 gaps\n")          # (nothing incomplete)
    assert sum(s.skipped for s in skims) >= 1


def test_interfaces_of_one_section_do_not_stop_the_shortcut_in_the_next(skims, capsys,
                                                                        monkeypatch, tmp_path):
    """A pcapng file of three sections: two interfaces and no packets, then
    one interface with the packets of corpus_libca.pcap, then another with
    the same packets again (as ``cat`` of two captures gives). Interfaces
    belong to their section (pcapng): packets are compared with the ones
    before (the same packet on two interfaces) only within a section that
    has several, so the later sections are skimmed, and the third one's
    packets are a new capture of the same traffic: decoded again, as
    Wireshark shows them. (Until 2026-11-30 the interfaces were counted
    across sections, which made each file of a ring buffer read after the
    first look like a second interface.)"""
    sections = _pcapng(fixture("corpus_libca.pcap").read_bytes(), "<")
    shb_idb = 28 + 20                                   # (SHB and IDB blocks of _pcapng)
    two = sections[:28] + sections[28:shb_idb] * 2
    path = tmp_path / "sections.pcapng"
    path.write_bytes(two + sections + sections)
    fast, slow = both(capsys, monkeypatch, str(path), "--format", FORMAT, "--pv", "CORPUS:dbl")
    assert fast == slow
    assert "seen again on another interface" not in fast[2]
    assert fast[2].startswith("pcapca: 1614 packets; 1830 CA messages;")      # (915 each)
    assert sum(s.skipped for s in skims) > 0


@pytest.mark.parametrize("alone", [True, False])
def test_a_data_count_over_the_payload_is_reported_with_the_shortcut(alone, skims, capsys,
                                                                    monkeypatch, tmp_path):
    """A reply saying more values than its payload holds is a decode problem
    (pcapca.ca.framing.count_base), also when the filter drops its PV: the
    shortcut must not take it, alone in its packet or with another."""
    from tests.builders import BASIC, build, data, lying_count_recs, lying_reply
    reply = lying_reply(65535, extended=False)
    if not alone:
        reply += struct.pack(">HHHHII", 15, 8, 6, 1, 1, 99) + struct.pack(">d", 1.5)
    path = tmp_path / "lying.pcap"
    path.write_bytes(build(data(BASIC)[:24], lying_count_recs(reply)))
    fast, slow = both(capsys, monkeypatch, str(path), "--format", FORMAT, "--pv", "FIX:counter")
    assert fast == slow and sum(s.skipped for s in skims) > 0
    assert "data_count 65535 is more STRING values than its 8-byte payload holds" in fast[2]
