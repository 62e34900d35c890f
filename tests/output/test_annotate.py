"""`pcapca annotate`, proven with tshark reading what we write."""
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given, settings, strategies as st

import pcapca

from tests.conftest import (FIXTURES, ROOT, device, expected_comments, fixture, frames,
                            run_cli, run_closed)

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


def test_pv_prefix_is_the_name_up_to_its_nul(tshark, tmp_path):
    """Issue 21 point 16: the PV before caproto's repr is the name a server
    reads (up to the NUL); the repr keeps the stale bytes after it."""
    out = tmp_path / "stalenames.pcapng"
    run_cli("annotate", fixture("stalenames.pcap"), out, "-q", check=0)
    comments = {n: f[2] for n, f in frames(tshark, out).items() if f[2]}
    tag = " [pcapca/1 role={} cmd={}{}]".format
    assert comments == {
        1: ["VersionRequest(priority=0, version=8)" + tag("client", "VersionRequest", ""),
            "FIX:dbl SearchRequest(name='FIX:dbl\\x00:GUN', cid=1, version=8, reply=5)"
            + tag("client", "SearchRequest", " pv=FIX:dbl")],
        5: ["VersionRequest(priority=0, version=8)" + tag("client", "VersionRequest", ""),
            "HostNameRequest(name='fixture-host\\x00old')" + tag("client", "HostNameRequest", ""),
            "ClientNameRequest(name='fixture\\x00old')" + tag("client", "ClientNameRequest", "")],
        7: ["VersionResponse(version=13)" + tag("server", "VersionResponse", "")],
        9: ["FIX:dbl CreateChanRequest(name='FIX:dbl\\x00:GUN', cid=0, version=8)"
            + tag("client", "CreateChanRequest", " pv=FIX:dbl")],
        10: ["FIX:dbl CreateChFailResponse(cid=0)"
             + tag("server", "CreateChFailResponse", " pv=FIX:dbl req=9 lat=0.000839")]}


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


# -- special outputs, signals, closed streams, I/O errors (issue 21, output side)

def annotated(tmp_path) -> bytes:
    """What annotate writes for basic.pcap into a new regular file."""
    ref = tmp_path / "ref" / "basic.pcapng"
    ref.parent.mkdir()
    run_cli("annotate", fixture("basic.pcap"), ref, "-q", check=0)
    return ref.read_bytes()


def read_all(path, into: list) -> threading.Thread:
    """A thread reading the FIFO or pipe end ``path`` into ``into``."""
    def run():
        with open(path, "rb") as f:
            into.append(f.read())
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_a_device_out_is_written_not_replaced(tmp_path):
    null = device(tmp_path, "null", 3)
    res = run_cli("annotate", fixture("basic.pcap"), null, "-q")
    assert (res.returncode, res.stderr) == (0, b"")
    assert stat.S_ISCHR(os.stat(null).st_mode)
    assert sorted(os.listdir(tmp_path)) == (["null"] if null.parent == tmp_path else [])


def test_a_fifo_out_is_written_not_replaced(tmp_path):
    want = annotated(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = read_all(fifo, got)
    res = run_cli("annotate", fixture("basic.pcap"), fifo, "-q")
    reader.join(timeout=30)
    assert (res.returncode, res.stderr) == (0, b"")
    assert got == [want]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["fifo", "ref"]


def test_a_process_substitution_out_is_written(tmp_path):
    """``pcapca annotate IN >(cmd)``: OUT is /dev/fd/N, a pipe to cmd."""
    want = annotated(tmp_path)
    r, w = os.pipe()
    got = []
    reader = read_all(r, got)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "pcapca", "annotate", "-q",
                           str(fixture("basic.pcap")), f"/dev/fd/{w}"],
                          pass_fds=[w], capture_output=True, env=env, timeout=120)
    os.close(w)
    reader.join(timeout=30)
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert got == [want]


def test_a_symlink_out_writes_its_target_and_keeps_its_mode(tmp_path):
    want = annotated(tmp_path)
    (tmp_path / "sub").mkdir()
    target = tmp_path / "sub" / "target.pcapng"
    target.write_bytes(b"old")
    target.chmod(0o640)
    (tmp_path / "link.pcapng").symlink_to("sub/target.pcapng")
    (tmp_path / "dangling.pcapng").symlink_to("sub/new.pcapng")
    run_cli("annotate", fixture("basic.pcap"), tmp_path / "link.pcapng", "-q", check=0)
    run_cli("annotate", fixture("basic.pcap"), tmp_path / "dangling.pcapng", "-q", check=0)
    assert os.readlink(tmp_path / "link.pcapng") == "sub/target.pcapng"
    assert os.readlink(tmp_path / "dangling.pcapng") == "sub/new.pcapng"
    assert target.read_bytes() == want and (tmp_path / "sub" / "new.pcapng").read_bytes() == want
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(os.listdir(tmp_path / "sub")) == ["new.pcapng", "target.pcapng"]


