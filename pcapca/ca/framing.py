"""Channel Access message decoding: bytes in a known role -> caproto commands.

``StreamDecoder`` decodes one direction of a TCP circuit from the
reassembled byte stream; ``decode_datagram`` decodes one UDP datagram.
Both hand every well-formed message to caproto (validation off: padded
server replies are normal) and never turn bytes that do not look like CA
into messages: after a gap or junk they resynchronise on the next plausible
header.
"""
from __future__ import annotations

import ctypes
import struct
from typing import List, Optional, Tuple, Union

from caproto import DBR_TYPES, native_type

from ._caproto import (CLIENT, EXTENDED_HEADER_SIZE, HEADER_SIZE, SERVER, Commands,
                       EventAddResponse, EventCancelResponse, ExtendedMessageHeader, Message,
                       MessageHeader, special_types)

DEFAULT_MAX_MESSAGE = 64 << 20   # like EPICS_CA_MAX_ARRAY_BYTES, per message
MAX_DBR_TYPE = 38

_header = struct.Struct(">HHHHII").unpack_from
_ext = struct.Struct(">II").unpack_from

# Commands whose data_type field is a DBR type and whose payload is data.
_DATA_COMMANDS = {1, 3, 4, 15, 19}


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


def _known(role, command: int) -> bool:
    return command in Commands[role] or command == 10


def plausible(role, command, payload_size, data_type, data_count, max_message) -> bool:
    """Could a header with these fields start a CA message from ``role``?
    Strict: used only to find a message boundary after lost or junk bytes."""
    if not _known(role, command) or payload_size % 8 or payload_size > max_message:
        return False
    if command in _DATA_COMMANDS and data_type > MAX_DBR_TYPE:
        return False
    if command == 0:      # version: no payload, a protocol minor version
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


# Messages whose payload is DBR data of the header's type and count, by role.
_DATA_MESSAGES = {CLIENT: {4, 19}, SERVER: {1, 3, 15}}


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
    from caproto import ChannelType, native_type
    return elem, meta - elem if native_type(data_type) == ChannelType.STRING else meta


# Which messages never / always carry a payload, by role (resync checks only).
_EMPTY = {CLIENT: {0, 2, 12, 15}, SERVER: {0, 12, 18, 19, 22}}
_NONEMPTY = {CLIENT: {1, 4, 6, 18, 19, 20, 21}, SERVER: {6, 15}}


def build(role, command: int, header_bytes: bytearray, payload, commands=None) -> object:
    """A caproto command object from one complete message (``commands`` is
    caproto's table for ``role``, passed by callers that have it at hand)."""
    if len(header_bytes) == EXTENDED_HEADER_SIZE:
        header = ExtendedMessageHeader.from_buffer(header_bytes)
    else:
        header = MessageHeader.from_buffer(header_bytes)
    if role is SERVER and command == 1 and header.payload_size == 0:
        # Servers answer EventCancel with EVENT_ADD and no payload.
        return EventCancelResponse.from_wire(header, None)
    cls = (commands if commands is not None else Commands[role]).get(command)
    if cls is None:
        return UnknownCommand(header, bytes(payload))
    try:
        cmd = cls.from_wire(header, payload if cls.HAS_PAYLOAD else None)
    except Exception as exc:  # caproto raises many kinds on bad payloads
        raise DecodeError(f"{cls.__name__} could not be decoded: {exc}") from None
    if _WHEN[role][command][1] == _LATER_DATA:
        fit = count_base(header.data_type)
        count, size = header.data_count, header.payload_size
        if fit is not None and size < count * fit[0] + fit[1]:
            # (caproto would make a value per count: 2**32 for a DBR_STRING)
            raise DecodeError(f"{cls.__name__} could not be decoded: data_count {count} is "
                              f"more {_type_name(header.data_type)} values than its "
                              f"{size}-byte payload holds")
    return cmd


def _type_name(data_type: int) -> str:
    from caproto import ChannelType
    return ChannelType(data_type).name


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
_LATER_NO_PAYLOAD, _LATER_DATA, _NOW = range(3)
_UNKNOWN = (UnknownCommand, _NOW)


def _when(cls) -> int:
    if cls.from_wire.__func__ is Message.from_wire.__func__ or cls is EventAddResponse:
        return _LATER_DATA if cls.HAS_PAYLOAD else _LATER_NO_PAYLOAD
    return _NOW


_WHEN = {role: {command: (cls, _when(cls)) for command, cls in table.items()}
         for role, table in Commands.items()}
# Per role, filled as messages come: (command << 16 | data type) -> the rule
# (class, sizes) of the messages built later (StreamDecoder.later_rule)
_LATER = {role: {} for role in Commands}


def split_header(buf, pos: int) -> Optional[Tuple[int, int, int, int, int]]:
    """(command, header_size, payload_size, data_type, data_count) of the
    message at ``pos``, or None if the header is not complete yet."""
    if len(buf) - pos < HEADER_SIZE:
        return None
    command, size, dtype, count, _p1, _p2 = _header(buf, pos)
    if size == 0xFFFF and count == 0:
        if len(buf) - pos < EXTENDED_HEADER_SIZE:
            return None
        size, count = _ext(buf, pos + HEADER_SIZE)
        return command, EXTENDED_HEADER_SIZE, size, dtype, count
    return command, HEADER_SIZE, size, dtype, count


