"""Read pcapng: one block at a time from any stream; damage reported, never raised.

Block framing is parsed here with ``struct``; packet blocks (EPB, SPB, the
obsolete PB) give ``Packet`` items numbered across sections, every other block
a ``Passthrough``; after a bad block length reading resumes at the next
plausible block (``pcapng_input.resync``).
"""
from __future__ import annotations

import struct
from typing import BinaryIO, Iterator, Optional, Union

from ..items import Interface, Packet, Passthrough, Problem
from . import pcapng_blocks
from .bulk import Skim
from .pcapng_blocks import (BOM_BE, BOM_LE, EPB, IDB, ISB, NS, PB, SHB, SHB_MAGIC, SPB, bad_length,
                            decode_idb, isb_loss)
from .pcapng_input import CountingReader, resync
from .pcapng_runs import epb_run, skim_run

Item = Union[Packet, Passthrough, Problem]


def read_pcapng(stream: BinaryIO, *, first_frame: int = 1, strict: bool = False,
                skim: Optional[Skim] = None) -> Iterator[Item]:
    """Yield the contents of a pcapng stream, in file order.

    ``stream`` is a binary file object at the very start of the file (it may
    be an unseekable pipe).  Packet blocks (EPB, SPB, obsolete PB) give
    :class:`Packet` items numbered from ``first_frame`` across all sections;
    every other block gives a :class:`Passthrough`.  Damage gives
    :class:`Problem` items (``fatal=True`` when reading had to stop); a
    packet block that cannot be used as a packet (unknown interface,
    inconsistent lengths) gives a Problem and is then passed through as a
    :class:`Passthrough` so that writers can still copy it.  ``skim``: the
    filtered print's shortcut (``bulk.Skim``), which may account for packets
    itself; they are then not yielded.
    """
    reader = CountingReader(stream)
    skim_after = 0           # offset from which to try skimming again
    read = reader.read
    frame = first_frame
    endian: Optional[str] = None
    # Per interface of the current section: (Interface, ticks/s, offset ns)
    ifaces: list[tuple[Interface, int, int]] = []
    u32 = u2 = None
    section = -1             # index of the current section in the file
    reported: dict = {}      # (section, interface id) -> packets dropped, as last reported
    too_many = False         # the section declared over MAX_INTERFACES interfaces

    def damaged(offset: int, message: str, buf: bytes, truncated: bool = False):
        """Problem for a framing error, after trying to resynchronise
        (not in strict mode: there the first damage ends the reading)."""
        new = None if strict else resync(reader, offset + 4, buf, endian or "<")
        if new is None:
            if not truncated:
                message += "; no valid block follows it, reading stopped"
            return Problem(message, frame=frame, offset=offset, fatal=True), False
        skipped = new - offset
        return Problem(f"{message}; skipped {skipped} bytes, reading resumed at "
                       f"byte offset {new}", frame=frame, offset=offset,
                       topic="corrupt pcapng block"), True

    while True:
        if endian is not None and ifaces and skim is None:
            # the enhanced packet blocks already buffered, parsed in place
            window = reader.window()
            if window is not None:
                buf, start = window
                taken, stop = yield from epb_run(buf, start, reader.pos - start, endian,
                                                  ifaces, frame)
                if taken:
                    frame += taken
                    reader.consumed(start, stop - start)
        offset = reader.pos
        head = read(8)
        if not head:
            return
        if (skim is not None and ifaces and offset >= skim_after and len(head) == 8
                and u2(head)[0] == EPB and skim.wants(ifaces)):
            # a run of enhanced packet blocks from here, in bulk (see bulk.Skim)
            reader.unread(head)
            taken, skim_after = yield from skim_run(reader, skim, endian, ifaces, frame)
            frame += taken
            continue
        if len(head) < 8:
            yield Problem(f"pcapng block at byte offset {offset} is truncated (needs at "
                          f"least 8 bytes, file ends after {len(head)})",
                          frame=frame, offset=offset, fatal=True)
            return

        if head[:4] == SHB_MAGIC:
            bom = read(4)
            e = "<" if bom == BOM_LE else ">" if bom == BOM_BE else None
            if e is None:
                if endian is None:
                    yield Problem("not a pcapng file: bad byte-order magic "
                                  f"{bom.hex()} in the section header block",
                                  frame=frame, offset=offset, fatal=True)
                    return
                problem, go_on = damaged(offset, f"pcapng section header block at byte "
                                         f"offset {offset} has a bad byte-order magic "
                                         f"{bom.hex()}", head[4:] + bom)
                yield problem
                if go_on:
                    continue
                return
            blen = struct.unpack(e + "I", head[4:])[0]
            if blen < 28 and blen % 4 == 0 and blen >= 12:
                why = "smaller than 28"
            else:
                why = bad_length(blen)
            prefix = head[4:] + bom
        else:
            if endian is None:
                yield Problem("not a pcapng file: it does not start with a section "
                              "header block", frame=frame, offset=offset, fatal=True)
                return
            e = endian
            blen = u2(head)[1]
            why = bad_length(blen)
            prefix = head[4:]

        if why:
            problem, go_on = damaged(offset, f"pcapng block at byte offset {offset} has "
                                     f"an invalid total length {blen} ({why})", prefix)
            yield problem
            if go_on:
                continue
            return

        rest = read(blen - len(prefix) - 4)
        if len(prefix) + len(rest) + 4 < blen:
            have = 4 + len(prefix) + len(rest)
            problem, go_on = damaged(offset, f"pcapng block at byte offset {offset} is "
                                     f"truncated (needs {blen} bytes, file ends after "
                                     f"{have})", prefix + rest, truncated=True)
            yield problem
            if go_on:
                continue
            return
        raw = head[:4] + prefix + rest
        trailer = struct.unpack_from(e + "I", raw, blen - 4)[0]
        if trailer != blen:
            problem, go_on = damaged(offset, f"pcapng block at byte offset {offset} is "
                                     f"corrupt: total length {blen} at its start but "
                                     f"{trailer} at its end", raw[4:])
            yield problem
            if go_on:
                continue
            return

        btype = struct.unpack_from(e + "I", raw)[0]
        if btype == SHB:
            endian = e
            u32 = struct.Struct(e + "IIIII").unpack_from
            u2 = struct.Struct(e + "II").unpack_from
            ifaces = []
            too_many = False
            section += 1
            yield Passthrough(SHB, raw, offset, e)
            continue

        if btype == EPB or btype == PB:
            if blen < 32:
                yield Problem(f"packet block at byte offset {offset} is too short "
                              f"({blen} bytes)", frame=frame, offset=offset,
                              topic="corrupt packet block")
                yield Passthrough(btype, raw, offset, e)
                continue
            iid, th, tl, caplen, orig_len = u32(raw, 8)
            if btype == PB:          # 16-bit interface id, then drops count
                iid = struct.unpack_from(e + "H", raw, 8)[0]
            if caplen > blen - 32:
                yield Problem(f"packet block at byte offset {offset} claims {caplen} "
                              f"captured bytes but has room for {blen - 32}",
                              frame=frame, offset=offset, topic="corrupt packet block")
                yield Passthrough(btype, raw, offset, e)
                continue
            data = raw[28:28 + caplen]
            ticks = (th << 32) | tl
        elif btype == SPB:
            if blen < 16:
                yield Problem(f"simple packet block at byte offset {offset} is too "
                              f"short ({blen} bytes)", frame=frame, offset=offset,
                              topic="corrupt packet block")
                yield Passthrough(btype, raw, offset, e)
                continue
            iid = 0
            orig_len = u2(raw, 8)[0]
            ticks = None
        elif btype == IDB:
            limit = pcapng_blocks.MAX_INTERFACES      # (read here: tests lower it)
            if len(ifaces) >= limit:
                yield Passthrough(btype, raw, offset, e)
                if not too_many:
                    too_many = True
                    yield Problem(f"interface description block at byte offset {offset}: its "
                                  f"section has over {limit} interfaces; the packets "
                                  f"of this one and those after it are copied, not decoded",
                                  frame=frame, offset=offset, topic="too many interfaces")
                continue
            iface, tsoffset, problems = decode_idb(raw, e)
            ifaces.append((iface, iface.tsresol, tsoffset))
            yield Passthrough(btype, raw, offset, e)
            for msg in problems:
                yield Problem(f"interface {len(ifaces) - 1}: {msg}", frame=frame,
                              offset=offset, topic="damaged interface description")
            continue
        else:
            yield Passthrough(btype, raw, offset, e)
            if btype == ISB:
                loss = isb_loss(raw, e, ifaces, section, reported)
                if loss is not None:
                    yield Problem(loss[0], offset=offset, kind="loss", detail=loss[1],
                                  topic="count of packets dropped")
            continue

        if iid >= len(ifaces):
            yield Problem(f"packet block at byte offset {offset} refers to interface "
                          f"{iid}, but its section has {len(ifaces)} interface(s); "
                          "packet skipped", frame=frame, offset=offset,
                          topic="packet of an unknown interface")
            yield Passthrough(btype, raw, offset, e)
            continue
        iface, tps, tsoffset = ifaces[iid]
        if ticks is None:            # SPB: no timestamp; length from snaplen
            ts = 0
            caplen = orig_len
            if iface.snaplen and caplen > iface.snaplen:
                caplen = iface.snaplen
            if caplen > blen - 16:
                yield Problem(f"simple packet block at byte offset {offset} holds "
                              f"{blen - 16} bytes, less than the {caplen} it should",
                              frame=frame, offset=offset, topic="corrupt packet block")
                caplen = blen - 16
            data = raw[12:12 + caplen]
        else:
            ts = ticks * NS // tps + tsoffset
        yield Packet(frame, ts, data, orig_len, iface, iid, offset, raw, e)
        frame += 1
