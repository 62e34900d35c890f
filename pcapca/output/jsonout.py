"""A record as one JSON line, and a message's fields as JSON values."""
from __future__ import annotations

import json
from typing import Dict

from ..ca._caproto import header_fields
from ..ca.messages import UnknownCommand
from ..escape import printable_json
from .payload import _payload_values
from .reprs import (_CHANNEL_TYPE, _DATA, _FIELD, _STATUS, _Built, _by_payload, _plan, _renderer_of,
                    record_repr)
from .values import _CT_NAME, _STATUS_NAME, _field_json

# the JSON values of data/metadata by payload (as reprs.py's _data_texts)
_data_values: Dict[tuple, tuple] = {}
_data_values_bytes = [0]


def _values_size(payload, values) -> int:
    return 16 * len(payload) + 200          # (lists of Python numbers: ~16x the bytes)


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


def record_json(record, files=None) -> str:
    """One JSON object; with ``files`` (several captures read as one, see
    ``pcapca.capture.sets``) it says the file and frame number there too."""
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
