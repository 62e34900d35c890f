"""Turning records into text: format strings, caproto's repr, JSON.

``{command}`` is exactly ``repr(command)`` as caproto writes it, on one line.
caproto's ``Message.__repr__`` recomputes ``inspect.signature`` on every call
and numpy's array repr is slow; ``command_repr`` produces the same text with
the signature cached per class and the reprs of small arrays and of
immutable values memoised (each computed by numpy/caproto themselves).
"""
from __future__ import annotations

import enum
import inspect
import json
import math
import string
import struct
import sys
import types
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..ca._caproto import (HEADER_FIELDS, Commands, DbrTypeBase, Message, caproto, extract_data,
                           header_field, header_fields, property_code, reads_status_from_header)
from ..ca.headers import dbr_sizes
from ..ca.messages import UnknownCommand
from ..errors import FormatError
from ..escape import printable, printable_json
from ..items import FirstPacket

DEFAULT_FORMAT = "{timestamp} {src}:{transport.sport}->{dst}:{transport.dport} {command}"

# Tokens: caproto-shark's, then pcapca's own.
SHARK_TOKENS = ("timestamp", "ethernet", "ip", "transport", "command", "src", "dst")
TOKENS = SHARK_TOKENS + ("frame", "sport", "dport", "proto", "role", "name", "pv",
                         "latency", "request_frame", "ts", "time", "time_relative", "file",
                         "file_frame")


# --------------------------------------------------------------------- repr
_params: Dict[type, Tuple[str, ...]] = {}
_repr_cache: Dict[object, str] = {}
_ARRAY_CACHE_MAX_BYTES = 512
_CACHE_MAX = 1 << 14          # entries (arrays of up to 512 bytes: at most ~25 MB)
_NO_WRAP = sys.maxsize


def _parameters(cls) -> Tuple[str, ...]:
    names = _params.get(cls)
    if names is None:
        names = (("header",) if cls is Message
                 else tuple(inspect.signature(cls).parameters))
        _params[cls] = names
    return names


def value_repr(value) -> str:
    """repr(value) as caproto's Message.__repr__ writes it, never wrapped."""
    cls = value.__class__
    if cls is np.ndarray:
        if value.nbytes <= _ARRAY_CACHE_MAX_BYTES:
            key = (value.dtype.str, value.shape, value.tobytes())
            text = _repr_cache.get(key)
            if text is None:
                text = array_repr(value)
                if len(_repr_cache) > _CACHE_MAX:
                    _repr_cache.clear()
                _repr_cache[key] = text
            return text
        return array_repr(value)
    if cls is int or cls is str or cls is float:
        # (floats: 0.0 == -0.0 with one hash, so a cache would give one the
        # other's text; their repr is as quick as a look-up anyway)
        return repr(value)
    if cls in _time_classes:
        return _time_repr(value)
    try:
        text = _repr_cache.get((cls, value))
    except TypeError:            # unhashable (ctypes structures, lists...)
        return repr(value)
    if text is None:
        text = repr(value)
        if len(_repr_cache) > _CACHE_MAX:
            _repr_cache.clear()
        _repr_cache[(cls, value)] = text
    return text


# DBR_TIME_* metadata: caproto's DbrTypeBase.__repr__ builds a dict and two
# enums per message. The same text from the same parts: the enums' reprs
# looked up by value, the timestamp from caproto's own property. Used only for
# classes that inherit caproto's __repr__, to_dict and timestamp unchanged;
# the first ones are compared with caproto's repr, and any difference turns
# this off for good (as for arrays).
def _time_metadata_classes() -> set:
    from caproto import DBR_TYPES

    from ..ca._caproto import DbrTypeBase, TimeTypeBase
    return {cls for cls in set(DBR_TYPES.values())
            if isinstance(cls, type) and issubclass(cls, TimeTypeBase)
            and cls.info_fields == ("status", "severity", "timestamp")
            and cls.__repr__ is DbrTypeBase.__repr__ and cls.to_dict is DbrTypeBase.to_dict
            and cls.timestamp is TimeTypeBase.timestamp}


def _alarm_texts():
    from caproto import AlarmSeverity, AlarmStatus
    return ({int(v): repr(v) for v in AlarmStatus}, {int(v): repr(v) for v in AlarmSeverity},
            {int(v): v.name for v in AlarmStatus}, {int(v): v.name for v in AlarmSeverity})


_time_classes = _time_metadata_classes()
_ALARM_STATUS_REPR, _ALARM_SEVERITY_REPR, _ALARM_STATUS_NAME, _ALARM_SEVERITY_NAME = _alarm_texts()
_time_verified = [0]


def _time_text(cls, status: int, severity: int, timestamp: float) -> Optional[str]:
    """caproto's repr of a DBR_TIME_* structure of class ``cls`` with these
    values, or None when caproto has no name for an alarm value (it logs it
    and leaves the field out)."""
    status = _ALARM_STATUS_REPR.get(status)
    severity = _ALARM_SEVERITY_REPR.get(severity)
    if status is None or severity is None:
        return None
    return f"{cls.__name__}(status={status}, severity={severity}, timestamp={timestamp!r})"


def _time_repr(md) -> str:
    text = _time_text(md.__class__, md.status, md.severity, md.timestamp)
    if text is None:
        return repr(md)
    if _time_verified[0] < _VERIFY_FIRST:
        _time_verified[0] += 1
        slow = repr(md)
        if slow != text:
            _time_classes.clear()
        return slow
    return text