def test_an_existing_out_keeps_its_mode(tmp_path):
    out = tmp_path / "out.pcapng"
    out.write_bytes(b"old")
    out.chmod(0o604)
    run_cli("annotate", fixture("basic.pcap"), out, "-q", check=0)
    assert stat.S_IMODE(out.stat().st_mode) == 0o604
    assert out.read_bytes() == annotated(tmp_path)


def test_a_directory_out_with_one_input_fails_before_reading(tmp_path):
    """(README.md is not a capture: reading it would fail with another message.)"""
    res = run_cli("annotate", fixture("README.md"), tmp_path)
    assert res.returncode == 2
    assert res.stderr.decode() == (f"pcapca: error: output {str(tmp_path)!r} is a directory: "
                                   f"with one capture OUT is the pcapng file to write "
                                   f"(a directory takes several captures)\n")
    assert os.listdir(tmp_path) == []


def test_a_directory_in_the_output_directory_is_refused_before_reading(tmp_path):
    (tmp_path / "ring_00002_20261130113216.pcapng").mkdir()
    ring = sorted((FIXTURES / "ring").glob("*.pcapng"))[:3]
    res = run_cli("annotate", *ring, tmp_path)
    assert res.returncode == 2
    assert res.stderr.decode() == (f"pcapca: error: output "
                                   f"{str(tmp_path / 'ring_00002_20261130113216.pcapng')!r} "
                                   f"is a directory\n")
    assert os.listdir(tmp_path) == ["ring_00002_20261130113216.pcapng"]


