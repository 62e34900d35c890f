"""pcapca.filters on real captures: exact counts of kept messages.

Expected figures were counted independently of pcapca.filters (awk over the
unfiltered ``pcapca print`` output; the per-PV figures of corpus_libca.pcap
also agree with /work/shared/corpus/EXPECTED.md).
"""
import datetime
import fnmatch
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from pcapca.filters import Filter, FilterError, _Matcher, parse_time, parse_when
from pcapca.pipeline import read

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures")
LIBCA = os.path.join(FIXTURES, "corpus_libca.pcap")
BASIC = os.path.join(FIXTURES, "basic.pcap")


@pytest.fixture(scope="module")
def libca():
    records = list(read(LIBCA))
    assert len(records) == 915
    return records


@pytest.fixture(scope="module")
def basic():
    records = list(read(BASIC))
    assert len(records) == 39
    return records


def count(records, **kw):
    f = Filter.build(**kw)
    return sum(1 for r in records if f.matches(r))


# ------------------------------------------------------------------ PVs
@pytest.mark.parametrize("pv, expected", [
    ("CORPUS:dbl", 38), ("CORPUS:counter", 36), ("CORPUS:sine", 35),
    ("SOFT:counter", 35), ("SOFT:ai", 34), ("NOPE:missing_0", 16), ("NOPE:missing_4", 16),
    ("CORPUS:limited", 10),
])
def test_pv_exact(libca, pv, expected):
    assert count(libca, pv=pv) == expected
    assert count(libca, pv=[pv]) == expected


def test_pv_glob(libca):
    assert count(libca, pv="SOFT:*") == 358
    assert count(libca, pv="NOPE:missing_?") == 80
    assert count(libca, pv="NOPE:missing_[0-2]") == 48
    assert count(libca, pv="*") == 915 - 42          # every message with a PV
    assert count(libca, pv="soft:*") == 0             # case-sensitive
    assert count(libca, pv="SOFT:lsi.VAL$") == 28     # $ is literal in a glob


def test_pv_regex_is_searched(libca):
    assert count(libca, pv="re:^CORPUS:(dbl|counter)$") == 74
    # re.search, like grep: "counter" anywhere in the name
    assert count(libca, pv="re:counter") == 36 + 35
    assert count(libca, pv="re:^counter") == 0
    assert count(libca, pv="re:missing_[34]$") == 32


def test_pv_any_of_a_kind(libca):
    assert count(libca, pv=["CORPUS:dbl", "SOFT:*", "re:^NOPE:"]) == 38 + 358 + 80


def test_not_pv(libca):
    # messages without a PV are not excluded by not_pv
    assert count(libca, not_pv="*") == 42
    assert count(libca, not_pv=["SOFT:*", "NOPE:*"]) == 915 - 358 - 80
    assert count(libca, pv="SOFT:*", not_pv="*.*") == 358 - 28 - 28
    assert count(libca, pv="SOFT:*", not_pv="SOFT:*") == 0


def test_no_pv_never_matches_pv(libca, basic):
    assert count(basic, pv="*") == 39 - 6         # 6 version/host/client name messages
    assert count(basic, pv="FIX:dbl") == 17
    assert count(basic, pv="FIX:counter") == 16


# ------------------------------------------------------------------ commands
def test_command(libca):
    assert count(libca, command="ReadNotifyResponse") == 230
    assert count(libca, command="ReadNotify*") == 460
    assert count(libca, command=["ReadNotify*", "EventAddResponse"]) == 536
    assert count(libca, command="re:^Search") == 134 + 27
    assert count(libca, command="re:Response$") == 230 + 76 + 27 * 4 + 11 + 5 + 8 + 1
    assert count(libca, command="EventCancelResponse") == 5
    assert count(libca, command="ErrorResponse") == 1


def test_not_command(libca):
    assert count(libca, not_command="SearchRequest") == 915 - 134
    assert count(libca, command="ReadNotify*", not_command="*Request") == 230