# How each parameter of a class is read, so that the common ones need not go
# through caproto's property and an enum construction per message. Only
# properties whose code is exactly one of caproto's header patterns get a
# shortcut; the shortcut computes the same value the same way. The value of
# caproto's ``data`` and ``metadata`` properties depends only on the data
# type, the count and the payload bytes, so their text is kept per payload
# (``record_repr``); everything else (names, addresses...) goes through caproto.
_FIELD, _CHANNEL_TYPE, _STATUS, _GENERIC, _DATA = range(5)
_plans: Dict[type, Tuple] = {}
_DATA_CODE = {("extract_data", "buffers", "data_type", "data_count"),
              ("extract_metadata", "buffers", "data_type")}


def _param_plan(cls, name):
    """(name, kind, header field name, index in HEADER_FIELDS)."""
    index = header_field(cls, name)
    if index is not None:
        return (name, _FIELD, HEADER_FIELDS[index], index)          # self.header.X
    code = property_code(cls, name)
    if code is None:
        return (name, _GENERIC, None, None)
    names = code.co_names
    if names == ("ChannelType", "header", "data_type"):
        return (name, _CHANNEL_TYPE, "data_type", 2)                 # ChannelType(self.header.data_type)
    if reads_status_from_header(cls, name):
        return (name, _STATUS, "parameter1", 4)                      # eca_value_to_status[self.header.parameter1]
    if names in _DATA_CODE:
        return (name, _DATA, None, None)                             # extract_(meta)data(self.buffers...)
    return (name, _GENERIC, None, None)


def _plan(cls):
    plan = _plans.get(cls)
    if plan is None:
        plan = _plans[cls] = tuple(_param_plan(cls, n) for n in _parameters(cls))
    return plan


def _generic(command, name) -> str:
    try:
        return value_repr(getattr(command, name))
    except Exception as ex:  # as caproto's safe_repr does (the reason escaped)
        return f"(repr: {printable(str(ex))})"


# ------------------------------------------------------------ array repr
# numpy formats each element of a float array twice with dragon4 in Python
# loops (3 ms for 1000 doubles). For the arrays CA carries (1-D, at most
# numpy's summarisation threshold, float64 in positional notation, or
# integers) the same text can be built from Python's shortest float repr,
# which is what dragon4's "unique" mode produces when it has at most 8
# fractional digits (numpy's default precision); with more, dragon4 rounds
# the exact value at 8 digits, as C's "%.8f" does, and trims the zeros.
# Anything else goes to numpy. The
# first arrays of each kind are also formatted by numpy and compared: any
# difference (another numpy version, other print options) turns the fast
# path off for good.
_VERIFY_FIRST = 32
_TINY = float(np.finfo(np.float64).tiny)
_EXACT_8F = 2.0 ** 26
_isfinite = math.isfinite
_fast = {"f": [0, True], "i": [0, True]}      # kind -> [verified so far, enabled]
_suffixes: Dict[str, str] = {}


def array_repr(a) -> str:
    """``repr(a)`` with numpy's line wrapping off."""
    kind = a.dtype.kind
    if kind == "u":
        kind = "i"
    state = _fast.get(kind)
    if state is not None and state[1] and a.ndim == 1 and 0 < a.size <= _threshold():
        text = _fast_float(a) if kind == "f" else _fast_int(a)
        if text is not None:
            if state[0] >= _VERIFY_FIRST:
                return text
            slow = np.array_repr(a, max_line_width=_NO_WRAP)
            state[0] += 1
            if slow != text:
                state[1] = False
            return slow
    return np.array_repr(a, max_line_width=_NO_WRAP)


def _threshold() -> int:
    return np.get_printoptions()["threshold"]


def _suffix(a) -> str:
    """What follows the elements in numpy's repr: ", dtype='>f8')" or ")"."""
    key = a.dtype.str
    text = _suffixes.get(key)
    if text is None:
        one = np.array_repr(a[:1], max_line_width=_NO_WRAP)
        text = _suffixes[key] = one[one.index("]") + 1:]
    return text


def _default_float_options(opts=None) -> bool:
    """numpy prints floats as the fast paths write them (its defaults)."""
    opts = opts or np.get_printoptions()
    return (opts["precision"] == 8 and opts["floatmode"] == "maxprec" and not opts["suppress"]
            and opts["sign"] == "-" and opts["legacy"] is False and not opts["formatter"])


def _fast_float(a):
    if a.dtype.itemsize != 8 or not _default_float_options():
        return None                   # float32 has its own shortest digits
    if a.size < _MATRIX_MIN:
        # short arrays (most are scalars): numpy's per-call costs (a big-endian
        # array is converted for every ufunc) are ten times the Python ones
        body = _positional_body(a.tolist())
        if body is not None:
            return f"array([{body}]{_suffix(a)}"
    if not np.isfinite(a).all():
        return None
    nonzero = np.abs(a[a != 0])
    if nonzero.size:
        hi, lo = nonzero.max(), nonzero.min()
        if lo < _TINY:
            return None                   # subnormals: dragon4 and repr pick other digits
        if _scientific(hi, lo):
            return _fast_scientific(a)
        if hi >= _EXACT_8F:
            return f"array([{_positional_body(a.tolist())}]{_suffix(a)}"
    return _fixed_matrix(a)        # (a short array has been written above)


def _scientific(hi, lo) -> bool:
    """numpy's choice of notation, from the largest and smallest magnitudes."""
    return hi >= 1e8 or lo < 1e-4 or hi / lo > 1000.0


