"""`pcapca annotate`, proven with tshark reading what we write."""
import json
import os
import subprocess
import sys
import threading

import pytest

import pcapca

from tests.conftest import ROOT, expected_comments, fixture, frames, run_cli

pytestmark = pytest.mark.tshark


def tshark_json(tshark, path, *fields, stdin=None):
    cmd = [tshark, "-r", "-" if stdin is not None else str(path), "-T", "json"]
    for f in fields:
        cmd += ["-e", f]
    res = subprocess.run(cmd, input=stdin, capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr.decode()
    return [rec["_source"]["layers"] for rec in json.loads(res.stdout or b"[]")]


@pytest.mark.parametrize("name", ["basic.pcap", "nanosec.pcap", "bigarray.pcap",
                                  "session.pcapng", "twoif.pcapng", "noise.pcap"])
def test_every_packet_kept_with_one_comment_per_message(tshark, tmp_path, name):
    src = fixture(name)
    out = tmp_path / "out.pcapng"
    run_cli("annotate", src, out, "-q", check=0)
    before, after = frames(tshark, src), frames(tshark, out)
    assert len(after) == len(before)
    want = expected_comments(src)
    for number, (epoch, raw, comments, iface, length) in before.items():
        a_epoch, a_raw, a_comments, a_iface, a_length = after[number]
        assert (a_epoch, a_raw, a_iface, a_length) == (epoch, raw, iface, length), number
        ours = [c for c in a_comments if c not in comments]
        if name == "noise.pcap":
            ours = [c for c in ours if not c.startswith("pcapca: ")]
        assert ours == want.get(number, []), number
    assert sum(len(v) for v in want.values()) == len(list(pcapca.read(src)))


def test_wireshark_filter_finds_every_packet_about_a_pv(tshark, tmp_path):
    out = tmp_path / "reuse.pcapng"
    run_cli("annotate", fixture("reuse.pcap"), out, "-q", check=0)
    found = tshark_json(tshark, out, "frame.number", stdin=None) and subprocess.run(
        [tshark, "-r", str(out), "-Y", 'frame.comment contains "FIX:limited"', "-T", "fields",
         "-e", "frame.number"], capture_output=True, text=True, check=True).stdout.split()
    expected = sorted({r.frame for r in pcapca.read(fixture("reuse.pcap")) if r.pv == "FIX:limited"})
    assert [int(f) for f in found] == expected
    assert len(expected) >= 12     # search, create, puts, their errors, read, clear


def test_reannotating_replaces_our_comments(tshark, tmp_path):
    once, twice = tmp_path / "once.pcapng", tmp_path / "twice.pcapng"
    run_cli("annotate", fixture("basic.pcap"), once, "-q", check=0)
    run_cli("annotate", once, twice, "-q", "--comment", "{name}", check=0)
    a, b = frames(tshark, once), frames(tshark, twice)
    for number in a:
        assert b[number][1] == a[number][1]
        assert b[number][2] == [c.split("(")[0].split(" ")[-1] for c in a[number][2]]


def test_pcap_to_pcapng_keeps_nanoseconds(tshark, tmp_path):
    out = tmp_path / "ns.pcapng"
    run_cli("annotate", fixture("nanosec.pcap"), out, "-q", check=0)
    stamps = [f[0] for f in frames(tshark, out).values()]
    assert any(not s.endswith("000") for s in stamps)
    assert stamps == [f[0] for f in frames(tshark, fixture("nanosec.pcap")).values()]


def test_stdout_live_pipe_read_by_tshark_while_written(tshark):
    """IN and OUT as pipes, fed slowly: tshark -r - shows packets before the end."""
    data = fixture("basic.pcap").read_bytes()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    annotate = subprocess.Popen([sys.executable, "-m", "pcapca", "annotate", "-", "-", "-q"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    reader = subprocess.Popen([tshark, "-l", "-r", "-", "-T", "fields", "-e", "frame.number",
                               "-e", "frame.comment"], stdin=annotate.stdout,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    annotate.stdout.close()
    first = []
    t = threading.Thread(target=lambda: first.append(reader.stdout.readline()))
    t.start()
    # send the first 12 packets' worth, then wait for tshark to show packet 1
    annotate.stdin.write(data[:1200])
    annotate.stdin.flush()
    t.join(timeout=30)
    assert first and first[0].startswith(b"1\t"), "tshark saw nothing while the input was open"
    annotate.stdin.write(data[1200:])
    annotate.stdin.close()
    rest = reader.stdout.read().decode().splitlines()
    assert annotate.wait(timeout=30) == 0 and reader.wait(timeout=30) == 0
    assert len(rest) + 1 == 54
    assert any("FIX:counter EventAddResponse(" in line for line in rest)


def test_refuses_to_overwrite_input(tmp_path):
    copy = tmp_path / "in.pcap"
    copy.write_bytes(fixture("basic.pcap").read_bytes())
    res = run_cli("annotate", copy, copy)
    assert res.returncode == 2 and b"refusing" in res.stderr
    assert copy.read_bytes() == fixture("basic.pcap").read_bytes()


def test_no_half_file_on_failure(tmp_path):
    out = tmp_path / "out.pcapng"
    res = run_cli("annotate", fixture("README.md"), out)
    assert res.returncode == 2
    assert os.listdir(tmp_path) == []


def test_out_in_a_missing_directory_is_named_in_the_error(tmp_path):
    """The error names OUT, not the temporary file pcapca writes next to it."""
    out = tmp_path / "no-such-dir" / "out.pcapng"
    res = run_cli("annotate", fixture("basic.pcap"), out)
    assert res.returncode == 2
    assert res.stderr.decode() == (f"pcapca: error: cannot write {str(out)!r}: "
                                   f"No such file or directory\n")
    assert os.listdir(tmp_path) == []


def test_comment_format_and_long_comments_cut(tshark, tmp_path):
    out = tmp_path / "big.pcapng"
    run_cli("annotate", fixture("bigarray.pcap"), out, "-q", "--comment", "{name} {command.data!r}", check=0)
    comments = [c for f in frames(tshark, out).values() for c in f[2]]
    big = [c for c in comments if c.startswith("ReadNotifyResponse array([0.0")]
    assert len(big) == 1 and "..." in big[0] and "\n" not in big[0]
    assert all(len(c.encode()) <= 65535 for c in comments)


def test_filter_writes_matching_packets_and_keep_all_keeps_every_packet(tshark, tmp_path):
    src = fixture("reuse.pcap")
    limited = [r for r in pcapca.read(src) if r.pv == "FIX:limited"]
    frames_with = sorted({r.frame for r in limited})
    only, every = tmp_path / "only.pcapng", tmp_path / "every.pcapng"
    run_cli("annotate", src, only, "-q", "--pv", "FIX:limited", check=0)
    run_cli("annotate", src, every, "-q", "--pv", "FIX:limited", "--keep-all", check=0)
    original = frames(tshark, src)
    a, b = frames(tshark, only), frames(tshark, every)
    # only the packets with a matching message, unchanged, in order
    assert [f[1] for f in a.values()] == [original[n][1] for n in frames_with]
    comments = [c for f in a.values() for c in f[2]]
    assert len(comments) == len(limited) and all(c.startswith("FIX:limited ") for c in comments)
    # --keep-all: every packet, comments only on the matching messages
    assert len(b) == len(original) and [f[1] for f in b.values()] == [f[1] for f in original.values()]
    assert [c for f in b.values() for c in f[2]] == comments
