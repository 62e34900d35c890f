"""The data and metadata of a numeric message read from its payload with struct."""
from __future__ import annotations

import json
import struct
from typing import Dict

import numpy as np
from caproto import DBR_TYPES, ChannelType, TimeStamp, native_type

from ..ca._caproto import caproto, extract_data
from ..ca.headers import dbr_sizes
from .arrays import (_MATRIX_MIN, _VERIFY_FIRST, _default_float_options, _fast, _int_body,
                     _isfinite, _positional_body, _suffix)
from .values import (_ALARM_SEVERITY_NAME, _ALARM_STATUS_NAME, _field_json, _generic, _time_classes,
                     _time_text, jsonable, value_repr)

# The texts of a numeric message's data and metadata read from its payload
# with struct, without caproto's objects: building the command, its numpy
# array and its ctypes metadata and reading them through caproto's properties
# costs ten times what this does, for messages whose payload never repeats
# (DBR_TIME_*: the timestamp changes each time). The layouts are caproto's
# (sizes and offsets from its ctypes classes, the array dtypes from its
# extract_data); the texts come from the array and TIME fast paths (arrays.py, values.py),
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