class StreamDecoder:
    """Decodes one direction of a TCP circuit.

    ``feed(data)`` returns a list whose items are messages or ``str``
    problems (one line each). A message is a tuple ``(cls, fields, msg,
    hsize, command)``: its caproto class, its ``HEADER_FIELDS`` values, its
    bytes (header of ``hsize`` bytes, then payload) and its caproto object,
    or None when it is to be built later (``build_later``). A message larger
    than ``max_message`` is skipped without buffering it.
    """
    # (fast.skim reads synced/buf/skip, and Circuit.skimmed_data sets
    # fresh/partial as feed does after whole messages: keep them in step)
    __slots__ = ("role", "buf", "synced", "skip", "max_message", "partial", "commands",
                 "when", "later", "fresh")

    def __init__(self, role, *, synced: bool = True, max_message: int = DEFAULT_MAX_MESSAGE):
        self.role = role
        self.commands = Commands[role]   # (hashing the role enum per message is slow)
        self.when = _WHEN[role]
        self.later = _LATER[role]
        self.fresh = True                # nothing decoded yet in this direction
        self.buf = bytearray()
        self.synced = synced
        self.skip = 0            # payload bytes of an oversized message still to drop
        self.max_message = max_message
        self.partial = False     # a message is incomplete (for end-of-capture reports)

    def later_rule(self, command: int, dtype: int):
        """(class, smallest payload size, element size, base) of the complete
        messages with this command and data type whose caproto object is built
        later (``_when``: decoding cannot fail) when their payload size is at
        least the smallest and ``data_count * element size + base`` (see
        ``count_base``), or None: built at once. The server's command 1
        without payload (an EventCancelResponse, see ``build``) is not one of
        them; ``feed`` takes it first. Kept in ``self.later``, where callers
        look first."""
        cls, when = self.when.get(command, _UNKNOWN)
        if when == _LATER_NO_PAYLOAD:
            rule = (cls, 0, 0, 0)
        elif when == _LATER_DATA:
            sizes = dbr_sizes(dtype)
            if sizes is None:
                return None                # caproto will say what is wrong with it
            smallest = sizes[0]            # the metadata must fit the payload
            if self.role is SERVER and command == 1:
                smallest = max(1, smallest)
            rule = (cls, smallest) + count_base(dtype)     # ...and data_count its values
        else:
            return None
        self.later[command << 16 | dtype] = rule
        return rule

    def gap(self) -> None:
        """Bytes were lost: whatever is buffered can't be trusted."""
        self.buf.clear()
        self.skip = 0
        self.synced = False

    def feed(self, data) -> List[Union[object, str]]:
        if self.synced and not self.buf and not self.skip and len(data) >= HEADER_SIZE:
            # the common case: a segment that holds exactly one message to build later
            command, size, dtype, count, p1, p2 = _header(data, 0)
            if size + HEADER_SIZE == len(data) and size != 0xFFFF and size <= self.max_message:
                rule = self.later.get(command << 16 | dtype) or self.later_rule(command, dtype)
                if rule is not None and size >= rule[1] and size >= count * rule[2] + rule[3]:
                    self.fresh = False
                    self.partial = False
                    return [(rule[0], (command, size, dtype, count, p1, p2),
                             data if data.__class__ is bytes else bytes(data), HEADER_SIZE, None)]
        out: List[Union[object, str]] = []
        if self.skip:
            n = min(self.skip, len(data))
            self.skip -= n
            data = data[n:]
            if not data:
                self.partial = self.skip > 0     # (the skipped message may have ended here)
                return out
        boundary = len(self.buf)   # where this segment starts in the buffer
        if self.buf:
            self.buf += data
            buf = self.buf
        else:
            buf = data          # usually a segment starts with a message: no copy
        pos = 0
        role = self.role
        commands = self.commands
        later = self.later
        max_message = self.max_message
        n = len(buf)
        while True:
            if not self.synced:
                pos = self._resync(buf, pos, boundary)
                if not self.synced:
                    break
            if n - pos < HEADER_SIZE:
                break
            command, size, _dtype, count, _p1, _p2 = _header(buf, pos)
            hsize = HEADER_SIZE
            if size == 0xFFFF and count == 0:
                if n - pos < EXTENDED_HEADER_SIZE:
                    break
                size, count = _ext(buf, pos + HEADER_SIZE)
                hsize = EXTENDED_HEADER_SIZE
            if command not in commands and command != 10:
                out.append(f"bytes that are not CA (command id {command}) "
                           f"in the {'client' if role is CLIENT else 'server'} stream; "
                           f"looking for the next message")
                self.synced = False
                pos += 1
                continue
            total = hsize + size
            if size > max_message:
                if plausible(role, command, size, _dtype, count, 1 << 62):
                    # a real message, too big to keep: drop its bytes as they come
                    out.append(f"message (command {command}) claims {size} bytes, over the "
                               f"{max_message}-byte limit; skipped")
                    take = min(total, n - pos)
                    self.skip = total - take
                    pos += take
                else:
                    out.append(f"message (command {command}) claims {size} bytes, over the "
                               f"{max_message}-byte limit, and is not a plausible CA message; "
                               f"looking for the next message")
                    self.synced = False
                    pos += 1
                continue
            if n - pos < total:
                break
            msg = buf[pos:pos + total]
            if msg.__class__ is not bytes:
                msg = bytes(msg)
            fields = (command, size, _dtype, count, _p1, _p2)
            if role is SERVER and command == 1 and not size:
                rule = (EventCancelResponse, 0, 0, 0)           # (see build)
            else:
                rule = later.get(command << 16 | _dtype) or self.later_rule(command, _dtype)
            if rule is None or size < rule[1] or size < count * rule[2] + rule[3]:
                try:
                    cmd = build(role, command, bytearray(msg[:hsize]), bytearray(msg[hsize:]),
                                commands)
                except DecodeError as exc:
                    out.append(str(exc))
                    pos += total
                    continue
                out.append((cmd.__class__, fields, msg, hsize, cmd))
            else:
                out.append((rule[0], fields, msg, hsize, None))
            pos += total
        if pos < n:
            if buf is not self.buf:
                self.buf = bytearray(buf[pos:])
            elif pos:
                del buf[:pos]    # (in place: a big message arriving is never copied again)
        elif buf is self.buf:
            self.buf = bytearray()
        self.partial = pos < n or self.skip > 0
        if out:
            self.fresh = False
        return out

    def _resync(self, buf, pos, boundary=0) -> int:
        """Find the next message boundary: a plausible header whose message
        ends exactly where the data does or is followed by another plausible
        header. Senders start segments with a message, so the start of the
        newest segment (``boundary``) is tried first. Returns where to
        continue (synced) or what to keep (not synced)."""
        n = len(buf)
        if pos < boundary <= n - HEADER_SIZE and self._verified_at(buf, boundary):
            self.synced = True
            return boundary
        while pos <= n - HEADER_SIZE:
            head = self._plausible_at(buf, pos)
            if head is None:
                return pos                      # wait for the rest of this header
            if head:
                after = pos + head
                if after == n:
                    self.synced = True
                    return pos
                if after < n:
                    nxt = self._plausible_at(buf, after)
                    if nxt is None:
                        return pos              # wait: can't check the next header yet
                    if nxt:
                        self.synced = True
                        return pos
                else:
                    return pos                  # wait for the rest of this message
            pos += 1
        return pos

    def _verified_at(self, buf, pos) -> bool:
        head = self._plausible_at(buf, pos)
        if not head:
            return False
        after = pos + head
        return after == len(buf) or bool(after < len(buf) and self._plausible_at(buf, after))

    def _plausible_at(self, buf, pos):
        """Length of the plausible message at ``pos``; 0 if implausible;
        None if the header is not complete yet."""
        if len(buf) - pos < HEADER_SIZE:
            return None
        command, size, dtype, count, _p1, _p2 = _header(buf, pos)
        hsize = HEADER_SIZE
        if size == 0xFFFF and count == 0:
            if len(buf) - pos < EXTENDED_HEADER_SIZE:
                return None
            size, count = _ext(buf, pos + HEADER_SIZE)
            hsize = EXTENDED_HEADER_SIZE
        # (a version message starts a circuit: never where decoding resumes,
        # except at the very start of a stream seen without its SYN)
        if (command or (self.fresh and pos == 0)) and plausible(self.role, command, size, dtype, count, self.max_message):
            return hsize + size
        return 0


