"""Legacy pcap reader (µs and ns, both byte orders).

dpkt parses and checks the file header. The packet records are read here
with ``struct`` because dpkt's ``pcap.Reader`` turns timestamps into floats
(or Decimals) and silently returns a short packet at a truncated end; pcapca
keeps integer nanoseconds and reports damage with its byte offset.
"""
from __future__ import annotations

import struct
from typing import Iterator, Union

from dpkt import pcap as dpkt_pcap

from ..items import Interface, Packet, Problem
from .sources import ByteSource

FILE_HEADER_SIZE = 24
RECORD_SIZE = 16
# Wireshark's default largest packet; a record claiming more is corrupt
# unless the file's snaplen says otherwise.
MAX_PACKET = 262144
MAX_SANE_PACKET = 256 << 20
RESYNC_WINDOW = 16 << 20
WEEK = 7 * 86400   # a record whose time jumps more than this from the previous one is corrupt

MAGICS = {
    # magic as read little-endian -> (byte order, ticks per second)
    dpkt_pcap.TCPDUMP_MAGIC: ("<", 10**6),
    dpkt_pcap.TCPDUMP_MAGIC_NANO: ("<", 10**9),
    dpkt_pcap.PMUDPCT_MAGIC: (">", 10**6),
    dpkt_pcap.PMUDPCT_MAGIC_NANO: (">", 10**9),
}


def is_pcap(magic: bytes) -> bool:
    return len(magic) == 4 and struct.unpack("<I", magic)[0] in MAGICS


def read_pcap(src: ByteSource, *, first_frame: int = 1, strict: bool = False,
              skim=None) -> Iterator[Union[Packet, Problem]]:
    """Packets of a legacy pcap; after a corrupt record, reading resumes at
    the next plausible one (``strict``: it stops there). ``skim``: a
    ``pcapca.skim.Skimmer`` that may account for packets itself; they are
    then not yielded."""
    head = src.read(FILE_HEADER_SIZE)
    if len(head) < FILE_HEADER_SIZE:
        yield Problem(f"pcap file header is truncated: {len(head)} of {FILE_HEADER_SIZE} bytes",
                      offset=0, fatal=True)
        return
    order, tsresol = MAGICS[struct.unpack("<I", head[:4])[0]]
    # dpkt's FileHdr is big-endian and LEFileHdr little-endian ("<" files)
    fh = (dpkt_pcap.LEFileHdr if order == "<" else dpkt_pcap.FileHdr)(head)
    interface = Interface(linktype=fh.linktype & 0x0FFFFFFF, snaplen=fh.snaplen, tsresol=tsresol)
    if skim is not None and not skim.handles(interface.linktype):
        skim = None
    skim_after = 0           # offset from which to try skimming again
    limit = min(max(fh.snaplen, MAX_PACKET), MAX_SANE_PACKET)
    frac_scale = 10**9 // tsresol
    record = struct.Struct(order + "IIII")
    unpack = record.unpack
    frame = first_frame
    prev_sec = None

    def plausible(hdr: bytes) -> bool:
        sec, frac, caplen, length = unpack(hdr)
        return (frac < tsresol and caplen <= limit and caplen <= length <= MAX_SANE_PACKET
                and (prev_sec is None or abs(sec - prev_sec) < WEEK))

    unpack_from = record.unpack_from
    new = tuple.__new__
    buf, pos = src.window()
    end = len(buf)

    def refill(n: int):
        """Make ``n`` bytes from ``pos`` available: (ok, buf, pos, end)."""
        src.seek_to(pos)
        ok = src.fill(n)
        new_buf, new_pos = src.window()
        return ok, new_buf, new_pos, len(new_buf)

    while True:
        if skim is not None and src.offset_of(pos) >= skim_after:
            # the run of good records in the window, in bulk (see pcapca.skim)
            run, stop = _good_run(buf, pos, end, record, limit, tsresol, prev_sec)
            if run is None:
                skim_after = src.offset_of(stop)
            else:
                offsets, caplens, lengths, secs, tss = run
                for i in skim.run(buf, offsets, caplens, tss, frame, interface.linktype):
                    at = offsets[i] + RECORD_SIZE        # (the packet the skimmer leaves)
                    yield new(Packet, (frame + i, tss[i], buf[at:at + caplens[i]], lengths[i],
                                       interface, 0, src.offset_of(offsets[i]), None, "<"))
                pos = offsets[-1] + RECORD_SIZE + caplens[-1]
                frame += len(offsets)
                prev_sec = secs[-1]
        if end - pos < RECORD_SIZE:
            ok, buf, pos, end = refill(RECORD_SIZE)
            if not ok:
                if src.available():
                    yield Problem(f"capture ends inside a packet record header "
                                  f"({src.available()} of {RECORD_SIZE} bytes)",
                                  frame=frame, offset=src.offset, fatal=True)
                return
        sec, frac, caplen, length = unpack_from(buf, pos)
        if (caplen > limit or frac >= tsresol or length < caplen or length > MAX_SANE_PACKET
                or (prev_sec is not None and abs(sec - prev_sec) >= WEEK)):
            # A corrupt record: look for the next plausible one.
            src.seek_to(pos + RECORD_SIZE)
            offset = src.offset - RECORD_SIZE
            found = None if strict else _resync(src, plausible, unpack)
            if found is None and strict:
                yield Problem(f"corrupt packet record (captured length {caplen}, "
                              f"length {length})", frame=frame, offset=offset, fatal=True)
                return
            if found is None:
                yield Problem(f"corrupt packet record (captured length {caplen}, "
                              f"length {length}); no valid record found after it",
                              frame=frame, offset=offset, fatal=True)
                return
            yield Problem(f"corrupt packet record (captured length {caplen}, length {length}); "
                          f"skipped {found - offset} bytes, reading resumed at byte offset {found}",
                          frame=frame, offset=offset, topic="corrupt packet record")
            buf, pos = src.window()
            end = len(buf)
            continue
        stop = pos + RECORD_SIZE + caplen
        if stop > end:
            ok, buf, pos, end = refill(RECORD_SIZE + caplen)
            if not ok:
                yield Problem(f"capture ends inside a packet: {src.available() - RECORD_SIZE} "
                              f"of {caplen} bytes",
                              frame=frame, offset=src.offset, fatal=True)
                return
            stop = pos + RECORD_SIZE + caplen
        prev_sec = sec
        if not caplen:
            # libpcap never writes an empty record: the file was edited or damaged
            yield Problem(f"empty packet record (0 captured bytes, length {length})",
                          frame=frame, offset=src.offset_of(pos), topic="empty packet record")
        # (tuple.__new__: a Packet without NamedTuple's Python-level __new__)
        yield new(Packet, (frame, sec * 1_000_000_000 + frac * frac_scale,
                           buf[pos + RECORD_SIZE:stop], length, interface, 0,
                           src.offset_of(pos), None, "<"))
        pos = stop
        frame += 1


