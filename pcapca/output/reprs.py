"""caproto's repr of a command or record, from compiled per-class renderers and a memo by payload."""
from __future__ import annotations

import inspect
from typing import Dict, Tuple

from caproto import ChannelType

from ..ca._caproto import (HEADER_FIELDS, Message, eca_value_to_status, header_field, header_fields,
                           property_code, reads_status_from_header)
from .payload import _payload_texts
from .values import _generic

_params: Dict[type, Tuple[str, ...]] = {}


def _parameters(cls) -> Tuple[str, ...]:
    names = _params.get(cls)
    if names is None:
        names = (("header",) if cls is Message
                 else tuple(inspect.signature(cls).parameters))
        _params[cls] = names
    return names


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
# again). This memo holds the repr texts; jsonout.py's the JSON values.
_DATA_TEXT_MAX_PAYLOAD = 4096          # bigger payloads are formatted each time
_DATA_TEXTS_MAX_BYTES = 8 << 20        # a memo is emptied when it holds more
_data_texts: Dict[tuple, tuple] = {}
_data_texts_bytes = [0]


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
    """repr() of every ChannelType and CA status value."""
    return ({int(v): repr(v) for v in ChannelType},
            {k: repr(v) for k, v in eca_value_to_status.items()})


_CT_REPR, _STATUS_REPR = _enum_texts()