def _positional_body(values):
    """The elements of numpy's repr of a short float64 array, from their
    Python floats, when numpy writes them in positional notation; else None
    (non-finite values, subnormals, scientific notation)."""
    if len(values) == 1:
        return _scalar_body(values[0])
    if not all(map(_isfinite, values)):
        return None
    nonzero = [abs(x) for x in values if x]     # (-0.0 is zero too)
    if nonzero:
        hi, lo = max(nonzero), min(nonzero)
        if lo < _TINY or _scientific(hi, lo):
            return None
    if not nonzero or hi < _EXACT_8F:
        # below 2**26 a double is closer to its shortest repr than 0.5e-8:
        # "%.8f" rounds to the same digits (past 8 digits, it is dragon4's cut-off)
        pairs = [("%.8f" % x).rstrip("0").partition(".") for x in values]
        ints = [p[0] for p in pairs]
        fracs = [p[2] for p in pairs]
    else:
        ints, fracs = [], []
        for x in values:
            text = repr(x)
            whole, _, frac = text.partition(".")
            if frac == "0":
                frac = ""
            elif len(frac) > 8 or "e" in text:
                whole, _, frac = ("%.8f" % x).rstrip("0").partition(".")
            ints.append(whole)
            fracs.append(frac)
    left = max(map(len, ints))
    right = max(map(len, fracs))
    return ", ".join(f"{i.rjust(left)}.{f.ljust(right)}" for i, f in zip(ints, fracs))


def _scalar_body(x):
    """_positional_body of one value (most messages carry one): no widths to
    align, and numpy's choice of notation depends on the value alone."""
    if not _isfinite(x):
        return None
    a = abs(x)
    if a and (a >= 1e8 or a < 1e-4):
        return None                   # scientific notation (or a subnormal)
    if a < _EXACT_8F:
        return ("%.8f" % x).rstrip("0")
    # from 2**26 to 1e8 a double's spacing is over 1e-8: its shortest repr
    # has at most 8 fractional digits, which dragon4 writes as they are
    text = repr(x)
    return text[:-1] if text.endswith(".0") else text


_ZERO, _DOT, _E, _MINUS, _SPACE, _COMMA = (ord(c) for c in "0.e- ,")
_DIGIT_INDEX = np.arange(8)
_DIGIT_PLACES = _DIGIT_INDEX + 1
_MATRIX_MIN = 64       # below this many elements Python's string methods are faster


def _fixed_matrix(a):
    """The "%.8f" branch of _fast_float for long arrays: every element written
    right-aligned to one width (so the integer parts are right-aligned), then
    the trailing zeros of each fraction turned into spaces and the fraction
    columns no element uses dropped, as numpy pads them."""
    values = tuple(a.tolist())
    n = len(values)
    # the widest texts are those of the largest and of the most negative value
    # (rounding is monotonic); -0.0 may hide behind 0.0: the length check sees it
    width = max(len("%.8f" % max(values)), len("%.8f" % min(values)))
    text = f"%{width}.8f," * n % values
    if len(text) == n * (width + 1):
        chars = _char_matrix(text, n, width)
    else:
        width = max(map(len, ("%.8f," * n % values)[:-1].split(",")))
        chars = _char_matrix(f"%{width}.8f," * n % values, n, width)
    frac = chars[:, width - 8:]
    kept = np.where(frac != _ZERO, _DIGIT_PLACES, 0).max(axis=1)   # digits to keep per row
    right = int(kept.max())
    out = np.empty((n, width - 8 + right), dtype=np.uint8)
    out[:, :width - 8] = chars[:, :width - 8]
    out[:, width - 8:] = np.where(_DIGIT_INDEX[:right] < kept[:, None], frac[:, :right], _SPACE)
    return f"array([{_rows_text(out)}]{_suffix(a)}"


def _char_matrix(text: str, n: int, width: int):
    """The ASCII ``text`` of ``n`` fields of ``width`` characters, each
    followed by one separator, as an (n, width) uint8 matrix."""
    return np.frombuffer(text.encode("ascii"), np.uint8).reshape(n, width + 1)[:, :width]


def _rows_text(rows) -> str:
    """The rows of a character matrix joined by ", "."""
    n, width = rows.shape
    out = np.empty((n, width + 2), dtype=np.uint8)
    out[:, :width] = rows
    out[:, width] = _COMMA
    out[:, width + 1] = _SPACE
    return out.tobytes()[:-2].decode("ascii")


# Scientific notation, as numpy's dragon4 writes it with precision 8: each
# value's shortest digits, or the value rounded to 9 significant digits when
# the shortest needs more; both are C's "%.8e" without its trailing zeros (a
# double is within 1e-16, relative, of its shortest repr: far closer than 9
# digits can tell apart). All elements are padded to the same precision and
# exponent width, so every element has the same width: the texts are laid
# out as a character matrix and assembled column by column with numpy.
def _fast_scientific(a):
    n = a.size
    # "d.dddddddde+XX" or "d.dddddddde+XXX" for each magnitude (signs added below)
    text = "%.8e," * n % tuple(np.abs(a).tolist())
    if len(text) == 15 * n:                                      # no exponent of 100 or more
        chars = _char_matrix(text, n, 14)
        three = False
    else:
        texts = np.array(text[:-1].split(","))                  # short ones padded with NUL
        width = texts.dtype.itemsize // 4
        chars = texts.view(np.uint32).reshape(n, width)
        three = width == 15 and bool((chars[:, 14] != 0).any())
    used = np.flatnonzero((chars[:, 2:10] != _ZERO).any(axis=0))
    precision = int(used[-1]) + 1 if used.size else 0
    negative = np.signbit(a)
    signed = bool(negative.any())
    out = np.empty((n, signed + 2 + precision + 2 + (3 if three else 2)), dtype=np.uint8)
    col = 0
    if signed:
        out[:, 0] = np.where(negative, _MINUS, _SPACE)
        col = 1
    out[:, col] = chars[:, 0]
    out[:, col + 1] = _DOT
    col += 2
    out[:, col:col + precision] = chars[:, 2:2 + precision]
    col += precision
    out[:, col] = _E
    out[:, col + 1] = chars[:, 11]                              # exponent sign
    col += 2
    if three:
        short = chars[:, 14] == 0                               # two digits: pad with 0
        out[:, col] = np.where(short, _ZERO, chars[:, 12])
        out[:, col + 1] = np.where(short, chars[:, 12], chars[:, 13])
        out[:, col + 2] = np.where(short, chars[:, 13], chars[:, 14])
    else:
        out[:, col:col + 2] = chars[:, 12:14]
    return f"array([{_rows_text(out)}]{_suffix(a)}"


