"""reprs.command_repr is a faster way to write caproto's repr(): it must
give the same text, byte for byte, for every class, DBR type, array, enum,
string and status."""
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import caproto as ca
from caproto import ChannelType

import pcapca
from pcapca.ca._caproto import CLIENT, SERVER
from pcapca.ca.messages import build
from pcapca.output.reprs import command_repr

from tests.conftest import FIXTURES


@pytest.fixture(autouse=True)
def no_wrap():
    with np.printoptions(linewidth=sys.maxsize):
        yield


def roundtrip(command, role):
    """Serialise with caproto, decode as pcapca does."""
    raw = bytearray(bytes(command))
    hsize = 24 if raw[2:4] == b"\xff\xff" and raw[6:8] == b"\0\0" else 16
    return build(role, command.header.command, raw[:hsize], memoryview(raw)[hsize:])


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir()
                                        if p.suffix in (".pcap", ".pcapng")))
def test_every_message_of_every_fixture(name):
    n = 0
    for record in pcapca.read(FIXTURES / name):
        assert command_repr(record.command) == repr(record.command)
        n += 1
    assert n > 0


NATIVE = {ChannelType.STRING: st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=39),
          ChannelType.INT: st.integers(-2**15, 2**15 - 1),
          ChannelType.FLOAT: st.floats(width=32, allow_nan=False),
          ChannelType.ENUM: st.integers(0, 15),
          ChannelType.CHAR: st.integers(0, 255),
          ChannelType.LONG: st.integers(-2**31, 2**31 - 1),
          ChannelType.DOUBLE: st.floats(allow_nan=True)}


def metadata_for(dtype, seed):
    """A DBR metadata structure of that type, with some fields set."""
    if dtype < 7:
        return None
    md = ca.DBR_TYPES[dtype]()
    for name, _ctype in getattr(type(md), "_fields_", []):
        try:
            _set_field(md, name, seed)
        except (TypeError, ValueError):
            pass
    return md


def _set_field(md, name, seed):
    if True:
        if name in ("status", "severity"):
            setattr(md, name, seed % 4)
        elif name == "secondsSinceEpoch":
            setattr(md, name, seed)
        elif name == "nanoSeconds":
            setattr(md, name, seed % 10**9)
        elif name == "units":
            setattr(md, name, b"mm")
        elif name == "precision":
            setattr(md, name, seed % 7)
        elif name.endswith("_limit"):
            current = getattr(md, name)
            setattr(md, name, (seed % 1000) / 7 if isinstance(current, float) else seed % 1000)


@st.composite
def data_messages(draw):
    dtype = ChannelType(draw(st.sampled_from([t for t in range(35)])))
    native = ca.native_type(dtype)
    count = draw(st.sampled_from([1, 1, 2, 5, 10, 100, 1001]))
    values = draw(st.lists(NATIVE[native], min_size=count, max_size=count))
    if native == ChannelType.STRING:
        values = [v.encode() for v in values]
    status = draw(st.sampled_from([1, 0, 8, 42, 160]))   # normal, some errors
    metadata = metadata_for(dtype, draw(st.integers(0, 2**31)))
    cls = draw(st.sampled_from(["read", "event", "write", "writenotify"]))
    if cls == "read":
        cmd = ca.ReadNotifyResponse(values, dtype, count, status, 7, metadata=metadata)
        role = SERVER
    elif cls == "event":
        cmd = ca.EventAddResponse(values, dtype, count, status, 3, metadata=metadata)
        role = SERVER
    elif cls == "write":
        cmd = ca.WriteRequest(values, dtype, count, 2, 9, metadata=metadata)
        role = CLIENT
    else:
        cmd = ca.WriteNotifyRequest(values, dtype, count, 2, 9, metadata=metadata)
        role = CLIENT
    return cmd, role


@settings(max_examples=300, deadline=None)
@given(data_messages())
def test_data_messages_of_every_dbr_type(message):
    cmd, role = message
    decoded = roundtrip(cmd, role)
    assert command_repr(decoded) == repr(decoded)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1),
       st.integers(0, 2**32 - 1), st.sampled_from(sorted(set(range(40)) | {255, 1000})))
