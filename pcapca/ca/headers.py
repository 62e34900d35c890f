"""CA headers: reading one, judging whether one can start a message (resync), DBR payload sizes."""
from __future__ import annotations

import ctypes
import struct
from typing import Optional, Tuple

from caproto import DBR_TYPES, ChannelType, native_type

from ._caproto import CLIENT, EXTENDED_HEADER_SIZE, HEADER_SIZE, SERVER, Commands, special_types
from .command_ids import (ACCESS_RIGHTS, CLEAR_CHANNEL, CLIENT_NAME, CREATE_CHAN, EVENT_ADD,
                          EVENT_CANCEL, HOST_NAME, READ, READ_NOTIFY, READ_SYNC, SEARCH, VERSION,
                          WRITE, WRITE_NOTIFY)

DEFAULT_MAX_MESSAGE = 64 << 20   # like EPICS_CA_MAX_ARRAY_BYTES, per message
MAX_DBR_TYPE = 38

unpack_header = struct.Struct(">HHHHII").unpack_from     # (buf, pos) -> the 6 fields
unpack_extension = struct.Struct(">II").unpack_from      # extended payload_size, data_count

# Commands whose data_type field is a DBR type and whose payload is data.
_DATA_COMMANDS = {EVENT_ADD, READ, WRITE, READ_NOTIFY, WRITE_NOTIFY}
# Messages whose payload is DBR data of the header's type and count, by role.
_DATA_MESSAGES = {CLIENT: {WRITE, WRITE_NOTIFY}, SERVER: {EVENT_ADD, READ, READ_NOTIFY}}
# Which messages never / always carry a payload, by role (resync checks only).
_EMPTY = {CLIENT: {VERSION, EVENT_CANCEL, CLEAR_CHANNEL, READ_NOTIFY},
          SERVER: {VERSION, CLEAR_CHANNEL, CREATE_CHAN, WRITE_NOTIFY, ACCESS_RIGHTS}}
_NONEMPTY = {CLIENT: {EVENT_ADD, WRITE, SEARCH, CREATE_CHAN, WRITE_NOTIFY, CLIENT_NAME,
                      HOST_NAME},
             SERVER: {SEARCH, READ_NOTIFY}}


def known(role, command: int) -> bool:
    """Is ``command`` a message ``role`` sends (READ_SYNC: rsrv answers it too)?"""
    return command in Commands[role] or command == READ_SYNC


def split_header(buf, pos: int) -> Optional[Tuple[int, int, int, int, int]]:
    """(command, header_size, payload_size, data_type, data_count) of the
    message at ``pos``, or None if the header is not complete yet."""
    if len(buf) - pos < HEADER_SIZE:
        return None
    command, size, dtype, count, _p1, _p2 = unpack_header(buf, pos)
    if size == 0xFFFF and count == 0:
        if len(buf) - pos < EXTENDED_HEADER_SIZE:
            return None
        size, count = unpack_extension(buf, pos + HEADER_SIZE)
        return command, EXTENDED_HEADER_SIZE, size, dtype, count
    return command, HEADER_SIZE, size, dtype, count


def plausible(role, command, payload_size, data_type, data_count, max_message) -> bool:
    """Could a header with these fields start a CA message from ``role``?
    Strict: used only to find a message boundary after lost or junk bytes."""
    if not known(role, command) or payload_size % 8 or payload_size > max_message:
        return False
    if command in _DATA_COMMANDS and data_type > MAX_DBR_TYPE:
        return False
    if command == VERSION:      # no payload, a protocol minor version
        return payload_size == 0 and 1 <= data_count <= 31
    if payload_size and command in _DATA_MESSAGES[role] and not size_fits(data_type, data_count,
                                                                          payload_size):
        return False
    sizes = _EMPTY[role]
    if command in sizes:
        return payload_size == 0
    if command in _NONEMPTY[role]:
        return payload_size > 0
    return True


def size_fits(data_type: int, data_count: int, payload_size: int) -> bool:
    """Is ``payload_size`` what ``data_count`` values of ``data_type`` (with
    its metadata) take, padded to 8 bytes? (Unknown types: can't tell: yes.)"""
    sizes = dbr_sizes(data_type)
    if sizes is None:
        return True
    need = sizes[0] + data_count * sizes[1]
    return need <= payload_size <= need + 8 + 7


def dbr_sizes(data_type: int, _cache={}):
    """(metadata size, element size) of a DBR type as caproto lays out its
    payload (metadata for the special types and for every non-native one),
    or None for a type caproto does not know."""
    if data_type not in _cache:
        try:
            native = native_type(data_type)
            meta = 0 if (data_type not in special_types and native == data_type) \
                else ctypes.sizeof(DBR_TYPES[data_type])
            _cache[data_type] = (meta, ctypes.sizeof(DBR_TYPES[native]))
        except Exception:
            _cache[data_type] = None
    return _cache[data_type]


def count_base(data_type: int) -> Optional[Tuple[int, int]]:
    """(element size, base): ``data_count`` values of ``data_type`` fit a
    payload of ``size`` bytes (whose metadata fits) when ``size >= data_count
    * element size + base``; None for a type caproto does not know. A
    string's last value may be cut short (rsrv and libca send a single
    DBR_STRING value only up to its NUL): all but the last must be whole."""
    sizes = dbr_sizes(data_type)
    if sizes is None:
        return None
    meta, elem = sizes
    return elem, meta - elem if native_type(data_type) == ChannelType.STRING else meta


def looks_like_ca(data, role, max_message: int = DEFAULT_MAX_MESSAGE) -> bool:
    """Do the first bytes of a stream on a port not known as CA look like CA?
    The first header must be plausible, and so must the next one if the
    first message ends inside ``data``."""
    buf = bytes(data)
    pos = 0
    for _ in range(2):
        head = split_header(buf, pos)
        if head is None:
            return pos > 0
        command, hsize, size, dtype, count = head
        if not plausible(role, command, size, dtype, count, max_message):
            return False
        pos += hsize + size
        if pos >= len(buf):
            return True
    return True