def decode_datagram(payload: bytes, role, sender: str,
                    max_message: int = DEFAULT_MAX_MESSAGE) -> Tuple[list, Optional[str]]:
    """All CA messages of one UDP datagram: (commands_or_problems, junk).

    The datagram must be a chain of CA headers that exactly covers it;
    otherwise nothing is decoded and ``junk`` says why."""
    buf = bytearray(payload)
    n = len(buf)
    pos = 0
    spans = []
    while pos < n:
        head = split_header(buf, pos)
        if head is None:
            return [], f"{n - pos} trailing bytes are not a CA header"
        command, hsize, size, _dtype, _count = head
        if not _known(role, command):
            return [], f"command id {command} is not a CA {'request' if role is CLIENT else 'reply'}"
        if pos + hsize + size > n:
            return [], f"CA message (command {command}) claims {size} bytes, the datagram has {n - pos - hsize}"
        spans.append((pos, command, hsize, size))
        pos += hsize + size
    out = []
    for pos, command, hsize, size in spans:
        msg = buf[pos:pos + hsize + size]
        try:
            cmd = build(role, command, msg[:hsize], memoryview(msg)[hsize:])
        except DecodeError as exc:
            out.append(str(exc))
            continue
        cmd.sender_address = sender     # as caproto's read_datagram does
        out.append(cmd)
    return out, None


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
