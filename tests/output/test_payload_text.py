"""payload._payload_texts / _payload_values write the data and metadata of
numeric messages from their payload bytes, without caproto's objects: the
texts must be caproto's, byte for byte, and the JSON values those of caproto's
objects, for every DBR type they take, any payload bytes (NaN, infinities,
subnormals, unknown alarm values), any count, padding; and they must hand
everything else back to caproto."""
import contextlib
import json
import struct
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import pcapca
from pcapca.output import arrays, payload, values as field_values
from pcapca.ca._caproto import SERVER, CLIENT, Commands
from pcapca.ca.messages import build

from tests.conftest import FIXTURES, built_now, run_cli

NAMES = sorted(p.name for p in FIXTURES.iterdir() if p.suffix in (".pcap", ".pcapng"))
DATA_TYPES = sorted(payload._layouts)
CLASSES = [(SERVER, 1), (SERVER, 15), (SERVER, 3), (CLIENT, 19), (CLIENT, 4)]   # with data


@pytest.fixture(autouse=True)
def no_wrap():
    with np.printoptions(linewidth=sys.maxsize):
        yield


@contextlib.contextmanager
def unchecked():
    """The fast texts themselves, not the first ones compared with caproto's."""
    saved = payload._VERIFY_FIRST
    for module in (arrays, field_values, payload):     # (each checks its own fast path)
        module._VERIFY_FIRST = 0
    try:
        yield
    finally:
        for module in (arrays, field_values, payload):
            module._VERIFY_FIRST = saved


class Message:
    """What _payload_texts reads of a Record."""

    def __init__(self, role, command_id, data_type, count, payload):
        header = struct.pack(">HHHHII", command_id, len(payload), data_type, count, 1, 7)
        self.msg = header + payload
        self.hsize = 16
        self.fields = (command_id, len(payload), data_type, count, 1, 7)
        self.command = build(role, command_id, bytearray(header), bytearray(payload))
        self.cls = self.command.__class__


def caproto_texts(command):
    """The data and metadata texts of caproto's repr (its safe_repr: an
    exception's text where the repr raises)."""
    out = []
    for name in ("data", "metadata"):
        try:
            out.append(repr(getattr(command, name)))
        except Exception as ex:
            out.append(f"(repr: {ex})")
    return tuple(out)


# values that make numpy's choices interesting, as raw big-endian bytes
SPECIAL = [struct.pack(">d", x) for x in
           (0.0, -0.0, 1.0, 0.1, 1e-5, 1e8, 2.0 ** 26 + 0.5, 123.456789012, float("nan"),
            float("inf"), 5e-324, 1e300)]


@st.composite
def payloads(draw):
    data_type = draw(st.sampled_from(DATA_TYPES))
    md_size, _, _, dtype, *_ = payload._layouts[data_type]
    count = draw(st.sampled_from([1, 1, 1, 2, 3, 10, 63, 64, 100, 1000]))
    data = draw(st.one_of(
        st.binary(min_size=count * dtype.itemsize, max_size=count * dtype.itemsize),
        st.lists(st.sampled_from(SPECIAL), min_size=count, max_size=count).map(
            lambda xs: b"".join(xs)[:count * dtype.itemsize].ljust(count * dtype.itemsize, b"\0")),
        st.lists(st.integers(-2**20, 2**20), min_size=count, max_size=count).map(
            lambda ns: np.array(ns).astype(dtype).tobytes()),
        st.lists(st.floats(-1e4, 1e4), min_size=count, max_size=count).map(
            lambda xs: np.array(xs).astype(dtype).tobytes())))
    metadata = draw(st.one_of(
        st.binary(min_size=md_size, max_size=md_size),
        st.tuples(st.integers(0, 22), st.integers(0, 3), st.integers(0, 2**32 - 1),
                  st.integers(0, 2**32 - 1)).map(
            lambda t: struct.pack(">hhII", *t)[:md_size].ljust(md_size, b"\0"))))
    padding = b"\0" * draw(st.integers(0, 7))
    role, command_id = draw(st.sampled_from(CLASSES))
    return Message(role, command_id, data_type, count, metadata + data + padding)


