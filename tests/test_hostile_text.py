"""Text from the wire (and file names, format strings from someone else's
config) is hostile: no output writes a character a terminal acts on, and a
format string reads documented fields only (issue 21, points 11 and 12)."""
import json
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from pcapca.escape import printable

from tests.conftest import fixture, run_cli

# as long as FIX:dbl (so every length in basic.pcap holds): an OSC sequence
# setting the terminal's title (ESC ... BEL), then byte 0x9b (the 8-bit CSI),
# which CA names decode as U+009B
EVIL = "\x1b]0;t\x07\x9b"
EVIL_TEXT = "\\x1b]0;t\\x07\\x9b"              # as printed: Python's escapes, as in a repr
EVIL_JSON = "\\u001b]0;t\\u0007\\u009b"        # as JSON has it
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


@pytest.fixture
def evil(tmp_path):
    raw = fixture("basic.pcap").read_bytes()
    assert raw.count(b"FIX:dbl\0") == 2         # the search and the create
    path = tmp_path / "evil.pcap"
    path.write_bytes(raw.replace(b"FIX:dbl\0", EVIL.encode("latin-1") + b"\0"))
    return path


def _raw_controls(data: bytes) -> list:
    """The control characters (C0 but newline, DEL, C1) in UTF-8 output."""
    text = data.decode("utf-8")
    return [c for c in text if c != "\n" and (ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0)]


def test_print_json_escapes_what_json_leaves_raw(evil):
    """json.dumps escapes C0 only: U+009B (and DEL, bidi controls) went out
    raw. The name read back from JSON is still exactly the name."""
    out = run_cli("print", evil, "-q", "--json", check=0).stdout
    assert _raw_controls(out) == []
    first = out.decode().splitlines()[1]
    assert f'"pv": "{EVIL_JSON}"' in first and f'"name": "{EVIL_JSON}"' in first
    assert f"SearchRequest(name='{EVIL_TEXT}'" in json.loads(first)["repr"]
    assert sum(json.loads(line)["pv"] == EVIL for line in out.splitlines()) == 17


def test_stats_json_escapes_what_json_leaves_raw(evil):
    out = run_cli("stats", evil, "-q", "--json", check=0).stdout
    assert _raw_controls(out) == []
    assert out.decode().count(f'"pv": "{EVIL_JSON}"') == 1
    assert [pv["pv"] for pv in json.loads(out)["pvs"] if pv["pv"] != "FIX:counter"] == [EVIL]


@pytest.mark.tshark
def test_annotate_default_comment_escapes_the_pv(evil, tmp_path, tshark):
    """The default comment's PV was written raw: tshark printed the escape
    sequence to the terminal. Now it is escaped as {pv} is, and {command} is
    caproto's repr (which escapes its own text)."""
    out = tmp_path / "out.pcapng"
    run_cli("annotate", evil, out, "-q", check=0)
    res = subprocess.run([tshark, "-r", str(out), "-T", "fields", "-e", "frame.comment"],
                         capture_output=True, check=True)
    assert _raw_controls(res.stdout) == []
    assert res.stdout.decode().splitlines()[0] == (
        f"VersionRequest(priority=0, version=13) [pcapca/1 role=client cmd=VersionRequest],"
        f"{EVIL_TEXT} SearchRequest(name='{EVIL_TEXT}', cid=0, version=13, reply=5)"
        f" [pcapca/1 role=client cmd=SearchRequest pv=%1B%5D0;t%07%C2%9B],"
        f"FIX:counter SearchRequest(name='FIX:counter', cid=1, version=13, reply=5)"
        f" [pcapca/1 role=client cmd=SearchRequest pv=FIX:counter]")


def test_file_names_in_messages_are_escaped(tmp_path):
    name = f"t\x1b[2J{BIDI}.pcap"
    (tmp_path / name).write_bytes(fixture("basic.pcap").read_bytes()[:100])
    empty = tmp_path / f"e\x1b[2J{BIDI}.pcap"
    empty.write_bytes(b"")
    shown = "\\x1b[2J" + "".join(f"\\u{ord(c):04x}" for c in BIDI)
    res = run_cli("stats", "-q", fixture("basic.pcap"), tmp_path / name, check=1)
    assert res.stderr.decode() == (f"pcapca: {tmp_path}/t{shown}.pcap, frame 1, byte offset 24: "
                                   f"capture ends inside a packet: 60 of 114 bytes\n")
    res = run_cli("print", empty, check=2)
    assert res.stderr.decode() == (f"pcapca: error: {tmp_path}/e{shown}.pcap: "
                                   f"empty input, not a capture file\n")