def _fast_int(a):
    if np.get_printoptions()["formatter"]:
        return None
    return f"array([{_int_body(a.tolist())}]{_suffix(a)}"


def _int_body(values) -> str:
    if len(values) == 1:
        return str(values[0])
    strs = [str(x) for x in values]
    width = max(map(len, strs))
    return ", ".join(s.rjust(width) for s in strs)


def command_repr(command) -> str:
    """Exactly ``repr(command)`` for caproto commands, on one line."""
    if not isinstance(command, Message):
        return repr(command)
    render, data_names = _renderer_of(command.__class__)
    return render(_Built(command), header_fields(command.header),
                  tuple(_generic(command, name) for name in data_names))


class _Built:
    """A caproto object as the compiled renderers read it (``.command``,
    like a Record's)."""
    __slots__ = ("command",)

    def __init__(self, command):
        self.command = command


# The data/metadata of a message by (parameters, data type, count, payload
# bytes): the payloads of a real capture repeat (the same readback again and
# again). One memo for the repr texts, one for the JSON values.
_DATA_TEXT_MAX_PAYLOAD = 4096          # bigger payloads are formatted each time
_DATA_TEXTS_MAX_BYTES = 8 << 20        # a memo is emptied when it holds more
_data_texts: Dict[tuple, tuple] = {}
_data_texts_bytes = [0]
_data_values: Dict[tuple, tuple] = {}
_data_values_bytes = [0]


def record_repr(record) -> str:
    """``command_repr(record.command)``, made from the record's header fields
    and memoised payload texts where it can, without building the caproto
    object (see ``Record.command``)."""
    if record._command is not None or record.msg is None:
        return command_repr(record.command)
    render, data_names = _renderer_of(record.cls)
    return render(record, record.fields,
                  _by_payload(record, data_names, _generic, _data_texts, _data_texts_bytes,
                              _text_size, _payload_texts) if data_names else None)


# ------------------------------------------------------------ payload texts
# The texts of a numeric message's data and metadata read from its payload
# with struct, without caproto's objects: building the command, its numpy
# array and its ctypes metadata and reading them through caproto's properties
# costs ten times what this does, for messages whose payload never repeats
# (DBR_TIME_*: the timestamp changes each time). The layouts are caproto's
# (sizes and offsets from its ctypes classes, the array dtypes from its
# extract_data); the texts come from the array and TIME fast paths above,
# other metadata (STS/GR/CTRL: no timestamp, they repeat) from caproto's repr,
# kept per metadata bytes. Only for payloads holding the whole value;
# anything else goes through caproto. The first texts of each class and DBR
# type are compared with caproto's: a difference turns this off for them.
_DATA_METADATA = ("data", "metadata")
_STRUCT_CODES = {"f8": "d", "f4": "f", "i1": "b", "u1": "B", "i2": "h", "u2": "H",
                 "i4": "i", "u4": "I", "i8": "q", "u8": "Q"}


def _payload_layouts() -> Dict[int, tuple]:
    """data type -> (metadata size, its class or None, TIME metadata struct or
    None, data dtype, struct code, array suffix, kind)."""
    from caproto import DBR_TYPES, ChannelType, TimeStamp, native_type
    layouts = {}
    for data_type in range(ChannelType.CTRL_DOUBLE + 1):
        sizes = dbr_sizes(data_type)
        if sizes is None or native_type(data_type) == ChannelType.STRING:
            continue
        md_size = sizes[0]
        md_cls = DBR_TYPES[data_type] if md_size else None
        one = extract_data(memoryview(bytes(8)), data_type, 1)
        if (not isinstance(one, np.ndarray) or one.dtype.str[0] not in ">|"
                or one.dtype.str[1:] not in _STRUCT_CODES):
            continue                      # (struct reads big-endian values)
        time_struct = None
        if md_cls in _time_classes:
            fields = (md_cls.status, md_cls.severity, md_cls.stamp)
            if ([(f.offset, f.size) for f in fields] != [(0, 2), (2, 2), (4, 8)]
                    or [(f.offset, f.size) for f in (TimeStamp.secondsSinceEpoch,
                                                    TimeStamp.nanoSeconds)] != [(0, 4), (4, 4)]):
                continue
            time_struct = struct.Struct(">hhII")
        kind = one.dtype.kind
        layouts[data_type] = (md_size, md_cls, time_struct, one.dtype,
                              _STRUCT_CODES[one.dtype.str[1:]], _suffix(one),
                              "i" if kind == "u" else kind)
    return layouts


_layouts = _payload_layouts()
_layout_verified: Dict[tuple, int] = {}   # (JSON?, class, data type) -> results compared
_layout_off: set = set()                  # (JSON?, class, data type) where they differed
_metadata_memo: Dict[tuple, object] = {}  # (JSON?, data type, metadata bytes) -> text or value
_METADATA_MEMO_MAX = 4096                 # entries (a CTRL_ENUM's: ~1.5 kB; one per channel)
_structs: Dict[str, object] = {}
_unix_time = caproto.epics_timestamp_to_unix


def _payload_texts(record, names):
    """The texts of ``names`` (data, metadata) of a record from its payload
    bytes, or None to go through caproto."""
    return _from_payload(record, names, False)


def _payload_values(record, names):
    """Their JSON values (``_field_json``'s), or None to go through caproto."""
    return _from_payload(record, names, True)