def test_kinds_combine(libca):
    assert count(libca, pv="SOFT:*", command="ReadNotifyResponse") == 110
    assert count(libca, pv="NOPE:*", command="SearchResponse") == 0   # nobody answered
    assert count(libca, pv="CORPUS:limited", command="ErrorResponse") == 1


# ------------------------------------------------------------------ hosts, ports
def test_port(libca):
    assert count(libca, port=5066) == 419
    assert count(libca, port="5064") == 492
    assert count(libca, port=5065) == 4                # beacons to the repeater
    assert count(libca, port=[5064, 5065, 5066]) == 915
    assert count(libca, port=5066, command="Beacon") == 0
    assert count(libca, port=5065, command="Beacon") == 4


def test_host(libca):
    assert count(libca, host="127.0.0.1") == 915
    assert count(libca, host="127.0.0.0/8") == 915
    assert count(libca, host="10.0.0.0/24") == 0
    assert count(libca, host="10.0.0.1") == 0
    assert count(libca, host=["10.0.0.0/24", "127.0.0.1/32"]) == 915
    assert count(libca, host="::1") == 0


# ------------------------------------------------------------------ time
# Real time stamps of corpus_libca.pcap: 6 messages at 1795977866.103977,
# 6 at 1795977873.783998 (= 2026-11-29T18:44:26.103977Z / 18:44:33.783998Z).
def test_since_inclusive_until_exclusive(libca):
    assert count(libca, since="1795977866.103977") == 208
    assert count(libca, since="1795977866.103978") == 202
    assert count(libca, until="1795977873.783998") == 849
    assert count(libca, until="1795977873.783999") == 855
    assert count(libca, since="1795977866.103977", until="1795977873.783998") == 142
    assert count(libca, since=1795977866.103977, until=1795977873.783998) == 142


def test_iso_times(libca):
    assert count(libca, since="2026-11-29T18:44:26.103977Z") == 208
    assert count(libca, since="2026-11-29T19:44:26.103977+01:00") == 208
    assert count(libca, since="2026-11-29T18:44:26.103977") == 208   # naive = UTC
    assert count(libca, until="2026-11-29T18:44:30Z") == 847
    assert count(libca, until="2026-11-29 18:44:30") == 847
    assert count(libca, since="2026-11-29T18:44:26.103977Z",
                 until="2026-11-29T18:44:33.783998Z", pv="SOFT:*") == 28


def test_parse_time_exact():
    assert parse_time("2026-11-29T18:44:00Z") == 1795977840 * 10**9
    assert parse_time("1795977745.123456789") == 1795977745123456789
    assert parse_time("2026-11-29T18:44:00.000000001Z") == 1795977840 * 10**9 + 1
    assert parse_time("2026-11-29T13:44:00-05:00") == 1795977840 * 10**9
    assert parse_time("2026-11-29") == 1795910400 * 10**9
    assert parse_time(1795977745.5) == 1795977745500000000
    assert parse_time(datetime.datetime(2026, 11, 29, 18, 44)) == 1795977840 * 10**9


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime.datetime(1970, 1, 1),
                    max_value=datetime.datetime(2200, 1, 1)),
       st.integers(-14 * 60, 14 * 60))
def test_parse_time_agrees_with_datetime(dt, offset_min):
    tz = datetime.timezone(datetime.timedelta(minutes=offset_min))
    aware = dt.replace(tzinfo=tz)
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    delta = aware - epoch
    expected = (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    assert parse_time(aware.isoformat()) == expected
    assert parse_time(dt.isoformat()) == parse_time(dt.isoformat() + "Z")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="AB:*?[]!_.", max_size=6), st.text(alphabet="AB:_.", max_size=6))
def test_glob_matcher_is_fnmatchcase(pattern, name):
    if not pattern:
        return
    assert _Matcher([pattern])(name) == fnmatch.fnmatchcase(name, pattern)


# ------------------------------------------------------------------ API
def test_empty_filter():
    f = Filter.build()
    assert f.is_empty
    assert Filter.build(pv=[], port=None).is_empty
    assert not Filter.build(port=5064).is_empty
    assert not Filter.build(until="1").is_empty


