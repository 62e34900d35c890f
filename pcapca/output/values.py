"""One field value of a CA message as caproto's repr writes it, and as a JSON value."""
from __future__ import annotations

import enum
from typing import Dict, Optional

import numpy as np
from caproto import DBR_TYPES, AlarmSeverity, AlarmStatus, ChannelType

from ..ca._caproto import DbrTypeBase, TimeTypeBase, eca_value_to_status
from ..escape import printable
from .arrays import _VERIFY_FIRST, array_repr

_repr_cache: Dict[object, str] = {}
_ARRAY_CACHE_MAX_BYTES = 512
_CACHE_MAX = 1 << 14          # entries (arrays of up to 512 bytes: at most ~25 MB)


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
    return {cls for cls in set(DBR_TYPES.values())
            if isinstance(cls, type) and issubclass(cls, TimeTypeBase)
            and cls.info_fields == ("status", "severity", "timestamp")
            and cls.__repr__ is DbrTypeBase.__repr__ and cls.to_dict is DbrTypeBase.to_dict
            and cls.timestamp is TimeTypeBase.timestamp}


def _alarm_texts():
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


def _generic(command, name) -> str:
    try:
        return value_repr(getattr(command, name))
    except Exception as ex:  # as caproto's safe_repr does (the reason escaped)
        return f"(repr: {printable(str(ex))})"


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


def _enum_names():
    """JSON name of every ChannelType and CA status value."""
    return ({int(v): jsonable(v) for v in ChannelType},
            {k: jsonable(v) for k, v in eca_value_to_status.items()})


_CT_NAME, _STATUS_NAME = _enum_names()


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


def _field_json(command, name: str):
    try:
        return jsonable(getattr(command, name))
    except Exception as ex:
        return f"(error: {ex})"
