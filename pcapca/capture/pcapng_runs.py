"""Runs of enhanced packet blocks taken in bulk: parsed in place, or handed to a skimmer."""
from __future__ import annotations

import struct

from ..items import Packet
from . import bulk
from .bulk import Skim
from .pcapng_blocks import EPB, NS, bad_length
from .pcapng_input import CountingReader

_EPB_HEADS = {e: struct.Struct(e + "IIIIIII").unpack_from for e in "<>"}
_U32 = {e: struct.Struct(e + "I").unpack_from for e in "<>"}


def epb_run(buf: bytes, pos: int, base: int, endian: str, ifaces, frame: int):
    """Yield, as the loop of ``read_pcapng`` would, the packets of the
    enhanced packet blocks complete in ``buf`` from ``pos`` up to the first
    block that loop must look at itself (another block type, a length or
    interface it would report, a block not wholly buffered). Returns (packets
    yielded, where they stop). ``base``: the file offset of ``buf[0]``."""
    head = _EPB_HEADS[endian]
    tail = _U32[endian]
    end = len(buf)
    known = len(ifaces)
    new = tuple.__new__
    taken = 0
    while end - pos >= 32:
        btype, blen, iid, th, tl, caplen, orig_len = head(buf, pos)
        # (what the loop of read_pcapng checks of a packet block before using it)
        if (btype != EPB or blen < 32 or bad_length(blen) or pos + blen > end
                or tail(buf, pos + blen - 4)[0] != blen or caplen > blen - 32
                or iid >= known):
            break
        iface, tps, tsoffset = ifaces[iid]
        yield new(Packet, (frame + taken, ((th << 32) | tl) * NS // tps + tsoffset,
                           buf[pos + 28:pos + 28 + caplen], orig_len, iface, iid, base + pos,
                           buf[pos:pos + blen], endian))
        taken += 1
        pos += blen
    return taken, pos


def skim_run(reader: CountingReader, skim: Skim, endian: str, ifaces, frame: int):
    """Read ahead; hand ``skim`` the enhanced packet blocks from here on that
    the loop of ``read_pcapng`` would take as packets as they are (valid
    lengths, known interface, one link type), yield the packets it leaves,
    and push back the bytes after them. Returns (blocks taken, offset from
    which to try again). ``endian`` and ``ifaces``: the section's."""
    min_records, max_run = bulk.MIN_RECORDS, bulk.MAX_RUN
    start = reader.pos
    buf = reader.read(bulk.SKIM_CHUNK)
    head = _EPB_HEADS[endian]
    tail = _U32[endian]
    offsets, caplens, lengths, ids, tss = [], [], [], [], []
    linktype = None
    pos, end = 0, len(buf)
    while end - pos >= 32 and len(offsets) < max_run:
        btype, blen, iid, th, tl, caplen, orig_len = head(buf, pos)
        # (what the loop of read_pcapng checks of a packet block before using it)
        if (btype != EPB or blen < 32 or bad_length(blen) or pos + blen > end
                or tail(buf, pos + blen - 4)[0] != blen or caplen > blen - 32
                or iid >= len(ifaces)):
            break
        iface, tps, tsoffset = ifaces[iid]
        if linktype is None:
            linktype = iface.linktype
            if not skim.handles(linktype):
                break
        elif iface.linktype != linktype:
            break
        offsets.append(pos)
        caplens.append(caplen)
        lengths.append(orig_len)
        ids.append(iid)
        tss.append(((th << 32) | tl) * NS // tps + tsoffset)
        pos += blen
    if len(offsets) < min_records:
        reader.unread(buf)
        # (not again before the block it stopped at, nor within the room of
        # MIN_RECORDS smallest blocks: bounds what trying costs)
        return 0, start + max(pos, 32 * min_records) + 1
    for i in skim.run(buf, offsets, caplens, tss, frame, linktype, data_at=28):
        at = offsets[i]
        raw = buf[at:head(buf, at)[1] + at]
        yield Packet(frame + i, tss[i], raw[28:28 + caplens[i]], lengths[i], ifaces[ids[i]][0],
                     ids[i], start + at, raw, endian)
    reader.unread(buf[pos:])
    return len(offsets), start + pos