def test_filter_fields():
    f = Filter.build(pv="A:*", host=["10.0.0.0/24", "10.0.0.1"], port=["5064", 5064],
                     since="2026-11-29T18:44:00Z")
    assert f.pv == ("A:*",)
    assert f.hosts == ("10.0.0.0/24", "10.0.0.1")
    assert f.ports == (5064,)
    assert f.since_ns == 1795977840 * 10**9 and f.until_ns is None
    with pytest.raises(Exception):
        f.pv = ()                                      # frozen


@pytest.mark.parametrize("kw, key, text", [
    (dict(pv="re:("), "pv", "'re:('"),
    (dict(not_pv=""), "not_pv", "empty pattern"),
    (dict(pv=5), "pv", "expected a string"),
    (dict(command="ReadNotifyResponce"), "command", "did you mean ReadNotifyResponse"),
    (dict(not_command="Foo*"), "not_command", "'Foo*'"),
    (dict(host="10.0.0.1/24"), "host", "host bits set"),
    (dict(host="10.0.0.300"), "host", "'10.0.0.300'"),
    (dict(port=70000), "port", "70000"),
    (dict(port="http"), "port", "'http'"),
    (dict(since="yesterday"), "since", "'yesterday'"),
    (dict(until="2026-13-01"), "until", "'2026-13-01'"),
    (dict(since="1.0000000001"), "since", "more than 9 decimals"),
    (dict(since="2026-11-29T18:44:00Z", until="2026-11-29T18:44:00Z"), "until", "not after"),
    (dict(since="+2", until="+1.5"), "until", "not after"),
    (dict(since="+1.0000000001"), "since", "more than 9 decimals"),
    (dict(since="+1e3"), "since", "+SECONDS after the capture's first packet like +12.5"),
])
def test_build_errors(kw, key, text):
    with pytest.raises(FilterError) as info:
        Filter.build(**kw)
    assert info.value.key == key
    assert text in str(info.value)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ CLI
def run(*args):
    return subprocess.run([sys.executable, "-m", "pcapca", *args], cwd=ROOT,
                          capture_output=True, text=True)


def lines(*args):
    p = run("print", "-q", "--format", "{frame} {pv} {name}", *args)
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def test_cli_filters():
    assert len(lines(LIBCA)) == 915
    assert len(lines(LIBCA, "--pv", "SOFT:*")) == 358
    assert len(lines(LIBCA, "--pv", "re:^CORPUS:(dbl|counter)$")) == 74
    assert len(lines(LIBCA, "--pv", "CORPUS:dbl", "--pv", "CORPUS:counter")) == 74
    assert len(lines(LIBCA, "--not-pv", "*")) == 42
    assert len(lines(LIBCA, "--command", "ReadNotify*", "--not-command", "*Request")) == 230
    assert len(lines(LIBCA, "--host", "127.0.0.0/8", "--port", "5066")) == 419
    assert len(lines(LIBCA, "--since", "2026-11-29T18:44:26.103977Z",
                     "--until", "1795977873.783998")) == 142
    # basic.pcap: the subscription to FIX:counter and its 4 updates
    assert [l.split(" ", 1)[1] for l in
            lines(BASIC, "--pv", "FIX:counter", "--command", "EventAdd*")] == [
        "FIX:counter EventAddRequest"] + ["FIX:counter EventAddResponse"] * 4


def test_cli_filter_json():
    p = run("print", "-q", "--json", "--pv", "FIX:dbl", "--command", "WriteNotify*", BASIC)
    assert p.returncode == 0
    assert [l.count('"pv": "FIX:dbl"') for l in p.stdout.splitlines()] == [1, 1]