def caproto_values(command):
    return json.dumps([field_values._field_json(command, name) for name in ("data", "metadata")])


@pytest.mark.filterwarnings("ignore:ReadResponse was deprecated")
@settings(max_examples=1500, deadline=None)
@given(payloads())
def test_payload_texts_and_values_are_caprotos(message):
    with unchecked():
        texts = payload._payload_texts(message, ("data", "metadata"))
        values = payload._payload_values(message, ("data", "metadata"))
    if texts is None or values is None:
        assert texts is None and values is None
        # only alarm values caproto has no name for (it logs them and leaves them out)
        assert payload._layouts[message.fields[2]][2] is not None
        status, severity = struct.unpack_from(">hh", message.msg, 16)
        assert (status not in field_values._ALARM_STATUS_REPR
                or severity not in field_values._ALARM_SEVERITY_REPR)
    else:
        assert texts == caproto_texts(message.command)
        assert json.dumps(list(values)) == caproto_values(message.command)


def test_json_takes_arrays_longer_than_numpy_prints():
    data = np.arange(5000, dtype=">f8").tobytes()
    message = Message(SERVER, 15, 6, 5000, data)
    with unchecked():
        assert payload._payload_texts(message, ("data", "metadata")) is None
        values = payload._payload_values(message, ("data", "metadata"))
    assert values[0] == list(range(5000)) and values[1] is None
    assert json.dumps(list(values)) == caproto_values(message.command)


@pytest.mark.parametrize("no_str", [0, 3, 16, 17, -1, 0x7FFF])
def test_enum_metadata_caproto_cannot_write(no_str):
    """A CTRL_ENUM with more strings than it can hold: caproto's repr says why."""
    metadata = struct.pack(">hhh", 0, 0, no_str).ljust(422, b"x")
    message = Message(SERVER, 15, 31, 1, metadata + b"\0\2" + bytes(4))
    with unchecked():
        texts = payload._payload_texts(message, ("data", "metadata"))
    assert texts == caproto_texts(message.command)
    if no_str > 16:
        assert texts[1].startswith("(repr: ")
    with unchecked():
        values = payload._payload_values(message, ("data", "metadata"))
    assert json.dumps(list(values)) == caproto_values(message.command)


def test_every_numeric_dbr_type_is_taken():
    assert DATA_TYPES == [t for t in range(35) if t not in (0, 7, 14, 21, 28)]


@pytest.mark.parametrize("count, size", [(2, 8), (1, 0), (0, 16), (5000, 8 * 5000)])
def test_short_payloads_go_to_caproto(count, size, monkeypatch):
    """A payload without the whole value (caproto returns fewer elements or
    says why it cannot), a count of zero, more elements than numpy prints.
    (The decoder reports a count over the payload, see ca_decode.count_base:
    its check is off here, to make such a message.)"""
    from pcapca.ca import messages as ca_decode
    monkeypatch.setattr(ca_decode, "count_base", lambda data_type: None)
    message = Message(SERVER, 15, 6, count, bytes(size))
    with unchecked():
        assert payload._payload_texts(message, ("data", "metadata")) is None


def test_a_difference_turns_it_off(monkeypatch):
    message = Message(SERVER, 15, 20, 1, struct.pack(">hhIIid", 0, 0, 1, 2, 0, 1.5))
    key = (False, message.cls, 20)
    monkeypatch.setattr(payload, "_layout_verified", {})
    monkeypatch.setattr(payload, "_layout_off", set())
    monkeypatch.setattr(payload, "_unix_time", lambda s, ns: 0.0)   # a wrong timestamp
    assert payload._payload_texts(message, ("data", "metadata")) == caproto_texts(message.command)
    assert key in payload._layout_off
    with unchecked():
        assert payload._payload_texts(message, ("data", "metadata")) is None
    for module in (payload, field_values):
        monkeypatch.setattr(module, "_ALARM_STATUS_NAME", {0: "WRONG"})
    assert json.dumps(payload._payload_values(message, ("data", "metadata"))) == caproto_values(
        message.command)
    assert (True, message.cls, 20) in payload._layout_off
    with unchecked():
        assert payload._payload_values(message, ("data", "metadata")) is None


