"""`pcapca print`: caproto-shark compatible lines, new tokens, JSON, pipes, errors."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

import pcapca
from pcapca.escape import printable
from pcapca.output.reprs import command_repr

from tests.conftest import ROOT, fixture, live_print, run_cli

SHARK = shutil.which("caproto-shark") or os.path.join(os.path.dirname(sys.executable), "caproto-shark")
AMBIGUOUS = ("EventAddRequestOrResponse", "ClearChannelRequestOrResponse", "EchoRequestOrResponse")


def lines(res):
    return res.stdout.decode().splitlines()


def test_default_format_is_caproto_sharks():
    """Every line caproto-shark prints is printed identically by pcapca,
    except that pcapca names the classes caproto-shark cannot tell apart."""
    if not os.path.exists(SHARK):
        pytest.skip("caproto-shark not installed")
    path = fixture("basic.pcap")
    with open(path, "rb") as f:
        shark = subprocess.run([SHARK], stdin=f, capture_output=True, check=True).stdout.decode().splitlines()
    ours = lines(run_cli("print", path, "--quiet", check=0))
    assert len(ours) == len(shark) == 39
    differing = [(a, b) for a, b in zip(ours, shark) if a != b]
    assert len(differing) == 9
    for mine, theirs in differing:
        assert any(name in theirs for name in AMBIGUOUS)
        assert mine.split(" ", 2)[:2] == theirs.split(" ", 2)[:2]   # same time and addresses


def test_libca_session_every_message_where_caproto_shark_drops_some():
    if not os.path.exists(SHARK):
        pytest.skip("caproto-shark not installed")
    path = fixture("libca.pcap")
    with open(path, "rb") as f:
        shark = subprocess.run([SHARK], stdin=f, capture_output=True).stdout.decode().splitlines()
    ours = lines(run_cli("print", path, "--quiet", check=0))
    assert len(ours) == 94
    assert len(shark) < len(ours)
    mine = set(ours)
    prefixes = {l.split(" ", 2)[0] + " " + l.split(" ", 2)[1] for l in ours}
    for line in shark:
        if line in mine:
            continue
        # caproto-shark guesses classes message by message: the ambiguous ones,
        # and libca's VersionRequest (priority in parameter1) taken for a response
        assert any(a in line for a in AMBIGUOUS) or "->127.0.0.1:5064 VersionResponse" in line, line
        assert " ".join(line.split(" ", 2)[:2]) in prefixes


def test_new_tokens():
    res = run_cli("print", fixture("basic.pcap"), "--quiet", "--format",
                  "{frame}|{sport}|{dport}|{proto}|{role}|{name}|{pv}|{request_frame}|{time}",
                  check=0)
    out = lines(res)
    assert out[0].startswith("1|") and out[0].split("|")[3:7] == ["udp", "client", "VersionRequest", ""]
    assert out[1].split("|")[5:7] == ["SearchRequest", "FIX:dbl"]
    read_reply = next(l.split("|") for l in out if "|ReadNotifyResponse|" in l)
    assert read_reply[2].isdigit() and read_reply[1] == "5064"
    assert read_reply[6] == "FIX:dbl" and read_reply[7] == "16"
    assert read_reply[8].count(".") == 1 and len(read_reply[8].split(".")[1]) == 9


def test_command_attributes_and_missing_ones_are_empty():
    out = lines(run_cli("print", fixture("basic.pcap"), "-q", "--format",
                        "{name} {command.sid}", check=0))
    assert "ReadNotifyRequest 0" in out
    assert "VersionRequest " in out           # no sid: empty, not an error


def test_command_is_exactly_caproto_repr_on_one_line():
    records = list(pcapca.read(fixture("bigarray.pcap")))
    out = lines(run_cli("print", fixture("bigarray.pcap"), "-q", "--format", "{command}", check=0))
    assert len(out) == len(records) == 21
    for text, record in zip(out, records):
        assert text == repr(record.command).replace("\n", "").replace("       ", " ") or \
            text == command_repr(record.command)
        assert text == command_repr(record.command)
    big = next(t for t in out if t.startswith("ReadNotifyResponse"))
    assert "array([0.0000e+00, 5.0000e-01, 1.0000e+00, ..., 4.9998e+04, 4.9998e+04,\n" not in big
    assert "..." in big                      # numpy's own summary of a long array


def test_json_lines():
    out = lines(run_cli("print", fixture("reuse.pcap"), "--json", "-q", check=0))
    objs = [json.loads(l) for l in out]
    assert len(objs) == 44
    for o in objs:
        for key in ("frame", "timestamp", "src", "sport", "dst", "dport", "proto", "role",
                    "command", "pv", "repr", "fields"):
            assert key in o
        assert isinstance(o["timestamp"], str) and len(o["timestamp"].split(".")[1]) == 9
    err = [o for o in objs if o["command"] == "ErrorResponse"]
    assert [o["pv"] for o in err] == ["FIX:limited", "FIX:limited"]
    assert err[0]["fields"]["status"] == "ECA_PUTFAIL"
    read = next(o for o in objs if o["command"] == "ReadNotifyResponse")
    assert read["fields"]["data"] == [3.25]
    assert read["fields"]["data_type"] == "DOUBLE"
    assert read["latency"] > 0 and read["request_frame"] < read["frame"]


def test_pv_is_the_name_up_to_its_nul_and_command_stays_caprotos():
    """Issue 21 point 16: search and create payloads "FIX:dbl\\0:GUN" (stale
    bytes after the NUL) are about FIX:dbl, as a server reads them; the
    filter finds them, the file (filtered print's shortcut) and stdin alike."""
    path = fixture("stalenames.pcap")
    fmt = "{frame} {pv} {name} {latency} {command}"
    want = ["1 FIX:dbl SearchRequest  SearchRequest(name='FIX:dbl\\x00:GUN', cid=1, version=8, "
            "reply=5)",
            "9 FIX:dbl CreateChanRequest  CreateChanRequest(name='FIX:dbl\\x00:GUN', cid=0, "
            "version=8)",
            "10 FIX:dbl CreateChFailResponse 0.000839 CreateChFailResponse(cid=0)"]
    assert lines(run_cli("print", path, "-q", "--pv", "FIX:dbl", "--format", fmt, check=0)) == want
    assert lines(run_cli("print", "-", "-q", "--pv", "FIX:dbl", "--format", fmt,
                         input=path.read_bytes(), check=0)) == want
    objs = [json.loads(l) for l in lines(run_cli("print", path, "--json", "-q", check=0))]
    assert [(o["frame"], o["pv"], o["fields"].get("name")) for o in objs if o["pv"]] == [
        (1, "FIX:dbl", "FIX:dbl\x00:GUN"), (9, "FIX:dbl", "FIX:dbl\x00:GUN"), (10, "FIX:dbl", None)]


def test_stdin_and_file_give_the_same_output():
    path = fixture("session.pcapng")
    a = run_cli("print", path, "-q", check=0).stdout
    b = run_cli("print", "-", "-q", input=path.read_bytes(), check=0).stdout
    assert a == b and a.count(b"\n") == 120


def test_live_pipe_shows_messages_before_the_capture_ends():
    """A slow writer (like tcpdump -U -w -): lines appear while it still writes."""
    data = fixture("basic.pcap").read_bytes()
    half = len(data) // 2
    first, rest, status = live_print(data[:half], data[half:], "-q", "--format", "{frame} {name}")
    assert first == b"1 VersionRequest\n", "no output before end of input"
    assert rest.count(b"\n") == 38 and status == 0


def test_live_pcapng_pipe_shows_messages_before_the_capture_ends():
    """The same from dumpcap -w - (pcapng, whose packet blocks already
    received are parsed in place): the input stops inside a block."""
    data = fixture("session.pcapng").read_bytes()
    half = len(data) // 2 + 3
    first, rest, status = live_print(data[:half], data[half:], "-q", "--format", "{frame} {name}")
    assert first == b"1 RepeaterRegisterRequest\n", "no output before end of input"
    assert rest.count(b"\n") == 119 and status == 0


def test_broken_pipe_ends_quietly():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = f"'{sys.executable}' -m pcapca print '{fixture('bigarray.pcap')}' | head -n 2"
    res = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count(b"\n") == 2
    assert b"Traceback" not in res.stderr and b"Broken pipe" not in res.stderr


@pytest.mark.parametrize("cmd", ["print", "stats"])
def test_closed_stdout_is_a_usage_error(cmd):
    from tests.conftest import run_closed
    code, _, err = run_closed(1, cmd, fixture("basic.pcap"))
    assert (code, err.decode()) == (2, f"pcapca: error: standard output is closed: there is "
                                       f"nowhere to write {cmd}'s output (redirect it to a "
                                       f"file or /dev/null)\n")


@pytest.mark.parametrize("cmd", ["print", "stats"])
def test_closed_stderr_makes_messages_go_nowhere(cmd):
    """``2>&-``: the output is as usual (a progress bar is not asked for)."""
    from tests.conftest import run_closed
    code, out, _ = run_closed(2, cmd, fixture("noise.pcap"))
    assert (code, out) == (0, run_cli(cmd, fixture("noise.pcap"), check=0).stdout)


def test_closed_stdin_is_a_usage_error():
    from tests.conftest import run_closed
    code, out, err = run_closed(0, "print", "-")
    assert (code, out, err) == (2, b"", b"pcapca: error: standard input is closed: there is no "
                                        b"capture to read from -\n")


@pytest.mark.parametrize("args", [("print", "fixtures/basic.pcap"), ("print", "-"),
                                  ("stats", "fixtures/basic.pcap")])
def test_a_full_stdout_is_exit_4_naming_it(tmp_path, args):
    """/dev/full: a write fails with ENOSPC (print - writes message by message)."""
    from tests.conftest import device
    full = device(tmp_path, "full", 7)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(full, "wb") as stdout:
        res = subprocess.run([sys.executable, "-m", "pcapca", *args], stdout=stdout,
                             stderr=subprocess.PIPE, input=fixture("basic.pcap").read_bytes(),
                             env=env, cwd=str(ROOT), timeout=120)
    assert (res.returncode, res.stderr) == (
        4, b"pcapca: error: cannot write standard output: No space left on device\n")


@pytest.mark.parametrize("kind,name", [("snoop", "Sun snoop"),
                                       ("netmon2", "Microsoft Network Monitor 2.x"),
                                       ("modpcap", "modified (Kuznetzov) pcap")])
def test_another_capture_format_is_named_with_the_command_that_converts_it(tmp_path, kind, name):
    """basic.pcap written by editcap in another format: one line naming the
    format and the editcap command; the command's output prints as basic.pcap."""
    from tests.conftest import needs_tshark
    needs_tshark()                                  # (editcap comes with tshark)
    other = tmp_path / f"basic.{kind}"
    subprocess.run(["editcap", "-F", kind, str(fixture("basic.pcap")), str(other)], check=True)
    res = run_cli("print", other)
    assert res.returncode == 2 and res.stdout == b""
    assert res.stderr.decode() == (
        f"pcapca: error: {other}: a {name} capture; pcapca reads pcap and pcapng: convert it "
        f"first with Wireshark's editcap: editcap -F pcapng {other} {other}.pcapng\n")
    subprocess.run(["editcap", "-F", "pcapng", str(other), f"{other}.pcapng"], check=True)
    fmt = ("--format", "{frame} {pv} {command}")
    assert (run_cli("print", f"{other}.pcapng", *fmt, check=0).stdout
            == run_cli("print", fixture("basic.pcap"), *fmt, check=0).stdout)


@pytest.mark.parametrize("args,message", [
    (("print", "no/such/file.pcap"), "cannot open 'no/such/file.pcap': No such file or directory"),
    (("print", "fixtures/README.md"), "not a pcap or pcapng file"),
    (("print", "fixtures/basic.pcap", "--format", "{nope}"), "unknown token '{nope}'"),
    (("print", "fixtures/basic.pcap", "--format", "{command.nope}"), "no CA message field or attribute named 'nope'"),
    (("print", "fixtures/basic.pcap", "--format", "{frame"), "bad format string"),
    (("print", "fixtures/basic.pcap", "--format", "{}"), "positional field"),
])
def test_usage_errors_are_one_line_exit_2(args, message):
    res = run_cli(*args)
    err = res.stderr.decode()
    assert res.returncode == 2
    assert res.stdout == b""
    assert err.count("\n") == 1 and message in err, err
    assert "Traceback" not in err


def test_python_api_has_caproto_shark_attributes():
    r = next(x for x in pcapca.read(fixture("basic.pcap")) if x.name == "ReadNotifyResponse")
    assert r.src == "127.0.0.1" and r.transport.sport == 5064 and r.ip.p == 6
    assert r.ethernet.type == 0x0800
    assert isinstance(r.timestamp, float) and isinstance(r.ts, int)
    assert (r.frame, r.pv, r.role, r.proto) == (17, "FIX:dbl", "server", "tcp")


def test_a_field_caproto_cannot_read_says_so_and_the_run_goes_on(tmp_path):
    """A damaged reply whose data or metadata caproto's property cannot read
    (a DOUBLE with 4 payload bytes; a CTRL_ENUM claiming 20 of its 16 enum
    strings): the token prints (error: ...), the lines after it are printed
    (this was an internal error that ended the run); {command} has caproto's
    own (repr: ...) for the same fields."""
    import struct
    import caproto as ca
    from tests.builders import ca_bytes, tcp_capture

    def reply(dtype, count, ioid, payload):
        return struct.pack(">HHHHII", 15, len(payload), dtype, count, 1, ioid) + payload
    enum_md = struct.pack(">hhh", 0, 0, 20) + bytes(16 * 26)
    path = tmp_path / "damaged.pcap"
    path.write_bytes(tcp_capture([
        (True, ca_bytes(ca.VersionRequest(priority=0, version=13),
                        ca.ReadNotifyRequest(data_type=6, data_count=1, sid=1, ioid=1),
                        ca.ReadNotifyRequest(data_type=31, data_count=1, sid=1, ioid=2))),
        (False, reply(6, 1, 1, b"\0\0\0\1")
         + reply(31, 1, 2, enum_md + struct.pack(">H", 1))
         + ca_bytes(ca.ReadNotifyResponse(data=[2.5], data_type=6, data_count=1, status=1, ioid=3,
                                          metadata=None))),
    ]))
    res = run_cli("print", "-q", path, "--format", "{frame} {command.data} {command.metadata}",
                  check=0)
    # (the DOUBLE whose payload is shorter than its data_count says is a decode
    # problem since the element count is checked against the payload)
    assert lines(res) == ["4  ", "4  ", "4  ",
                          "5 [1] (error: invalid index)",
                          "5 [2.5] None"]
    assert res.stderr.decode() == (
        "pcapca: frame 5: 127.0.0.1:5064->127.0.0.1:40000: ReadNotifyResponse could not be "
        "decoded: data_count 1 is more DOUBLE values than its 4-byte payload holds (further "
        "problems in this stream are only counted)\n")
    text = lines(run_cli("print", "-q", path, "--format", "{command}", check=0))
    assert "metadata=(repr: invalid index)" in text[3]


def test_a_name_with_control_characters_stays_on_its_line(tmp_path):
    """A PV name is bytes from the wire: one with a newline, a carriage return
    or a terminal escape (hostile, or a misread datagram) must not split a
    message's line, rewrite the terminal, or break stats' tables. Text output
    writes such characters as Python escapes; JSON keeps the name as it is."""
    raw = fixture("basic.pcap").read_bytes()
    evil = "F\nX\x1b[1\r"                       # as long as FIX:dbl, so every length holds
    assert raw.count(b"FIX:dbl\0") == 2         # the search and the create
    path = tmp_path / "evil.pcap"
    path.write_bytes(raw.replace(b"FIX:dbl\0", evil.encode() + b"\0"))
    shown = "F\\nX\\x1b[1\\r"
    res = run_cli("print", path, "--format", "{frame} {pv}|{command.name}", check=0)
    text = res.stdout.decode()
    assert text.count("\n") == 39 and "\x1b" not in text and "\r" not in text
    assert f"1 {shown}|{shown}" in text.splitlines()
    assert f"10 {shown}|{shown}" in text.splitlines()
    assert sum(line.split(" ", 1)[1].startswith(shown + "|") for line in text.splitlines()) == 17
    objs = [json.loads(l) for l in run_cli("print", path, "--json", check=0).stdout.splitlines()]
    assert sum(o["pv"] == evil for o in objs) == 17
    stats = run_cli("stats", path, check=0).stdout.decode()
    assert "\x1b" not in stats and "\r" not in stats
    plain = run_cli("stats", fixture("basic.pcap"), check=0).stdout.decode()
    row = next(l for l in plain.splitlines() if l.startswith("  FIX:dbl "))
    assert [l.split() for l in stats.splitlines() if shown in l] == [
        [shown] + row.split()[1:]]                            # (the same row)
    ann = run_cli("annotate", path, tmp_path / "out.pcapng", check=0)
    assert ann.returncode == 0


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text())
def test_printable_is_one_printable_line_and_changes_only_what_must(text):
    out = printable(text)
    assert out.isprintable() and "\n" not in out
    assert (out == text) == text.isprintable()


