"""CA framing: one direction of a TCP circuit (``StreamDecoder``) or one UDP datagram -> messages.

Both hand every well-formed message to caproto (validation off: padded
server replies are normal) and never turn bytes that do not look like CA
into messages: after a gap or junk they resynchronise on the next plausible
header.
"""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

from ._caproto import (CLIENT, EXTENDED_HEADER_SIZE, HEADER_SIZE, SERVER, Commands,
                       EventCancelResponse)
from .command_ids import EVENT_ADD, READ_SYNC, VERSION
from .headers import (DEFAULT_MAX_MESSAGE, count_base, dbr_sizes, known, plausible, split_header,
                      unpack_extension, unpack_header)
from .messages import LATER, LATER_DATA, LATER_NO_PAYLOAD, UNKNOWN, WHEN, DecodeError, build


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
        self.when = WHEN[role]
        self.later = LATER[role]
        self.fresh = True                # nothing decoded yet in this direction
        self.buf = bytearray()
        self.synced = synced
        self.skip = 0            # payload bytes of an oversized message still to drop
        self.max_message = max_message
        self.partial = False     # a message is incomplete (for end-of-capture reports)

    def __getstate__(self):
        """What pickling keeps: the stream's state, not the role's shared tables."""
        return (self.role, self.buf, self.synced, self.skip, self.max_message, self.partial,
                self.fresh)

    def __setstate__(self, state) -> None:
        role, buf, synced, skip, max_message, partial, fresh = state
        self.__init__(role, synced=synced, max_message=max_message)
        self.buf, self.skip, self.partial, self.fresh = buf, skip, partial, fresh

    def later_rule(self, command: int, dtype: int):
        """(class, smallest payload size, element size, base) of the complete
        messages with this command and data type whose caproto object is built
        later (``_when``: decoding cannot fail) when their payload size is at
        least the smallest and ``data_count * element size + base`` (see
        ``count_base``), or None: built at once. The server's command 1
        without payload (an EventCancelResponse, see ``build``) is not one of
        them; ``feed`` takes it first. Kept in ``self.later``, where callers
        look first."""
        cls, when = self.when.get(command, UNKNOWN)
        if when == LATER_NO_PAYLOAD:
            rule = (cls, 0, 0, 0)
        elif when == LATER_DATA:
            sizes = dbr_sizes(dtype)
            if sizes is None:
                return None                # caproto will say what is wrong with it
            smallest = sizes[0]            # the metadata must fit the payload
            if self.role is SERVER and command == EVENT_ADD:
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
        """The messages and problems that ``data`` (the next bytes of the
        stream) completes; the rest of the last message is kept for later."""
        if self.synced and not self.buf and not self.skip and len(data) >= HEADER_SIZE:
            # the common case: a segment that holds exactly one message to build later
            command, size, dtype, count, p1, p2 = unpack_header(data, 0)
            if size + HEADER_SIZE == len(data) and size != 0xFFFF and size <= self.max_message:
                rule = self.later.get(command << 16 | dtype) or self.later_rule(command, dtype)
                if rule is not None and size >= rule[1] and size >= count * rule[2] + rule[3]:
                    self.fresh = False
                    self.partial = False
                    return [(rule[0], (command, size, dtype, count, p1, p2),
                             data if data.__class__ is bytes else bytes(data), HEADER_SIZE, None)]
        out: List[Union[object, str]] = []
        if self.skip:
            data = self._skipped(data)
            if not data:
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
        while True:                     # one message per turn
            if not self.synced:
                pos = self._resync(buf, pos, boundary)
                if not self.synced:
                    break
            if n - pos < HEADER_SIZE:
                break
            command, size, _dtype, count, _p1, _p2 = unpack_header(buf, pos)
            hsize = HEADER_SIZE
            if size == 0xFFFF and count == 0:
                if n - pos < EXTENDED_HEADER_SIZE:
                    break
                size, count = unpack_extension(buf, pos + HEADER_SIZE)
                hsize = EXTENDED_HEADER_SIZE
            if command not in commands and command != READ_SYNC:
                out.append(self._lost_sync(f"bytes that are not CA (command id {command}) in "
                                           f"the {'client' if role is CLIENT else 'server'} "
                                           f"stream"))
                pos += 1
                continue
            total = hsize + size
            if size > max_message:
                pos += self._oversized(out, command, size, _dtype, count, total, n - pos)
                continue
            if n - pos < total:
                break               # (wait for the rest of the message)
            # a complete message: built now, or its class and fields only (built later)
            msg = buf[pos:pos + total]
            if msg.__class__ is not bytes:
                msg = bytes(msg)
            fields = (command, size, _dtype, count, _p1, _p2)
            if role is SERVER and command == EVENT_ADD and not size:
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
        if pos < n:                     # keep the incomplete rest
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

    def _skipped(self, data):
        """``data`` without the bytes of an oversized message still to drop."""
        n = min(self.skip, len(data))
        self.skip -= n
        if n == len(data):
            self.partial = self.skip > 0     # (the skipped message may have ended here)
        return data[n:]

    def _lost_sync(self, what: str) -> str:
        """Bytes that start no message: look for the next one (say why)."""
        self.synced = False
        return what + "; looking for the next message"

    def _oversized(self, out, command, size, dtype, count, total: int, there: int) -> int:
        """A message of ``total`` bytes, over ``max_message``, with ``there``
        bytes left in the buffer: skipped as its bytes come if plausible,
        else junk. Returns how far to advance."""
        too_big = (f"message (command {command}) claims {size} bytes, over the "
                   f"{self.max_message}-byte limit")
        if plausible(self.role, command, size, dtype, count, 1 << 62):
            # a real message, too big to keep: drop its bytes as they come
            out.append(too_big + "; skipped")
            take = min(total, there)
            self.skip = total - take
            return take
        out.append(self._lost_sync(too_big + ", and is not a plausible CA message"))
        return 1

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
        command, size, dtype, count, _p1, _p2 = unpack_header(buf, pos)
        hsize = HEADER_SIZE
        if size == 0xFFFF and count == 0:
            if len(buf) - pos < EXTENDED_HEADER_SIZE:
                return None
            size, count = unpack_extension(buf, pos + HEADER_SIZE)
            hsize = EXTENDED_HEADER_SIZE
        # (a version message starts a circuit: never where decoding resumes,
        # except at the very start of a stream seen without its SYN)
        if ((command != VERSION or (self.fresh and pos == 0))
                and plausible(self.role, command, size, dtype, count, self.max_message)):
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
        if not known(role, command):
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