def annotate_live(out, *args, preexec_fn=None):
    """``pcapca annotate - OUT ARGS`` fed the first 12 packets of basic.pcap
    and kept open: (the process, its stdin)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "pcapca", "annotate", "-", str(out), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, preexec_fn=preexec_fn)
    proc.stdin.write(fixture("basic.pcap").read_bytes()[:1200])
    proc.stdin.flush()
    return proc


def wait_for_part(directory, proc):
    """Wait (up to 60 s) until annotate created its temporary file."""
    for _ in range(600):
        if any(n.endswith(".pcapng.part") for n in os.listdir(directory)):
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    pytest.fail("no temporary file appeared")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT,
                                 signal.SIGUSR1, signal.SIGALRM, signal.SIGABRT, signal.SIGRTMIN])
def test_a_signal_leaves_no_temporary_file(tmp_path, sig):
    proc = annotate_live(tmp_path / "out.pcapng", "--no-progress",
                         preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL))
    wait_for_part(tmp_path, proc)
    os.kill(proc.pid, sig)
    assert proc.wait(timeout=60) == 128 + sig
    proc.stdin.close()
    assert proc.stderr.read() == b""
    assert os.listdir(tmp_path) == []


def test_an_ignored_signal_stays_ignored(tmp_path):
    """(nohup pcapca annotate ...: SIGHUP does not end the run.)"""
    out = tmp_path / "out.pcapng"
    proc = annotate_live(out, "-q", preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    wait_for_part(tmp_path, proc)
    os.kill(proc.pid, signal.SIGHUP)
    proc.stdin.write(fixture("basic.pcap").read_bytes()[1200:])
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    assert out.read_bytes() == annotated(tmp_path)


def test_closed_stderr_leaves_no_text_in_the_pcapng(tmp_path):
    """``annotate IN - 2>&- > OUT``: the summary line goes nowhere."""
    code, out, _ = run_closed(2, "annotate", fixture("basic.pcap"), "-", "--no-progress")
    assert code == 0 and out == annotated(tmp_path)


def test_closed_stdout_with_out_dash_is_a_usage_error(tmp_path):
    code, _, err = run_closed(1, "annotate", fixture("basic.pcap"), "-")
    assert (code, err) == (2, b"pcapca: error: standard output is closed: there is nowhere to "
                              b"write OUT - (redirect it to a file or /dev/null)\n")
    out = tmp_path / "out.pcapng"        # (an OUT file does not need stdout)
    code, _, err = run_closed(1, "annotate", fixture("basic.pcap"), out, "-q")
    assert (code, err) == (0, b"") and out.read_bytes() == annotated(tmp_path)


def test_a_full_device_out_is_exit_4_naming_it(tmp_path):
    full = device(tmp_path, "full", 7)
    res = run_cli("annotate", fixture("basic.pcap"), full)
    assert res.returncode == 4
    assert res.stderr.decode() == f"pcapca: error: cannot write {str(full)!r}: No space left on device\n"
    assert stat.S_ISCHR(os.stat(full).st_mode)
    with open(full, "wb") as stdout:
        res = subprocess.run([sys.executable, "-m", "pcapca", "annotate", fixture("basic.pcap"), "-"],
                             stdout=stdout, stderr=subprocess.PIPE, timeout=120,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 4
    assert res.stderr == b"pcapca: error: cannot write standard output: No space left on device\n"


def test_a_write_error_keeps_the_old_out_and_leaves_no_temporary_file(tmp_path):
    """A file size limit (ulimit -f) stands for a full disk: the write fails
    after the output was opened."""
    import resource
    out = tmp_path / "out.pcapng"
    out.write_bytes(b"old")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "pcapca", "annotate", fixture("basic.pcap"), out],
                         capture_output=True, env=env, timeout=120,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)))
    assert res.returncode == 4
    assert res.stderr.decode() == f"pcapca: error: cannot write {str(out)!r}: File too large\n"
    assert os.listdir(tmp_path) == ["out.pcapng"] and out.read_bytes() == b"old"


def _can_mknod(directory) -> bool:
    try:
        os.mknod(os.path.join(directory, "probe"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        with open(os.path.join(directory, "probe"), "wb"):
            pass
        return True
    except OSError:
        return False


def _tree(directory) -> dict:
    """{relative path: (kind, link target or mode)} of everything under directory."""
    out = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(root, name)
            st_ = os.lstat(path)
            what = os.readlink(path) if stat.S_ISLNK(st_.st_mode) else stat.S_IMODE(st_.st_mode)
            out[os.path.relpath(path, directory)] = (stat.S_IFMT(st_.st_mode), what)
    return out


@settings(max_examples=40, deadline=None, derandomize=True)
@given(kind=st.sampled_from(["new", "file", "fifo", "device", "directory"]),
       mode=st.sampled_from([0o600, 0o604, 0o640, 0o444, 0o755]),
       hops=st.lists(st.booleans(), max_size=3), in_sub=st.booleans())
def test_any_output_shape_is_written_never_replaced(kind, mode, hops, in_sub):
    """OUT behind 0-3 symbolic links (relative or absolute), ending at a new
    name, a file, a FIFO, a device or a directory: the links stay, the file
    keeps its mode, the FIFO or device is written, nothing else appears."""
    import tempfile
    from pcapca.cli.main import main
    with tempfile.TemporaryDirectory() as d:
        if kind == "device" and not _can_mknod(d):
            kind = "new"                       # (not root: /dev/null is tested above)
        os.mkdir(os.path.join(d, "sub"))
        target = os.path.join(d, "sub" if in_sub else "", "t.pcapng")
        if kind == "file":
            with open(target, "wb") as f:
                f.write(b"old")
            os.chmod(target, mode)
        elif kind == "fifo":
            os.mkfifo(target)
        elif kind == "device":
            os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        elif kind == "directory":
            os.mkdir(target)
        out = target
        for i, absolute in enumerate(hops):
            link = os.path.join(d, f"l{i}")
            os.symlink(out if absolute else os.path.relpath(out, d), link)
            out = link
        before = _tree(d)
        got = []
        reader = read_all(target, got) if kind == "fifo" else None
        code = main(["annotate", str(fixture("basic.pcap")), out, "-q", "--no-progress"])
        if reader is not None:
            reader.join(timeout=30)
        after = _tree(d)
        if kind == "directory":
            assert code == 2 and after == before
            return
        assert code == 0
        if kind == "new":
            new = after.pop(os.path.relpath(target, d))
            umask = os.umask(0)
            os.umask(umask)
            assert new == (stat.S_IFREG, 0o666 & ~umask)
        assert after == before
        if kind in ("new", "file"):
            with open(target, "rb") as f:
                assert f.read() == _reference()
        if kind == "fifo":
            assert got == [_reference()]


_REFERENCE = []


def _reference() -> bytes:
    """What annotate writes for basic.pcap (once per session)."""
    if not _REFERENCE:
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            res = run_cli("annotate", fixture("basic.pcap"), os.path.join(d, "ref.pcapng"), "-q")
            assert res.returncode == 0
            with open(os.path.join(d, "ref.pcapng"), "rb") as f:
                _REFERENCE.append(f.read())
    return _REFERENCE[0]