def test_header_only_messages_any_ids(dtype_raw, count, p1, p2, status_or_type):
    """Header fields of any value, including invalid DBR types and statuses
    (caproto's repr then says '(repr: ...)', and so must ours)."""
    for role in (CLIENT, SERVER):
        for command_id in (1, 2, 12, 15, 18, 19, 22, 26, 27, 6, 0, 13):
            raw = bytearray(16)
            size = 0
            raw[0:16] = (command_id.to_bytes(2, "big") + size.to_bytes(2, "big")
                         + status_or_type.to_bytes(2, "big") + count.to_bytes(2, "big")
                         + p1.to_bytes(4, "big") + p2.to_bytes(4, "big"))
            try:
                cmd = build(role, command_id, raw[:16], memoryview(bytearray(0)))
            except Exception:
                continue
            assert command_repr(cmd) == repr(cmd)


def test_metadata_types():
    for dtype in (ChannelType.TIME_DOUBLE, ChannelType.CTRL_DOUBLE, ChannelType.GR_LONG,
                  ChannelType.CTRL_ENUM, ChannelType.STS_STRING, ChannelType.TIME_CHAR):
        value = [b"text"] if ca.native_type(dtype) == ChannelType.STRING else [1]
        cmd = ca.ReadNotifyResponse(value, dtype, 1, 1, 5, metadata=metadata_for(dtype, 1234567))
        decoded = roundtrip(cmd, SERVER)
        assert command_repr(decoded) == repr(decoded)


# ---- the fast array repr, element by element against numpy (no runtime check)
from hypothesis.extra import numpy as hnp  # noqa: E402

from pcapca.output.arrays import _fast_float, _fast_int, array_repr  # noqa: E402

FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.floats(-1e8, 1e8),
    st.floats(-1000, 1000),
    st.integers(-2**20, 2**20).map(lambda n: n / 512),      # exact binary fractions, ties
    st.sampled_from([0.0, -0.0, 1.0, 0.1, 0.2, 0.3, 1e-4, 99999999.99999999, 0.001953125]))


@settings(max_examples=400, deadline=None)
@given(hnp.arrays(st.sampled_from([">f8", "<f8"]), st.integers(1, 1000), elements=FLOATS))
def test_fast_float_array_repr_equals_numpy(a):
    text = _fast_float(a)
    if text is not None:
        assert text == np.array_repr(a, max_line_width=sys.maxsize)


@settings(max_examples=300, deadline=None)
@given(hnp.arrays(st.sampled_from([">i4", ">i2", "u1", ">u2", "<i8", ">i1"]), st.integers(1, 1000)))
def test_fast_int_array_repr_equals_numpy(a):
    assert _fast_int(a) == np.array_repr(a, max_line_width=sys.maxsize)


def test_array_repr_falls_back_to_numpy():
    for a in (np.array([1e-5, 1.0]), np.array([np.nan, 1.0]), np.arange(1001) * 0.5,
              np.array([1.5], ">f4"), np.zeros((2, 2)), np.array([], ">f8")):
        assert array_repr(a) == np.array_repr(a, max_line_width=sys.maxsize)


@pytest.mark.parametrize("values", [
    [1e-300, -1e300, 5e-5, 1.0],               # three-digit exponents, both signs
    [-0.0, 1e-5, 3.3e10],                      # negative zero
    [1e100, 1.0, 12345.678],                   # one three-digit exponent among two-digit ones
    [1e-100, -2.5e-7, 1.0, 0.0],
    [1.5e9, 2.5e9],                            # no fraction digits but one
    [1e9, 2e9, 3e-5],                          # precision 0
    [0.1 + 0.2, 1 / 3, 2 / 3, 1e-5],           # rounded at 9 significant digits
    [-1.0000000049999999e-5, 123456789.0],
])
def test_fast_scientific_examples(values):
    a = np.array(values)
    text = _fast_float(a)
    assert text is not None and "e" in text.split("]")[0]
    assert text == np.array_repr(a, max_line_width=sys.maxsize)