@pytest.mark.parametrize("name", NAMES)
def test_every_fixture_message(name):
    """Each data message of the real captures, written from its payload."""
    taken = 0
    for record in pcapca.read(FIXTURES / name):
        if record.msg is None or record.cls not in {Commands[r][c] for r, c in CLASSES}:
            continue
        with unchecked():
            texts = payload._payload_texts(record, ("data", "metadata"))
        if texts is not None:
            taken += 1
            now = built_now(record)
            assert texts == caproto_texts(now), record
            with unchecked():
                values = payload._payload_values(record, ("data", "metadata"))
            assert json.dumps(list(values)) == caproto_values(now), record
    assert taken == TAKEN[name], taken


# data messages written from their payload (bigarray.pcap's are longer than
# numpy's summarisation threshold: caproto's path)
TAKEN = {'basic.pcap': 10, 'bigarray.pcap': 0, 'corpus_libca.pcap': 235, 'libca.pcap': 17,
         'midstream.pcap': 6, 'nanosec.pcap': 10, 'noise.pcap': 1, 'reuse.pcap': 6, 'rsrv.pcap': 17,
         'session.pcapng': 6, 'sll.pcap': 3, 'sll2.pcap': 3, 'twoif.pcapng': 1, 'twoservers.pcap': 2,
         'unanswered.pcap': 3, 'hung.pcap': 1, 'bigtcp.pcap': 0, 'mtu1500.pcap': 9, 'lossy.pcap': 3,
         'ring.pcapng': 32, 'fragments.pcap': 2, 'nameserver.pcap': 2,
         'slowclient.pcap': 64, 'iocdeath.pcap': 1, 'stuckioc.pcap': 1, 'stalenames.pcap': 0}


def test_metadata_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(payload, "_metadata_memo", {})
    monkeypatch.setattr(payload, "_METADATA_MEMO_MAX", 50)
    for precision in range(120):          # CTRL_DOUBLE metadata, all different
        metadata = struct.pack(">hhh", 0, 0, precision).ljust(80, b"\0")
        message = Message(SERVER, 15, 34, 1, metadata + struct.pack(">d", 1.5))
        with unchecked():
            texts = payload._payload_texts(message, ("data", "metadata"))
        assert texts == caproto_texts(message.command)
        assert f"precision={precision}," in texts[1]
        assert 0 < len(payload._metadata_memo) <= 50


def test_json_keeps_an_alarm_value_caproto_has_no_name_for(tmp_path):
    """A damaged DBR_TIME_LONG whose alarm status is 98: caproto's to_dict
    leaves the status out (and logs a traceback), so its repr has none and
    print shows caproto's repr as it is; --json's fields keep the number."""
    import caproto as ca
    from tests.builders import ca_bytes, tcp_capture
    metadata = ca.DBR_TYPES[ca.ChannelType.TIME_LONG]()
    metadata.status, metadata.severity = 98, 1
    metadata.secondsSinceEpoch, metadata.nanoSeconds = 1000, 5
    reply = ca.ReadNotifyResponse(data=[7], metadata=metadata, data_count=1, status=1, ioid=7,
                                  data_type=ca.ChannelType.TIME_LONG)
    path = tmp_path / "alarm98.pcap"
    path.write_bytes(tcp_capture([(True, ca_bytes(ca.VersionRequest(priority=0, version=13))),
                                  (False, ca_bytes(reply))]))
    res = run_cli("print", path, "--json", "-q", check=0)
    assert res.stderr == b""
    line = json.loads(res.stdout.splitlines()[-1])
    assert line["fields"]["metadata"] == {"status": 98, "severity": "MINOR_ALARM",
                                          "timestamp": 631153000.0}
    assert line["repr"].endswith("metadata=DBR_TIME_LONG(severity=<AlarmSeverity.MINOR_ALARM: 1>,"
                                 " timestamp=631153000.0))")
    assert run_cli("print", path, "-q", check=0).stdout.decode().endswith(line["repr"] + "\n")
    # a known status still goes by its name, in caproto's order
    metadata.status = 3
    assert field_values._metadata_json(metadata) == {"status": "HIHI", "severity": "MINOR_ALARM",
                                                   "timestamp": 631153000.0}