def _from_payload(record, names, as_json: bool):
    fields = record.fields
    data_type, count = fields[2], fields[3]
    layout = _layouts.get(data_type)
    if layout is None or names != _DATA_METADATA or count < 1:
        return None
    md_size, md_cls, time_struct, dtype, code, suffix, kind = layout
    msg, start = record.msg, record.hsize
    data_start = start + md_size
    if len(msg) < data_start + count * dtype.itemsize:
        return None
    if not as_json:
        opts = np.get_printoptions()
        if count > opts["threshold"]:
            return None
    key = (as_json, record.cls, data_type)
    if key in _layout_off:
        return None
    # metadata
    if md_cls is None:
        metadata = None if as_json else "None"
    elif time_struct is not None:
        status, severity, seconds, nanoseconds = time_struct.unpack_from(msg, start)
        if md_cls not in _time_classes:
            return None
        if as_json:
            if status not in _ALARM_STATUS_NAME or severity not in _ALARM_SEVERITY_NAME:
                return None
            metadata = {"status": _ALARM_STATUS_NAME[status], "severity": _ALARM_SEVERITY_NAME[severity],
                        "timestamp": _unix_time(seconds, nanoseconds)}
        else:
            metadata = _time_text(md_cls, status, severity, _unix_time(seconds, nanoseconds))
            if metadata is None:
                return None
    else:
        md_key = (as_json, data_type, msg[start:data_start])
        metadata = _metadata_memo.get(md_key)
        if metadata is None:
            metadata = _metadata_of(md_cls, md_key[2], as_json)
            if len(_metadata_memo) >= _METADATA_MEMO_MAX:
                _metadata_memo.clear()
            _metadata_memo[md_key] = metadata
    # data
    data = None
    if count < _MATRIX_MIN and _fast[kind][1]:
        fmt = f">{count}{code}"
        unpack = _structs.get(fmt)
        if unpack is None:
            unpack = _structs[fmt] = struct.Struct(fmt).unpack_from
        values = unpack(msg, data_start)
        if as_json:
            data = (list(values) if kind == "i" or all(map(_isfinite, values))
                    else [jsonable(v) for v in values])
        elif kind == "i":
            if not opts["formatter"]:
                data = f"array([{_int_body(values)}]{suffix}"
        elif code == "d" and _default_float_options(opts):
            body = _positional_body(values)
            if body is not None:
                data = f"array([{body}]{suffix}"
    if data is None:
        array = np.frombuffer(msg, dtype, count, data_start)
        data = jsonable(array) if as_json else value_repr(array)
    out = (data, metadata)
    verified = _layout_verified.get(key, 0)
    if verified < _VERIFY_FIRST:
        _layout_verified[key] = verified + 1
        command = record.command
        if as_json:
            slow = tuple(_field_json(command, name) for name in names)
            same = json.dumps(slow) == json.dumps(out)
        else:
            slow = tuple(_generic(command, name) for name in names)
            same = slow == out
        if not same:
            _layout_off.add(key)
        return slow
    return out


def _metadata_of(md_cls, md_bytes, as_json: bool):
    """The text or JSON value of caproto's metadata structure for these bytes."""
    try:
        md = md_cls.from_buffer(bytearray(md_bytes))
        return jsonable(md) if as_json else value_repr(md)
    except Exception as ex:  # as caproto's safe_repr / _field_json do (a CTRL_ENUM's bad no_str)
        return f"(error: {ex})" if as_json else f"(repr: {ex})"


_renderers: Dict[type, tuple] = {}


def _renderer_of(cls) -> tuple:
    renderer = _renderers.get(cls)
    if renderer is None:
        renderer = _renderers[cls] = _renderer(cls)
    return renderer


def _renderer(cls):
    """(render, data_names): ``render(source, fields, texts)`` is the repr of
    a message of class ``cls``, compiled from the class's plan into one
    f-string: header fields from ``fields`` (a HEADER_FIELDS tuple), enums by
    their precomputed reprs, the texts of its ``data_names`` parameters from
    ``texts``, anything else from ``source.command`` through caproto."""
    if not issubclass(cls, Message):
        return (lambda source, fields, texts: command_repr(source.command)), ()
    pieces = []
    data_names = []
    for name, kind, _field, index in _plan(cls):
        if kind == _FIELD:
            expr = f"f[{index}]"                     # ints: str() is repr()
        elif kind == _CHANNEL_TYPE:
            expr = f"_ct.get(f[2]) or _generic(r.command, {name!r})"
        elif kind == _STATUS:
            expr = f"_st.get(f[4]) or _generic(r.command, {name!r})"
        elif kind == _DATA:
            expr = f"t[{len(data_names)}]"
            data_names.append(name)
        else:
            expr = f"_generic(r.command, {name!r})"
        pieces.append(f"{name}={{{expr}}}")
    source = "lambda r, f, t: f" + repr(f"{cls.__name__}({', '.join(pieces)})")
    env = {"_ct": _CT_REPR, "_st": _STATUS_REPR, "_generic": _generic}
    return eval(source, env), tuple(data_names)  # noqa: S307 - from caproto's parameter names


def _text_size(payload, texts) -> int:
    return len(payload) + sum(map(len, texts)) + 100


def _values_size(payload, values) -> int:
    return 16 * len(payload) + 200          # (lists of Python numbers: ~16x the bytes)


def _by_payload(record, names: tuple, value_of, memo: dict, held: list, size,
                fast) -> tuple:
    """``value_of(record.command, name)`` for each of ``names`` (parameters
    whose value depends only on the data type, count and payload), or what
    ``fast(record, names)`` gives for them from the payload without the
    caproto object (None: it cannot), memoised in ``memo`` by those;
    ``held[0]`` counts the bytes the memo holds, as ``size(payload, values)``
    estimates them. The values are shared: they are only formatted or
    serialised, never modified."""
    payload = record.msg[record.hsize:]
    if len(payload) > _DATA_TEXT_MAX_PAYLOAD:
        return _values_of(record, names, value_of, fast)
    fields = record.fields
    key = (names, fields[2], fields[3], payload)
    values = memo.get(key)
    if values is None:
        values = _values_of(record, names, value_of, fast)
        held[0] += size(payload, values)
        if held[0] > _DATA_TEXTS_MAX_BYTES:
            memo.clear()
            held[0] = 0
        memo[key] = values
    return values