def test_printable_escapes_c0_del_c1_and_bidi_as_python_repr_does():
    text = "a\x00\x1b\x7f\x80\x9b\x9f" + BIDI + "\u2028\xa0é€"
    assert printable(text) == ("a\\x00\\x1b\\x7f\\x80\\x9b\\x9f"
                               + "".join(f"\\u{ord(c):04x}" for c in BIDI)
                               + "\\u2028\\xa0é€")
    assert printable(text) == repr(text)[1:-1]       # (as {command}, caproto's repr, has it)


def test_a_reason_in_command_is_escaped():
    """{command} writes (repr: REASON) for a field caproto cannot read, as
    caproto does; a reason quoting the wire is escaped."""
    from pcapca.output.values import _generic

    class Broken:
        @property
        def data(self):
            raise ValueError(f"bad {EVIL}")
    assert _generic(Broken(), "data") == f"(repr: bad {EVIL_TEXT})"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(), inner, max_size=4), max_leaves=12),
       st.sampled_from([None, 1]))
def test_printable_json_is_the_same_json_without_a_control(value, indent):
    from pcapca.escape import printable_json
    text = printable_json(json.dumps(value, ensure_ascii=False, indent=indent))
    assert all(line.isprintable() for line in text.split("\n"))
    assert json.loads(text) == value
    if text.isascii():
        assert text == json.dumps(value, ensure_ascii=True, indent=indent)


# ------------------------------------------------------------ point 12: format strings
@pytest.mark.parametrize("fmt,message", [
    ("{ip.data.__class__.__init__.__globals__}", "'__class__' is not a field"),
    ("{command.header.__class__.__mro__}", "'__class__' is not a field"),
    ("{command.data[__class__]}", "'__class__' is not a field"),
    ("{transport._protosw}", "'_protosw' is not a field"),
    ("{command._EventAddRequest__padding}", "'_EventAddRequest__padding' is not a field"),
    ("{pv[__len__]}", "'__len__' is not a field"),
    ("{command[0]}", "{command} has no index; index a field, e.g. {command.data[0]}"),
    ("{command.from_wire}", "no CA message field or attribute named 'from_wire'"),
    ("{ip.unpack}", "ip has no attribute 'unpack'"),
    ("{command.data.}", "bad field '{command.data.}'"),
])
def test_a_format_reaching_internals_is_a_usage_error(fmt, message):
    """Only the first attribute was checked: {ip.data.__class__.__init__.__globals__}
    printed dpkt's module globals. Names starting with _ are refused at any
    depth (also as an index), and methods are not fields."""
    res = run_cli("print", fixture("basic.pcap"), "--format", f"{{frame}} {fmt}")
    err = res.stderr.decode()
    assert (res.returncode, res.stdout) == (2, b"")
    assert err.startswith(f"pcapca: error: format string '{{frame}} {fmt}': ") and message in err
    assert err.count("\n") == 1


def test_a_format_from_a_config_file_is_checked_the_same(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text('print:\n  format: "{frame}"\nannotate:\n'
                   '  comment: "{command.header.__class__.__mro__}"\n')
    res = run_cli("annotate", fixture("basic.pcap"), tmp_path / "o.pcapng", "--config", cfg)
    assert res.returncode == 2 and not (tmp_path / "o.pcapng").exists()
    assert res.stderr.decode() == (
        f"pcapca: error: {cfg}:4: key 'annotate.comment': format string "
        f"'{{command.header.__class__.__mro__}}': '{{command.header.__class__.__mro__}}': "
        f"'__class__' is not a field (names starting with _ are Python's internals)\n")


def test_code_reached_through_public_names_formats_as_empty():
    """A method, class or module is not a field: {command.data.tolist} printed
    '<built-in method tolist of numpy.ndarray object at 0x...>'."""
    import pcapca
    from pcapca.output.template import Template
    record = next(r for r in pcapca.read(fixture("basic.pcap")) if r.frame == 17)
    t = Template("{command.data.tolist}|{command.data.dtype.type}|{ip.data.unpack}|"
                 "{command.data[0]} {command.data.shape} {ip.data.sport} {command.ioid}")
    assert t(record) == "|||3.25 (1,) 5064 0"


_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
_STEP = st.one_of(_NAME.map(lambda n: "." + n), _NAME.map(lambda n: f"[{n}]"),
                  st.integers(0, 9).map(lambda i: f"[{i}]"))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.sampled_from(["command", "ip", "transport", "ethernet", "pv", "frame"]),
       st.lists(_STEP, max_size=4), st.sampled_from(["__", "_"]), _NAME, st.lists(_STEP, max_size=3))
def test_a_private_name_anywhere_in_a_field_is_refused(root, before, prefix, name, after):
    from pcapca.errors import FormatError
    from pcapca.output.template import Template
    step = f".{prefix}{name}" if len(before) % 2 else f"[{prefix}{name}]"
    with pytest.raises(FormatError):
        Template("{" + root + "".join(before) + step + "".join(after) + "}")