def _good_run(buf, pos: int, end: int, record: struct.Struct, limit: int, tsresol: int,
              prev_sec):
    """The complete records from ``pos`` that the loop of ``read_pcap`` would
    take as they are (plausible, not empty), up to the first it would not or
    MAX_RUN of them: ``(run, stop)``. ``run`` is (offsets, caplens, lengths,
    secs, timestamps in ns) as lists, or None when there are too few to be
    worth it; ``stop`` is where the records stop being taken (with a run)
    or where to try again (without)."""
    import numpy as np

    from ..fast.skim import MAX_RUN, MIN_RECORDS
    offsets = []
    append = offsets.append
    count = 0
    unpack_from = record.unpack_from
    while end - pos >= RECORD_SIZE and count < MAX_RUN:
        caplen = unpack_from(buf, pos)[2]
        stop = pos + RECORD_SIZE + caplen
        if not caplen or caplen > limit or stop > end:
            break
        append(pos)
        pos = stop
        count += 1
    if count < MIN_RECORDS:
        return None, pos
    a = np.frombuffer(buf, dtype=np.uint8)
    heads = a[np.asarray(offsets, dtype=np.int64)[:, None] + np.arange(RECORD_SIZE)]
    sec, frac, caplen, length = heads.view(np.dtype(record.format[0] + "u4")).astype(np.int64).T
    before = np.empty_like(sec)
    before[0] = sec[0] if prev_sec is None else prev_sec
    before[1:] = sec[:-1]
    bad = ((frac >= tsresol) | (length < caplen) | (length > MAX_SANE_PACKET)
           | (np.abs(sec - before) >= WEEK))
    if bad.any():
        count = int(bad.argmax())
        if count < MIN_RECORDS:
            return None, pos             # (not again before what was looked at)
        pos = offsets[count]
        del offsets[count:]
        sec, caplen, length, frac = sec[:count], caplen[:count], length[:count], frac[:count]
    ts = sec * 1_000_000_000 + frac * (1_000_000_000 // tsresol)
    return (offsets, caplen.tolist(), length.tolist(), sec.tolist(), ts.tolist()), pos


def _resync(src: ByteSource, plausible, unpack):
    """Skip to the next offset where two chained records look plausible
    (or one plausible record ends exactly at the end of the input).
    Returns the new offset, or None."""
    src.unread(RECORD_SIZE)
    start = src.offset
    src.skip(1)
    while src.offset - start < RESYNC_WINDOW:
        hdr = src.peek(RECORD_SIZE)
        if len(hdr) < RECORD_SIZE:
            return None
        if plausible(hdr):
            # (followed by a plausible record, or ending exactly at the end:
            # not one that runs past it)
            size = RECORD_SIZE + unpack(hdr)[2]
            src.fill(size + RECORD_SIZE)
            buf, pos = src.window()
            nxt = buf[pos + size:pos + size + RECORD_SIZE]
            if (len(nxt) == RECORD_SIZE and plausible(nxt)) or len(buf) - pos == size:
                return src.offset
        src.skip(1)
    return None