def _values_of(record, names: tuple, value_of, fast) -> tuple:
    values = fast(record, names)
    if values is None:
        command = record.command
        values = tuple(value_of(command, name) for name in names)
    return values


def _enum_texts():
    """repr() and JSON name of every ChannelType and CA status value."""
    from caproto import ChannelType

    from ..ca._caproto import eca_value_to_status
    return ({int(v): repr(v) for v in ChannelType},
            {k: repr(v) for k, v in eca_value_to_status.items()},
            {int(v): jsonable(v) for v in ChannelType},
            {k: jsonable(v) for k, v in eca_value_to_status.items()})


_CT_REPR = _STATUS_REPR = _CT_NAME = _STATUS_NAME = None   # set below, after jsonable


def command_fields(command) -> Dict[str, object]:
    """The message's own fields (its class's constructor parameters) in
    JSON-able form."""
    if isinstance(command, UnknownCommand):
        h = command.header
        return {"command_id": h.command, "payload_size": h.payload_size,
                "data_type": h.data_type, "data_count": h.data_count,
                "parameter1": h.parameter1, "parameter2": h.parameter2}
    data_names = _renderer_of(command.__class__)[1]
    return _fields_json(command.__class__, header_fields(command.header), _Built(command),
                        tuple(_field_json(command, name) for name in data_names))


def _fields_json(cls, fields: tuple, source, data: tuple) -> Dict[str, object]:
    """The fields of a message of class ``cls`` from its header ``fields``,
    the values ``data`` of its data/metadata parameters (in plan order) and,
    for anything else, ``source.command``."""
    out = {}
    data_index = 0
    for name, kind, _field, index in _plan(cls):
        # header fields as the repr reads them: ints, and enums by name
        if kind == _FIELD:
            out[name] = fields[index]
        elif kind == _CHANNEL_TYPE and fields[2] in _CT_NAME:
            out[name] = _CT_NAME[fields[2]]
        elif kind == _STATUS and fields[4] in _STATUS_NAME:
            out[name] = _STATUS_NAME[fields[4]]
        elif kind == _DATA:
            out[name] = data[data_index]
            data_index += 1
        else:
            out[name] = _field_json(source.command, name)
    return out


def jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, enum.Enum):
            return value.name
        if isinstance(value, float) and not np.isfinite(value):
            return repr(value)
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, np.ndarray):
        kind = value.dtype.kind
        if kind in "iub" or (kind == "f" and np.isfinite(value).all()):
            return value.tolist()            # Python ints and finite floats: JSON as they are
        if kind == "f":
            return [jsonable(v) for v in value.tolist()]
        return [jsonable(v) if isinstance(v, (bytes, float)) else v for v in value.tolist()]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).split(b"\0", 1)[0].decode("latin-1")
    if hasattr(value, "to_dict"):          # caproto DBR metadata structures
        return _metadata_json(value)
    if hasattr(value, "_asdict"):          # CAStatusCode and other namedtuples
        d = value._asdict()
        return d.get("name", {k: jsonable(v) for k, v in d.items()})
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return repr(value)


_CT_REPR, _STATUS_REPR, _CT_NAME, _STATUS_NAME = _enum_texts()


def type_name(value: int):
    """A DBR type's name as JSON has it (DOUBLE, TIME_LONG...), or the
    number if it has none."""
    return _CT_NAME.get(value, value)


def _metadata_json(value) -> dict:
    """caproto's ``to_dict`` of a DBR structure as JSON values, but an alarm
    status or severity that caproto's enums lack (a damaged payload) is kept
    as its number: ``to_dict`` leaves it out (and logs a traceback)."""
    if type(value).to_dict is not DbrTypeBase.to_dict:
        return {k: jsonable(v) for k, v in value.to_dict().items()}
    out = {}
    for name in value.info_fields:
        v = getattr(value, name)
        if name == "status":
            out[name] = _ALARM_STATUS_NAME.get(v, v)
        elif name == "severity":
            out[name] = _ALARM_SEVERITY_NAME.get(v, v)
        else:
            out[name] = jsonable(v)
    return out


def ts_string(ts: int) -> str:
    """Exact timestamp in seconds as a string (nanosecond digits)."""
    sign = "-" if ts < 0 else ""
    s, ns = divmod(abs(ts), 1_000_000_000)
    return f"{sign}{s}.{ns:09d}"


def record_fields(record) -> Dict[str, object]:
    """``command_fields(record.command)``, from the header fields and
    memoised payload values where it can (as ``record_repr``)."""
    if record._command is not None or record.msg is None:
        return command_fields(record.command)
    data_names = _renderer_of(record.cls)[1]
    return _fields_json(record.cls, record.fields, record,
                        _by_payload(record, data_names, _field_json, _data_values,
                                    _data_values_bytes, _values_size, _payload_values)
                        if data_names else ())


def _field_json(command, name: str):
    try:
        return jsonable(getattr(command, name))
    except Exception as ex:
        return f"(error: {ex})"


def record_json(record, files=None) -> str:
    """One JSON object; with ``files`` (several captures read as one, see
    ``pcapca.capture_set``) it says the file and frame number there too."""
    obj = {
        "frame": record.frame,
        "timestamp": ts_string(record.ts),
        "src": record.src, "sport": record.sport,
        "dst": record.dst, "dport": record.dport,
        "proto": record.proto, "role": record.role,
        "command": record.name,
        "pv": record.pv,
        "request_frame": record.request_frame,
        "latency": record.latency,
        "repr": record_repr(record),
        "fields": record_fields(record),
    }
    if files is not None:
        path, frame = files.locate(record.packet.frame)
        obj = {"frame": record.frame, "file": path, "file_frame": frame, **obj}
    return printable_json(_json_line(obj))