@pytest.mark.parametrize("args", [("fixtures/noise.pcap",), ("fixtures/session.pcapng",),
                                  ("fixtures/ring.pcapng",)])
def test_time_relative_is_wiresharks(args, tshark):
    """{time_relative}: seconds since the capture's first packet (CA or not),
    Wireshark's frame.time_relative, exactly."""
    res = subprocess.run([tshark, "-r", args[0], "-T", "fields", "-e", "frame.number",
                          "-e", "frame.time_relative"], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    wireshark = dict(line.split("\t") for line in res.stdout.splitlines())
    out = run_cli("print", "-q", *args, "--format", "{frame} {time_relative}", check=0)
    lines = out.stdout.decode().splitlines()
    assert lines and all(wireshark[f] == t for f, t in (line.split() for line in lines))
    if args[0].endswith("noise.pcap"):        # (its first packets are not CA)
        assert lines[0] == "13 0.208156000"


def test_time_relative_of_several_captures_counts_from_the_first_file():
    ring = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "fixtures" / "ring").glob("*.pcapng"))
    fmt = ("--format", "{frame} {time_relative} {pv} {name}")
    assert (run_cli("print", "-q", *ring, *fmt, check=0).stdout
            == run_cli("print", "-q", "fixtures/ring.pcapng", *fmt, check=0).stdout)


def test_time_relative_without_an_anchor_counts_from_the_first_record():
    from pcapca.output.template import Template
    records = list(pcapca.read(fixture("noise.pcap")))
    t = Template("{time_relative}")
    assert [t(r) for r in records[:2]] == ["0.000000000", "0.000000000"]
    assert t(records[-1]) == f"{(records[-1].ts - records[0].ts) / 1e9:.9f}"
    anchored = Template("{time_relative}")
    anchored.anchor(records[0].ts - 5 * 10**9)
    assert anchored(records[0]) == "5.000000000"


def test_time_relative_in_annotate_comments(tmp_path, tshark):
    out = tmp_path / "noise.pcapng"
    run_cli("annotate", "-q", "--comment", "{time_relative} {name}", fixture("noise.pcap"),
            out, check=0)
    res = subprocess.run([tshark, "-r", str(out), "-Y", "frame.number == 13", "-T", "fields",
                          "-e", "frame.comment"], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "0.208156000 VersionRequest,0.208156000 SearchRequest"