@pytest.mark.parametrize("args, option", [
    (["--pv", "re:("], "--pv"),
    (["--not-pv", "re:[a-"], "--not-pv"),
    (["--command", "ReadNotifyResponce"], "--command"),
    (["--not-command", "re:)"], "--not-command"),
    (["--host", "10.0.0.1/33"], "--host"),
    (["--port", "x"], "--port"),
    (["--port", "-1"], "--port"),
    (["--since", "yesterday"], "--since"),
    (["--until", "2026-02-30"], "--until"),
    (["--since", "10", "--until", "5"], "--since/--until"),
])
def test_cli_bad_values(args, option):
    p = run("print", BASIC, *args)
    assert p.returncode == 2
    assert p.stdout == ""
    assert "Traceback" not in p.stderr
    assert len(p.stderr.splitlines()) == 1
    assert p.stderr.startswith(f"pcapca: error: {option}")


# ------------------------------------------------------------------ +SECONDS
FIRST_LIBCA = 1795977865623951000          # corpus_libca.pcap's first packet (frame 1)


def test_parse_when():
    assert parse_when("+12.5") == (12_500_000_000, True)
    assert parse_when(" +0.000000001 ") == (1, True)
    assert parse_when("12.5") == (12_500_000_000, False)
    assert parse_when("2026-11-29T18:44:00Z") == (1795977840 * 10**9, False)


def test_relative_times_count_from_the_first_packet():
    """+SECONDS are from the capture's first packet (frame 1), whatever it
    is: the same messages as the absolute times they stand for."""
    rel = lines(LIBCA, "--since", "+0.5", "--until", "+7.2")
    assert rel == lines(LIBCA, "--since", "1795977866.123951", "--until", "1795977872.823951")
    assert 0 < len(rel) < 915
    # mixed: an absolute since and a relative until
    assert lines(LIBCA, "--since", "1795977866.123951", "--until", "+7.2") == rel
    # print, stats and annotate agree
    p = run("stats", "--json", "--since", "+0.5", "--until", "+7.2", LIBCA)
    import json
    assert json.loads(p.stdout)["capture"]["messages_counted"] == len(rel)


def test_relative_times_anchor_on_a_packet_that_is_not_ca():
    """noise.pcap begins with packets that are not CA: +0 is the first
    packet's time, not the first message's."""
    noise = os.path.join(FIXTURES, "noise.pcap")
    records = list(read(noise))
    f = Filter.build(since="+0")
    from pcapca.pipeline import decode
    from pcapca.ca.records import Decoded
    first = None
    for item in decode(noise, anchor=f.anchor):
        if isinstance(item, Decoded):
            first = item.packet.ts if first is None else first
    assert f._start.ts == first < records[0].ts
    late = (records[0].ts - first) / 1e9 + 1e-6            # just after the first message
    assert lines(noise, "--since", f"+{late:.6f}") == [
        f"{r.frame} {r.pv or ''} {r.name}" for r in records if r.ts > records[0].ts]


def test_relative_times_of_several_captures_count_from_the_first_file(tmp_path):
    ring = sorted(os.path.join(FIXTURES, "ring", n) for n in os.listdir(
        os.path.join(FIXTURES, "ring")))
    joined = os.path.join(FIXTURES, "ring.pcapng")
    got = lines(*ring, "--since", "+1.2", "--until", "+2.5")
    assert got and got == lines(joined, "--since", "+1.2", "--until", "+2.5")


def test_relative_times_in_a_config_file_and_annotate(tmp_path, tshark):
    cfg = tmp_path / "f.yaml"
    cfg.write_text("filter:\n  since: +0.5\n  until: +7.2\n")
    rel = lines(LIBCA, "--config", str(cfg))
    assert rel == lines(LIBCA, "--since", "+0.5", "--until", "+7.2")
    out = tmp_path / "a.pcapng"
    p = run("annotate", "-q", "--since", "+0.5", "--until", "+7.2", LIBCA, str(out))
    assert p.returncode == 0, p.stderr
    q = subprocess.run([tshark, "-r", str(out), "-Y", "frame.comment", "-T", "fields",
                        "-e", "frame.number"], capture_output=True, text=True)
    # (without --keep-all, the packets with a kept message: each has its comments)
    assert len(q.stdout.split()) == len({l.split()[0] for l in rel})
