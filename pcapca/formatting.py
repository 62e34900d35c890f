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
import string
import sys
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ._caproto import Commands, Message
from .ca_decode import UnknownCommand

DEFAULT_FORMAT = "{timestamp} {src}:{transport.sport}->{dst}:{transport.dport} {command}"

# Tokens: caproto-shark's, then pcapca's own.
SHARK_TOKENS = ("timestamp", "ethernet", "ip", "transport", "command", "src", "dst")
TOKENS = SHARK_TOKENS + ("frame", "sport", "dport", "proto", "role", "name", "pv",
                         "latency", "request_frame", "ts", "time")


class FormatError(ValueError):
    """A bad --format / --comment string."""


# --------------------------------------------------------------------- repr
_params: Dict[type, Tuple[str, ...]] = {}
_repr_cache: Dict[object, str] = {}
_ARRAY_CACHE_MAX_BYTES = 512
_CACHE_MAX = 1 << 16
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
                text = np.array_repr(value, max_line_width=_NO_WRAP)
                if len(_repr_cache) > _CACHE_MAX:
                    _repr_cache.clear()
                _repr_cache[key] = text
            return text
        return np.array_repr(value, max_line_width=_NO_WRAP)
    if cls is int or cls is str:
        return repr(value)
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


def command_repr(command) -> str:
    """Exactly ``repr(command)`` for caproto commands, on one line."""
    if not isinstance(command, Message):
        return repr(command)
    parts = []
    for name in _parameters(command.__class__):
        try:
            text = value_repr(getattr(command, name))
        except Exception as ex:  # as caproto's safe_repr does
            text = f"(repr: {ex})"
        parts.append(f"{name}={text}")
    return f"{command.__class__.__name__}({', '.join(parts)})"


def command_fields(command) -> Dict[str, object]:
    """The message's own fields (its class's constructor parameters) in
    JSON-able form."""
    if isinstance(command, UnknownCommand):
        h = command.header
        return {"command_id": h.command, "payload_size": h.payload_size,
                "data_type": h.data_type, "data_count": h.data_count,
                "parameter1": h.parameter1, "parameter2": h.parameter2}
    out = {}
    for name in _parameters(command.__class__):
        try:
            out[name] = jsonable(getattr(command, name))
        except Exception as ex:
            out[name] = f"(error: {ex})"
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
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            return [jsonable(float(v)) for v in value.tolist()]
        return [jsonable(v) if isinstance(v, (bytes, float)) else v for v in value.tolist()]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).split(b"\0", 1)[0].decode("latin-1")
    if hasattr(value, "to_dict"):          # caproto DBR metadata structures
        return {k: jsonable(v) for k, v in value.to_dict().items()}
    if hasattr(value, "_asdict"):          # CAStatusCode and other namedtuples
        d = value._asdict()
        return d.get("name", {k: jsonable(v) for k, v in d.items()})
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return repr(value)


def ts_string(ts: int) -> str:
    """Exact timestamp in seconds as a string (nanosecond digits)."""
    sign = "-" if ts < 0 else ""
    s, ns = divmod(abs(ts), 1_000_000_000)
    return f"{sign}{s}.{ns:09d}"


def record_json(record) -> str:
    cmd = record.command
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
        "repr": command_repr(cmd),
        "fields": command_fields(cmd),
    }
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


# --------------------------------------------------------------------- format strings
class _CommandView:
    """``{command}`` formats as caproto's repr; ``{command.x}`` reads x."""
    __slots__ = ("_c",)

    def __init__(self, command):
        self._c = command

    def __format__(self, spec):
        return format(command_repr(self._c), spec)

    def __getattr__(self, name):
        return getattr(self._c, name)


def _latency(r):
    return "" if r.latency is None else f"{r.latency:.6f}"


_GETTERS: Dict[str, Callable] = {
    "timestamp": lambda r: r.timestamp,
    "ethernet": lambda r: r.ethernet,
    "ip": lambda r: r.ip,
    "transport": lambda r: r.transport,
    "command": lambda r: _CommandView(r.command),
    "src": lambda r: r.src,
    "dst": lambda r: r.dst,
    "frame": lambda r: r.frame,
    "sport": lambda r: r.sport,
    "dport": lambda r: r.dport,
    "proto": lambda r: r.proto,
    "role": lambda r: r.role,
    "name": lambda r: r.name,
    "pv": lambda r: "" if r.pv is None else r.pv,
    "latency": _latency,
    "request_frame": lambda r: "" if r.request_frame is None else r.request_frame,
    "ts": lambda r: r.ts,
    "time": lambda r: ts_string(r.ts),
}


def _command_attributes() -> set:
    names = set()
    for table in Commands.values():
        for cls in table.values():
            names.update(n for n in dir(cls) if not n.startswith("__"))
    names.update(("header", "buffers", "sender_address"))
    return names


def _dpkt_attributes(kind: str) -> Optional[set]:
    import dpkt
    classes = {"transport": (dpkt.tcp.TCP, dpkt.udp.UDP), "ip": (dpkt.ip.IP,),
               "ethernet": (dpkt.ethernet.Ethernet, dpkt.sll.SLL, dpkt.sll2.SLL2,
                            dpkt.loopback.Loopback)}.get(kind)
    if classes is None:
        return None
    names = set()
    for cls in classes:
        names.update(n for n in dir(cls) if not n.startswith("__"))
        names.update(getattr(cls, "__hdr_fields__", ()))
        for f in getattr(cls, "__hdr__", ()):
            names.add(f[0])
        for subfields in getattr(cls, "__bit_fields__", {}).values():
            names.update(name for name, _bits in subfields)
    return names


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


class Template:
    """A compiled ``--format`` string. ``Template(fmt)`` raises FormatError
    for a bad one (unknown token, unknown attribute, syntax)."""

    def __init__(self, fmt: str):
        self.text = fmt
        self.parts: List = []
        self.roots = set()
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
            if root not in _GETTERS:
                raise FormatError(f"format string {fmt!r}: unknown token '{{{root}}}'; "
                                  f"tokens are {', '.join('{' + t + '}' for t in TOKENS)}")
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
            self.roots.add(root)
            self.parts.append((_GETTERS[root], chain, conv, spec, field))

    def __call__(self, record) -> str:
        out = []
        for part in self.parts:
            if part.__class__ is str:
                out.append(part)
                continue
            getter, chain, conv, spec, field = part
            value = getter(record)
            try:
                for kind, key in chain:
                    value = getattr(value, key) if kind == "." else value[key]
            except (AttributeError, KeyError, IndexError, TypeError):
                # a field this message does not have (e.g. {command.sid} of a
                # search request) formats as empty
                out.append("")
                continue
            if conv == "r":
                value = command_repr(value._c) if value.__class__ is _CommandView else repr(value)
            elif conv == "s":
                value = str(value) if value.__class__ is not _CommandView else command_repr(value._c)
            elif conv == "a":
                value = ascii(value)
            try:
                out.append(format(value, spec) if spec else
                           (value if value.__class__ is str else format(value, "")))
            except ValueError:
                out.append(str(value))
        return "".join(out)