@pytest.mark.parametrize("values", [
    np.linspace(-5, 5, 101),                   # negative and positive, varying widths
    np.arange(200) * 0.125,                    # exact binary fractions
    np.arange(100, dtype=float),               # no fraction digits at all: "0.,  1., ..."
    np.r_[np.arange(1, 71) * 0.1, 99.5, 0.123456789],   # rounding at 8 digits, a wider integer part
    np.r_[np.zeros(80), -0.0, 0.3],
    np.r_[np.full(64, 0.99999999999), 1.0],    # rounds up into the integer part
])
def test_fast_fixed_long_arrays(values):
    a = np.asarray(values, dtype=">f8")
    assert a.size >= 64
    text = _fast_float(a)
    assert text is not None and "e" not in text.split("]")[0]
    assert text == np.array_repr(a, max_line_width=sys.maxsize)


# ---- DBR_TIME_* metadata written from its parts (no runtime check here)
from caproto._dbr import DBR_TYPES  # noqa: E402

from pcapca.output import values as field_values

TIME_TYPES = [ChannelType.TIME_STRING, ChannelType.TIME_INT, ChannelType.TIME_FLOAT,
              ChannelType.TIME_ENUM, ChannelType.TIME_CHAR, ChannelType.TIME_LONG,
              ChannelType.TIME_DOUBLE]


def test_every_time_type_takes_the_fast_path():
    assert {DBR_TYPES[t] for t in TIME_TYPES} == field_values._time_classes


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TIME_TYPES), st.integers(0, 22), st.integers(0, 3),
       st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_time_metadata_repr(dbr_type, status, severity, seconds, nanoseconds):
    md = DBR_TYPES[dbr_type]()
    md.status, md.severity = status, severity
    md.secondsSinceEpoch, md.nanoSeconds = seconds, nanoseconds
    saved = field_values._time_verified[0]
    field_values._time_verified[0] = field_values._VERIFY_FIRST     # the fast text itself
    try:
        assert field_values.value_repr(md) == repr(md)
    finally:
        field_values._time_verified[0] = saved


def test_time_metadata_with_unknown_alarm_values_is_caproto_repr():
    md = DBR_TYPES[ChannelType.TIME_DOUBLE]()
    md.status, md.severity = 999, 7             # caproto leaves them out of its repr
    assert field_values.value_repr(md) == repr(md)


# ---- one value (most messages): its own shortcut, against numpy
@settings(max_examples=2000, deadline=None)
@given(st.one_of(FLOATS, st.floats(width=64), st.sampled_from(
    [2.0 ** 26, 2.0 ** 26 - 1e-9, 99999999.99999999, 1e8, 1e-4, 9.999999999999999e-05, 5e-324, -0.0])))
def test_fast_float_scalar_equals_numpy(x):
    a = np.array([x], ">f8")
    text = _fast_float(a)
    if np.isfinite(x) and not 0 < abs(x) < np.finfo(float).tiny:
        assert text is not None             # only NaN, infinities, subnormals go to numpy
    if text is not None:
        assert text == np.array_repr(a, max_line_width=sys.maxsize)


def test_a_value_equal_to_another_keeps_its_own_repr():
    """0.0 == -0.0 (and they hash alike) but caproto writes them apart: an
    EventAddRequest's low/high/to after one with the other zero must not take
    its text from the repr cache (the fuzzer found low=-0.0 printed for 0.0)."""
    for first, then in ((-0.0, 0.0), (0.0, -0.0)):
        for low in (first, then):
            command = ca.EventAddRequest(data_type=ChannelType.TIME_LONG, data_count=0, sid=1,
                                         subscriptionid=0, low=low, high=low, to=low, mask=13)
            assert command_repr(command) == repr(command)
            assert f"low={low!r}, high={low!r}, to={low!r}" in command_repr(command)