# json.dumps with options builds a new encoder each call
_json_line = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


# --------------------------------------------------------------------- format strings
def _opt(value):
    return "" if value is None else value


def _text(value):
    """{pv}: "" when unknown, else the name made printable."""
    return "" if value is None else value if value.isprintable() else printable(value)


def _latency(value):
    return "" if value is None else f"{value:.6f}"


# token -> Python expression on the record ``r`` (the only code the compiled
# templates contain besides constants: no text from the user is evaluated)
_EXPRESSIONS: Dict[str, str] = {
    "timestamp": "r.packet.timestamp",
    "ethernet": "r.ethernet",
    "ip": "r.ip",
    "transport": "r.transport",
    "command": "r.command",        # bare {command} is compiled to caproto's repr
    "src": "r.segment.src",
    "dst": "r.segment.dst",
    "frame": "r.packet.frame",
    "sport": "r.segment.sport",
    "dport": "r.segment.dport",
    "proto": "r.proto",
    "role": "r.role",
    "name": "r.cls.__name__",
    "pv": "_text(r.pv)",
    "latency": "_latency(r.latency)",
    "request_frame": "_opt(r.request_frame)",
    "ts": "r.packet.ts",
    "time": "_ts_string(r.packet.ts)",
    "time_relative": "_ts_string(r.packet.ts - _start(r.packet.ts))",
    "file": "_text(_files.name(r.packet.frame))",
    "file_frame": "_files.local(r.packet.frame)",
}
# caproto-shark's {transport.sport}/{transport.dport} without building dpkt objects
_SHORTCUTS = {("transport", "sport"): "r.segment.sport", ("transport", "dport"): "r.segment.dport"}


def _chain(value, chain):
    """Follow .attr / [key] steps; a field this message does not have (e.g.
    {command.sid} of a search request) formats as empty, and so does code
    (a method, a class, a module: not a field, and the way to internals)."""
    try:
        for kind, key in chain:
            value = getattr(value, key) if kind == "." else value[key]
            if callable(value) or isinstance(value, _CODE):
                return ""
    except (AttributeError, KeyError, IndexError, TypeError):
        return ""
    return printable(value) if value.__class__ is str else value     # (text from the wire)


# objects that lead to code and globals through names without underscores
# (gi_frame.f_globals, tb_frame...), besides the callables
_CODE = (types.ModuleType, types.FrameType, types.CodeType, types.GeneratorType,
         types.CoroutineType, types.AsyncGeneratorType, types.TracebackType)


def _command_attributes() -> set:
    """The fields of caproto's messages: their public data attributes and
    properties, not their methods."""
    names, methods = set(), set()
    for table in Commands.values():
        for cls in table.values():
            for n in dir(cls):
                if not n.startswith("_"):
                    (methods if callable(getattr(cls, n)) else names).add(n)
    names.update(("header", "buffers", "sender_address"))
    return names - methods


def _dpkt_attributes(kind: str) -> Optional[set]:
    import dpkt
    classes = {"transport": (dpkt.tcp.TCP, dpkt.udp.UDP), "ip": (dpkt.ip.IP,),
               "ethernet": (dpkt.ethernet.Ethernet, dpkt.sll.SLL, dpkt.sll2.SLL2,
                            dpkt.loopback.Loopback)}.get(kind)
    if classes is None:
        return None
    names = set()
    for cls in classes:
        names.update(n for n in dir(cls) if not callable(getattr(cls, n)))
        names.update(getattr(cls, "__hdr_fields__", ()))
        for f in getattr(cls, "__hdr__", ()):
            names.add(f[0])
        for subfields in getattr(cls, "__bit_fields__", {}).values():
            names.update(name for name, _bits in subfields)
    return {n for n in names if not n.startswith("_")}


def _split_field(field: str) -> Tuple[str, List[Tuple[str, object]]]:
    """'transport.sport' -> ('transport', [('.', 'sport')])"""
    chain: List[Tuple[str, object]] = []
    i = 0
    while i < len(field) and field[i] not in ".[":
        i += 1
    root = field[:i]
    while i < len(field):
        if field[i] == ".":
            j = i + 1
            while j < len(field) and field[j] not in ".[":
                j += 1
            chain.append((".", field[i + 1:j]))
            i = j
        else:
            j = field.index("]", i)
            key = field[i + 1:j]
            chain.append(("[", int(key) if key.isdigit() else key))
            i = j + 1
    return root, chain


def _check_chain(fmt: str, field: str, root: str, chain) -> None:
    """Fields only, at any depth: no name or key starting with ``_`` (Python's
    internals: ``__class__``, ``__globals__``), no index of the object itself."""
    for kind, key in chain:
        if key == "" or (key.__class__ is str and key.startswith("_")):
            raise FormatError(f"format string {fmt!r}: '{{{field}}}': {key!r} is not a field "
                              f"(names starting with _ are Python's internals)" if key else
                              f"format string {fmt!r}: bad field '{{{field}}}'")
    if chain and chain[0][0] == "[" and root in ("command", "ethernet", "ip", "transport"):
        raise FormatError(f"format string {fmt!r}: '{{{field}}}': {{{root}}} has no index; "
                          f"index a field, e.g. {{command.data[0]}}")


# the largest width or precision of a format spec ({frame:>1000}): a line's
# size is then bounded by the format string's
MAX_FIELD_WIDTH = 1000


class _NoFiles:
    """{file}, {file_frame} of a Template given no ``Files``: no name."""
    @staticmethod
    def name(frame: int) -> str:
        return ""

    @staticmethod
    def local(frame: int) -> int:
        return frame


