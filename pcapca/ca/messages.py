"""caproto objects from complete CA messages: built at once, or later when asked for."""
from __future__ import annotations

from caproto import ChannelType

from ._caproto import (EXTENDED_HEADER_SIZE, SERVER, Commands, EventAddResponse,
                       EventCancelResponse, ExtendedMessageHeader, Message, MessageHeader)
from .command_ids import EVENT_ADD
from .headers import count_base


class UnknownCommand:
    """A well-formed CA message that caproto has no class for in this role
    (e.g. rsrv's reply to READ_SYNC, command 10). Shown with its header."""
    __slots__ = ("header", "buffers", "sender_address", "payload_size")

    def __init__(self, header, payload: bytes):
        self.header = header
        self.buffers = (payload,)
        self.sender_address = None
        self.payload_size = header.payload_size

    def __repr__(self):
        h = self.header
        return (f"UnknownCommand(command={h.command}, payload_size={h.payload_size}, "
                f"data_type={h.data_type}, data_count={h.data_count}, "
                f"parameter1={h.parameter1}, parameter2={h.parameter2})")


class DecodeError(Exception):
    """A message that caproto could not decode (reported, then skipped)."""


def build(role, command: int, header_bytes: bytearray, payload, commands=None) -> object:
    """A caproto command object from one complete message (``commands`` is
    caproto's table for ``role``, passed by callers that have it at hand)."""
    if len(header_bytes) == EXTENDED_HEADER_SIZE:
        header = ExtendedMessageHeader.from_buffer(header_bytes)
    else:
        header = MessageHeader.from_buffer(header_bytes)
    if role is SERVER and command == EVENT_ADD and header.payload_size == 0:
        # Servers answer EventCancel with EVENT_ADD and no payload.
        return EventCancelResponse.from_wire(header, None)
    cls = (commands if commands is not None else Commands[role]).get(command)
    if cls is None:
        return UnknownCommand(header, bytes(payload))
    try:
        cmd = cls.from_wire(header, payload if cls.HAS_PAYLOAD else None)
    except Exception as exc:  # caproto raises many kinds on bad payloads
        raise DecodeError(f"{cls.__name__} could not be decoded: {exc}") from None
    if WHEN[role][command][1] == LATER_DATA:
        fit = count_base(header.data_type)
        count, size = header.data_count, header.payload_size
        if fit is not None and size < count * fit[0] + fit[1]:
            # (caproto would make a value per count: 2**32 for a DBR_STRING)
            raise DecodeError(f"{cls.__name__} could not be decoded: data_count {count} is "
                              f"more {ChannelType(header.data_type).name} values than its "
                              f"{size}-byte payload holds")
    return cmd


def build_later(cls, msg: bytes, hsize: int):
    """The caproto object of a message that ``StreamDecoder`` left unbuilt:
    exactly what ``build`` makes of the same bytes."""
    header = (ExtendedMessageHeader if hsize == EXTENDED_HEADER_SIZE
              else MessageHeader).from_buffer(bytearray(msg[:hsize]))
    return cls.from_wire(header, bytearray(msg[hsize:]) if cls.HAS_PAYLOAD else None)


# Building caproto objects is about a sixth of the decoding time, and most messages
# are never shown when a filter is on; their channel state needs only header
# fields. So the messages whose caproto decoding cannot fail are built only
# when asked for (``Record.command``): the classes that use caproto's plain
# Message.from_wire (no payload, or DBR data whose type is known and whose
# metadata fits the payload), and EventAddResponse, whose own from_wire does
# the same for a non-empty payload. Every other message is built at once, so
# that a message caproto rejects is reported where it was found.
LATER_NO_PAYLOAD, LATER_DATA, NOW = range(3)
UNKNOWN = (UnknownCommand, NOW)


def _when(cls) -> int:
    if cls.from_wire.__func__ is Message.from_wire.__func__ or cls is EventAddResponse:
        return LATER_DATA if cls.HAS_PAYLOAD else LATER_NO_PAYLOAD
    return NOW


# role -> command -> (class, LATER_NO_PAYLOAD / LATER_DATA / NOW)
WHEN = {role: {command: (cls, _when(cls)) for command, cls in table.items()}
        for role, table in Commands.items()}
# Per role, filled as messages come: (command << 16 | data type) -> the rule
# (class, sizes) of the messages built later (StreamDecoder.later_rule)
LATER = {role: {} for role in Commands}
