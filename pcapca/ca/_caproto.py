"""The one place where pcapca touches caproto's internals.

caproto 1.3 keeps the command table (and the bytestream helpers, which pcapca
replaces by its own framing in ca_decode.py) in the private module
``caproto._commands``, and the DBR base classes, the special DBR types and
the CA status table in ``_dbr`` and ``_status``; pyproject.toml pins a caproto
version range for that reason. Everything else in pcapca imports caproto's
private names from here (and public ones from ``caproto``).
"""
from __future__ import annotations

import ctypes
import functools

import caproto
from caproto import CLIENT, SERVER
from caproto._commands import (Beacon, Commands, EventAddResponse,  # noqa: F401  (re-exported)
                               EventCancelResponse, Message, SearchResponse, extract_data)
from caproto._dbr import DbrTypeBase, TimeTypeBase, special_types  # noqa: F401
from caproto._headers import ExtendedMessageHeader, MessageHeader
from caproto._status import eca_value_to_status  # noqa: F401

__all__ = [
    "caproto", "CLIENT", "SERVER", "Beacon", "Commands", "Message", "EventAddResponse", "EventCancelResponse", "SearchResponse", "extract_data",
    "DbrTypeBase", "TimeTypeBase", "special_types", "eca_value_to_status",
    "MessageHeader", "ExtendedMessageHeader", "HEADER_SIZE", "EXTENDED_HEADER_SIZE",
    "command_class", "HEADER_FIELDS", "header_field", "header_fields", "property_code",
    "reads_status_from_header",
]

HEADER_SIZE = ctypes.sizeof(MessageHeader)              # 16
EXTENDED_HEADER_SIZE = ctypes.sizeof(ExtendedMessageHeader)  # 24


def command_class(role, command_id):
    """caproto's class for ``command_id`` sent by ``role``, or None."""
    return Commands[role].get(command_id)


# The header of a message as pcapca keeps it before (or without) building the
# caproto object: a tuple of these fields, in this order, with the extended
# header's 32-bit payload_size/data_count in place of the 16-bit ones.
HEADER_FIELDS = ("command", "payload_size", "data_type", "data_count", "parameter1", "parameter2")
_FIELD_INDEX = {name: i for i, name in enumerate(HEADER_FIELDS)}


def header_fields(header) -> tuple:
    """The ``HEADER_FIELDS`` tuple of a caproto (extended) header."""
    return (header.command, header.payload_size, header.data_type, header.data_count,
            header.parameter1, header.parameter2)


def _plain_code() -> bytes:
    """The bytecode of caproto's plain header properties (``return
    self.header.X``), compiled here from source: a function of this module
    would do, but a coverage tool or fuzzer that instruments pcapca's modules
    (atheris) changes their bytecode, and nothing would match any more."""
    namespace: dict = {}
    exec(compile("def getter(self):\n    return self.header.parameter1\n",  # noqa: S102
                 "<header property>", "exec"), namespace)
    return namespace["getter"].__code__.co_code


_PLAIN_CODE = _plain_code()


def property_code(cls, name: str):
    """The code object of caproto's property ``cls.name`` (a plain getter
    of ``self``), or None when it is not such a property."""
    prop = getattr(cls, name, None)
    code = getattr(getattr(prop, "fget", None), "__code__", None)
    if not isinstance(prop, property) or code is None or code.co_argcount != 1:
        return None
    return code


_STATUS_NAMES = ("eca_value_to_status", "header", "parameter1")


@functools.lru_cache(maxsize=None)          # (asked for every read/write reply by stats)
def reads_status_from_header(cls, name: str = "status") -> bool:
    """Is caproto's property ``cls.name`` ``eca_value_to_status[self.header.parameter1]``?"""
    code = property_code(cls, name)
    return code is not None and code.co_names == _STATUS_NAMES


def header_field(cls, name: str):
    """Index in ``HEADER_FIELDS`` of the header field that caproto's property
    ``cls.name`` returns unchanged (its code is ``return self.header.X``), or
    None when the property computes something else (or is not a property)."""
    code = property_code(cls, name)
    if code is None:
        return None
    names = code.co_names
    if (len(names) == 2 and names[0] == "header" and names[1] in _FIELD_INDEX
            and code.co_code == _PLAIN_CODE):
        return _FIELD_INDEX[names[1]]
    return None