class Template:
    """A compiled ``--format`` string. ``Template(fmt)`` raises FormatError
    for a bad one (unknown token, unknown attribute, syntax). ``files``: a
    ``pcapca.capture.sets.FileFrames``, for ``{file}`` and ``{file_frame}``;
    ``start``: the ``filters.FirstPacket`` that ``{time_relative}`` counts
    from (see ``anchor``), shared with the templates made from this one."""

    def __init__(self, fmt: str, files=None, start=None):
        self.text = fmt
        self.files = files if files is not None else _NoFiles
        self._start = start if start is not None else FirstPacket()
        self.parts: List = []
        try:
            parsed = list(string.Formatter().parse(fmt))
        except ValueError as exc:
            raise FormatError(f"bad format string {fmt!r}: {exc}") from None
        cmd_attrs = None
        for literal, field, spec, conv in parsed:
            if literal:
                self.parts.append(literal)
            if field is None:
                continue
            if field == "" or field.isdigit():
                raise FormatError(f"format string {fmt!r}: positional field "
                                  f"'{{{field}}}' is not supported; use a token name, "
                                  f"one of: {', '.join('{' + t + '}' for t in TOKENS)}")
            try:
                root, chain = _split_field(field)
            except (ValueError, StopIteration):
                raise FormatError(f"format string {fmt!r}: bad field '{{{field}}}'") from None
            if root not in _EXPRESSIONS:
                raise FormatError(f"format string {fmt!r}: unknown token '{{{root}}}'; "
                                  f"tokens are {', '.join('{' + t + '}' for t in TOKENS)}")
            _check_chain(fmt, field, root, chain)
            if chain and chain[0][0] == ".":
                attr = chain[0][1]
                if root == "command":
                    cmd_attrs = cmd_attrs or _command_attributes()
                    known = cmd_attrs
                else:
                    known = _dpkt_attributes(root)
                if known is not None and attr not in known:
                    raise FormatError(f"format string {fmt!r}: '{{{field}}}': "
                                      f"no CA message field or attribute named {attr!r}"
                                      if root == "command" else
                                      f"format string {fmt!r}: '{{{field}}}': "
                                      f"{root} has no attribute {attr!r}")
                if known is None:
                    raise FormatError(f"format string {fmt!r}: '{{{field}}}': "
                                      f"{{{root}}} has no attributes")
            if conv not in (None, "r", "s", "a"):
                raise FormatError(f"format string {fmt!r}: bad conversion !{conv}")
            if spec and "{" in spec:
                raise FormatError(f"format string {fmt!r}: nested fields are not supported")
            if spec and max(map(int, "".join(c if c.isdecimal() else " " for c in spec).split()),
                            default=0) > MAX_FIELD_WIDTH:
                raise FormatError(f"format string {fmt!r}: '{{{field}:{spec}}}': a width or "
                                  f"precision over {MAX_FIELD_WIDTH} is not supported")
            self.parts.append((root, tuple(chain), conv, spec))
        self._render = self._compile()

    @property
    def relative(self) -> bool:
        """Does it show ``{time_relative}`` (see ``anchor``)?"""
        return any(part[0] == "time_relative" for part in self.parts if part.__class__ is tuple)

    def anchor(self, ts: int) -> None:
        """The time stamp (ns) of the capture's first packet, from which
        ``{time_relative}`` counts (``FirstPacket``): without one, it counts
        from the first record formatted."""
        self._start.anchor(ts)

    def _compile(self):
        consts = []
        pieces = []
        for part in self.parts:
            if part.__class__ is str:
                pieces.append(part.replace("{", "{{").replace("}", "}}"))
                continue
            root, chain, conv, spec = part
            if not chain and root == "command":
                expr = "_repr(r)"      # {command}, {command!r}, {command!s}
                conv = None if conv in ("r", "s") else conv
            elif len(chain) == 1 and (root, chain[0][1]) in _SHORTCUTS:
                expr = _SHORTCUTS[(root, chain[0][1])]
            elif chain:
                consts.append(chain)
                expr = f"_chain({_EXPRESSIONS[root]}, _c[{len(consts) - 1}])"
            else:
                expr = _EXPRESSIONS[root]
            if spec:
                consts.append(spec)
                spec_text = "{_c[%d]}" % (len(consts) - 1)
            else:
                spec_text = ""
            pieces.append("{" + expr + ("!" + conv if conv else "")
                          + (":" + spec_text if spec_text else "") + "}")
        source = "lambda r: f" + repr("".join(pieces))
        env = {"_c": tuple(consts), "_repr": record_repr, "_opt": _opt, "_text": _text, "_latency": _latency, "_ts_string": ts_string, "_chain": _chain, "_files": self.files,
               "_start": self._start.of}
        return eval(source, env)  # noqa: S307 - built only from the fixed expressions above

    def __call__(self, record) -> str:
        try:
            return self._render(record)
        except Exception:
            # a format spec that does not fit this value (e.g. {pv:>5d}), or a
            # field that caproto cannot read from a damaged message: part by part
            return self._render_loose(record)

    def _render_loose(self, record) -> str:
        out = []
        for part in self.parts:
            if part.__class__ is str:
                out.append(part)
                continue
            root, chain, conv, spec = part
            single = Template("{" + root + "".join(
                f".{k}" if kind == "." else f"[{k}]" for kind, k in chain)
                + (f"!{conv}" if conv else "") + "}", self.files, self._start)
            try:
                value = single._render(record)
            except Exception as exc:
                if not chain:
                    raise                   # pcapca's own token: a bug, reported as one
                # caproto's (or dpkt's) property or its text raised, as for a
                # damaged payload: the field says so, as {command} does in its repr
                out.append(f"(error: {printable(str(exc))})")
                continue
            try:
                out.append(format(value, spec))
            except ValueError:
                out.append(value)
        return "".join(out)
