"""Read and write pcapng, wrapping python-pcapng's known problems in one place.

Reading (:func:`read_pcapng`)
    The block framing (type, total length, trailing length, section byte
    order) is parsed here with :mod:`struct`, reading exactly one block at a
    time from any binary stream (pipes and slow live streams included: a
    packet is yielded as soon as its block has arrived).  Packet blocks (EPB,
    SPB and the obsolete Packet Block) are decoded with :mod:`struct` for
    speed; python-pcapng decodes only the Interface Description Blocks, from
    a cleaned copy of their options.  Every other block is yielded unchanged
    as a :class:`~pcapca.items.Passthrough`.  Damage is reported as
    :class:`~pcapca.items.Problem` items; the generator never raises for bad
    input.  After a bad block length the reader looks for the next plausible
    block (known type, sane length, matching trailing length) and goes on
    from there.

Writing (:class:`PcapngWriter`)
    SHB and IDB are built with python-pcapng; EPBs are packed with
    :mod:`struct`; copied blocks are written byte for byte.

python-pcapng 2.1.1 pitfalls handled here (each has a test):

* ``FileScanner`` calls ``tell()`` on the input, so pipes / stdin fail
  (``OSError: Illegal seek``).  We read through :class:`_CountingReader`,
  which counts bytes and provides ``tell()``; python-pcapng only ever sees
  ``io.BytesIO`` copies of single blocks.
* A repeated non-repeatable option (two ``if_name``, two ``shb_userappl``)
  raises on read (a bug in its strictness check raises ``TypeError``) and on
  write (``PcapngStrictnessError``).  Repeated ``opt_comment`` is fine.
  Option codes it does not know raise ``KeyError`` when repeated on read and
  always on write.  So IDB options are parsed here first and python-pcapng is
  given only the first, well-formed ``if_name`` / ``if_tsoffset``.
* Unknown blocks are not written (``UnknownBlock`` writes nothing,
  ``FileWriter.write_block`` recurses): we copy raw bytes.
* Zero-length packets cannot be written (``ValueError: Packet invalid``):
  EPBs are packed here.
* ``.timestamp`` is a float (loses nanoseconds) and a bogus ``if_tsresol``
  gives absurd floats or raises (``ValueError`` if not exactly 1 byte): we
  compute integer nanoseconds from the 64-bit tick count and an integer
  ticks-per-second, and replace an unusable ``if_tsresol`` by the default
  10**6 with a Problem.  Usable: 10**-n for n < 20, 2**-n for n < 64 (the
  limits Wireshark uses).

Frame numbers count packet blocks only (EPB, SPB, PB).  Note that Wireshark
4.0 also numbers Custom Blocks (0x00000BAD, 0x40000BAD) as frames, so after
such a block our numbers are lower than Wireshark's.

Timestamps: ``Packet.ts`` is ``ticks * 10**9 // ticks_per_second`` plus
``if_tsoffset`` seconds (rounded down to the nanosecond for resolutions
finer than 1 ns or powers of 2).  A Simple Packet Block has no timestamp:
its ``ts`` is 0 (Wireshark shows no time for it).

Comment marking scheme (so that re-annotating a file does not pile up
comments): the comments pcapca adds to a packet are written as ``opt_comment``
options at the end of the EPB's options, immediately followed by one custom
option, code 2988 (custom UTF-8 string, safe to copy), Private Enterprise
Number 32473 (the IANA documentation PEN), value ``pcapca:comments=N`` where
N is the number of those comments.  When a packet read from pcapng is written
again, each such marker is removed together with the N ``opt_comment``
options directly before it (only if those N options are all comments;
otherwise only the marker goes, so a comment we cannot prove is ours is
never deleted).  All other options are kept.
"""
from __future__ import annotations

import io
import struct
import warnings
from typing import BinaryIO, Iterable, Iterator, Optional, Union

from pcapng import blocks as _blocks

from ..items import Interface, Packet, Passthrough, Problem

__all__ = ["read_pcapng", "PcapngWriter", "parse_options", "tsresol_ticks",
           "cut_comment", "strip_pcapca_comments", "pack_epb", "build_shb",
           "build_idb", "SHB", "IDB", "PB", "SPB", "EPB", "MAX_BLOCK_LEN",
           "MARKER_PEN", "MARKER_PREFIX", "MAX_OPTION_LEN"]

SHB = 0x0A0D0D0A
IDB = 0x00000001
PB = 0x00000002            # obsolete Packet Block
SPB = 0x00000003
NRB = 0x00000004
ISB = 0x00000005
EPB = 0x00000006
DSB = 0x0000000A
CB_COPY = 0x00000BAD
CB_NOCOPY = 0x40000BAD
# Types accepted as "plausible" when resynchronising after damage.
_KNOWN_TYPES = frozenset(range(1, 0x0B)) | {SHB, CB_COPY, CB_NOCOPY}

MAX_BLOCK_LEN = 256 * 1024 * 1024   # larger total lengths are reported as corrupt
_RESYNC_MAX_LEN = 16 * 1024 * 1024  # longest block accepted when resynchronising
MAX_OPTION_LEN = 65535
# interfaces kept per section (the obsolete Packet Block's 16-bit ids); the
# packets of further ones are copied, not decoded
MAX_INTERFACES = 65536

_SHB_MAGIC = struct.pack("<I", SHB)      # palindrome: same in both byte orders
_BOM_LE = b"\x4d\x3c\x2b\x1a"
_BOM_BE = b"\x1a\x2b\x3c\x4d"

OPT_COMMENT = 1
OPT_CUSTOM_STR_COPY = 2988
OPT_CUSTOM_STR = 19372
MARKER_PEN = 32473
MARKER_PREFIX = b"pcapca:comments="
_DEFAULT_TSRESOL = 10**6
_NS = 1_000_000_000

Item = Union[Packet, Passthrough, Problem]


# ---------------------------------------------------------------- reading


class _CountingReader:
    """Blocking exact reads from any binary stream, with ``tell()``.

    ``read(n)`` returns n bytes, or fewer only at end of file.  Bytes can be
    pushed back with ``unread()`` (used when resynchronising).
    """

    __slots__ = ("_read", "_pending", "_at", "pos", "_window", "_seek_to")

    def __init__(self, stream: BinaryIO):
        self._read = stream.read
        self._pending = b""
        self._at = 0            # read position in _pending (no copy per read)
        self.pos = 0
        # a stream that buffers (capture._SourceFile) lets blocks be parsed in place
        self._window = getattr(stream, "window", None)
        self._seek_to = getattr(stream, "seek_to", None)

    def tell(self) -> int:
        return self.pos

    def window(self):
        """(buffer, position of the next unread byte in it), holding what
        the stream has buffered (without waiting for more), or None."""
        if self._pending or self._window is None:
            return None
        return self._window()

    def consumed(self, buf_pos: int, n: int) -> None:
        """The ``n`` bytes from ``buf_pos`` of ``window()`` were used."""
        self._seek_to(buf_pos + n)
        self.pos += n

    def read(self, n: int) -> bytes:
        if self._pending:
            at = self._at
            data = self._pending[at:at + n]
            at += len(data)
            if at >= len(self._pending):
                self._pending = b""
                at = 0
            self._at = at
            if len(data) < n:
                data += self._read_stream(n - len(data))
        else:
            data = self._read_stream(n)
        self.pos += len(data)
        return data

    def _read_stream(self, n: int) -> bytes:
        data = self._read(n) or b""
        if len(data) == n or not data:
            return data
        parts = [data]
        got = len(data)
        while got < n:
            more = self._read(n - got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def unread(self, data: bytes) -> None:
        """Push back ``data``, the last bytes read."""
        n = len(data)
        if n <= self._at:
            self._at -= n          # (they came from _pending: step back, no copy)
        else:
            self._pending = bytes(data) + self._pending[self._at:]
            self._at = 0
        self.pos -= n


def parse_options(buf: bytes, start: int, end: int, endian: str):
    """Parse the options in ``buf[start:end]``.

    Returns ``(options, error)``: a list of ``(code, value)`` pairs in file
    order (stopping at opt_endofopt) and an error message or None.
    """
    opts = []
    unpack = struct.Struct(endian + "HH").unpack_from
    i = start
    while i + 4 <= end:
        code, length = unpack(buf, i)
        if code == 0:
            break
        vend = i + 4 + length
        if vend > end:
            return opts, f"option {code} ({length} bytes) runs past the end of its block"
        opts.append((code, bytes(buf[i + 4:vend])))
        i = vend + (-length % 4)
    return opts, None


def tsresol_ticks(value: Optional[bytes]) -> tuple[int, Optional[str]]:
    """Ticks per second for an if_tsresol option value (None: absent).

    Returns ``(ticks_per_second, problem)``; an unusable value gives the
    default 10**6 and a message.
    """
    if value is None:
        return _DEFAULT_TSRESOL, None
    if len(value) != 1:
        return _DEFAULT_TSRESOL, (f"if_tsresol has {len(value)} bytes instead of 1; "
                                  "using microseconds")
    b = value[0]
    exp = b & 0x7F
    if b & 0x80:
        if exp < 64:
            return 2**exp, None
        what = f"2**-{exp}"
    else:
        if exp < 20:
            return 10**exp, None
        what = f"10**-{exp}"
    return _DEFAULT_TSRESOL, (f"if_tsresol 0x{b:02x} ({what} s) is unusable; "
                              "using microseconds")


def _decode_idb(raw: bytes, endian: str) -> tuple[Interface, int, list[str]]:
    """Decode an IDB: (Interface, tsoffset in ns, problem messages)."""
    problems = []
    if len(raw) < 20:
        problems.append(f"interface description block is too short ({len(raw)} bytes)")
        return Interface(linktype=0, raw=raw), 0, problems
    opts, err = parse_options(raw, 16, len(raw) - 4, endian)
    if err:
        problems.append(f"interface description block: {err}")
    # Give python-pcapng only options it can cope with: first occurrence,
    # right size, valid UTF-8 (see module docstring).
    first: dict[int, bytes] = {}
    for code, value in opts:
        first.setdefault(code, value)
    clean = []
    name = first.get(2)
    if name is not None:
        try:
            name.decode("utf-8")
            clean.append((2, name))
        except UnicodeDecodeError:
            problems.append("interface name is not valid UTF-8")
    tsoff = first.get(14)
    if tsoff is not None:
        if len(tsoff) == 8:
            clean.append((14, tsoff))
        else:
            problems.append(f"if_tsoffset has {len(tsoff)} bytes instead of 8; ignored")
    body = bytearray(raw[8:16])
    for code, value in clean:
        body += struct.pack(endian + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)
    body += b"\0\0\0\0"
    blk = _blocks.InterfaceDescription(section=None, endianness=endian, raw=bytes(body))
    tps, msg = tsresol_ticks(first.get(9))
    if msg:
        problems.append(msg)
    return (Interface(linktype=blk.link_type, snaplen=blk.snaplen, tsresol=tps,
                      name=blk.options.get("if_name"), raw=raw),
            blk.options.get("if_tsoffset", 0) * _NS, problems)


def _bad_length(blen: int, limit: int = MAX_BLOCK_LEN) -> Optional[str]:
    if blen < 12:
        return "smaller than 12"
    if blen % 4:
        return "not a multiple of 4"
    if blen > limit:
        return f"larger than the {limit // (1024 * 1024)} MiB limit"
    return None


def _resync(reader: _CountingReader, start: int, buf: bytes, endian: str) -> Optional[int]:
    """Find the next plausible block at or after file offset ``start``.

    ``buf`` holds the bytes from ``start`` that were already read.  On
    success the reader is left positioned at the block and its offset is
    returned; None means end of file was reached without finding one.
    """
    buf = bytearray(buf)
    i = 0
    eof = False

    def need(n: int) -> bool:       # make buf at least n bytes long
        nonlocal eof
        if len(buf) < n and not eof:
            more = reader.read(n - len(buf))
            buf.extend(more)
            eof = len(buf) < n
        return len(buf) >= n

    while need(i + 8):
        if i > (1 << 20):          # drop what has been scanned
            del buf[:i]
            start += i
            i = 0
        btype = struct.unpack_from(endian + "I", buf, i)[0]
        e = endian
        ok = False
        if btype == SHB:
            if need(i + 12):
                bom = bytes(buf[i + 8:i + 12])
                e = "<" if bom == _BOM_LE else ">" if bom == _BOM_BE else None
                ok = e is not None
        else:
            ok = btype in _KNOWN_TYPES
        if ok:
            blen = struct.unpack_from(e + "I", buf, i + 4)[0]
            if (_bad_length(blen, _RESYNC_MAX_LEN) is None and need(i + blen)
                    and struct.unpack_from(e + "I", buf, i + blen - 4)[0] == blen):
                reader.unread(bytes(buf[i:]))
                return start + i
        i += 4
    return None


SKIM_CHUNK = 1 << 20      # bytes read at once for pcapca.skim


_EPB_HEADS = {e: struct.Struct(e + "IIIIIII").unpack_from for e in "<>"}
_U32 = {e: struct.Struct(e + "I").unpack_from for e in "<>"}


def _epb_run(buf: bytes, pos: int, base: int, endian: str, ifaces, frame: int):
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
        if (btype != EPB or blen < 32 or _bad_length(blen) or pos + blen > end
                or tail(buf, pos + blen - 4)[0] != blen or caplen > blen - 32
                or iid >= known):
            break
        iface, tps, tsoffset = ifaces[iid]
        yield new(Packet, (frame + taken, ((th << 32) | tl) * _NS // tps + tsoffset,
                           buf[pos + 28:pos + 28 + caplen], orig_len, iface, iid, base + pos,
                           buf[pos:pos + blen], endian))
        taken += 1
        pos += blen
    return taken, pos


def _skim_run(reader: _CountingReader, skim, endian: str, ifaces, frame: int):
    """Read ahead; hand ``skim`` the enhanced packet blocks from here on that
    the loop of ``read_pcapng`` would take as packets as they are (valid
    lengths, known interface, one link type), yield the packets it leaves,
    and push back the bytes after them. Returns (blocks taken, offset from
    which to try again). ``endian`` and ``ifaces``: the section's."""
    from ..fast.skim import MAX_RUN, MIN_RECORDS
    start = reader.pos
    buf = reader.read(SKIM_CHUNK)
    head = _EPB_HEADS[endian]
    tail = _U32[endian]
    offsets, caplens, lengths, ids, tss = [], [], [], [], []
    linktype = None
    pos, end = 0, len(buf)
    while end - pos >= 32 and len(offsets) < MAX_RUN:
        btype, blen, iid, th, tl, caplen, orig_len = head(buf, pos)
        # (what the loop of read_pcapng checks of a packet block before using it)
        if (btype != EPB or blen < 32 or _bad_length(blen) or pos + blen > end
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
        tss.append(((th << 32) | tl) * _NS // tps + tsoffset)
        pos += blen
    if len(offsets) < MIN_RECORDS:
        reader.unread(buf)
        # (not again before the block it stopped at, nor within the room of
        # MIN_RECORDS smallest blocks: bounds what trying costs)
        return 0, start + max(pos, 32 * MIN_RECORDS) + 1
    for i in skim.run(buf, offsets, caplens, tss, frame, linktype, data_at=28):
        at = offsets[i]
        raw = buf[at:head(buf, at)[1] + at]
        yield Packet(frame + i, tss[i], raw[28:28 + caplens[i]], lengths[i], ifaces[ids[i]][0],
                     ids[i], start + at, raw, endian)
    reader.unread(buf[pos:])
    return len(offsets), start + pos


def read_pcapng(stream: BinaryIO, *, first_frame: int = 1, strict: bool = False,
                skim=None) -> Iterator[Item]:
    """Yield the contents of a pcapng stream, in file order.

    ``stream`` is a binary file object at the very start of the file (it may
    be an unseekable pipe).  Packet blocks (EPB, SPB, obsolete PB) give
    :class:`Packet` items numbered from ``first_frame`` across all sections;
    every other block gives a :class:`Passthrough`.  Damage gives
    :class:`Problem` items (``fatal=True`` when reading had to stop); a
    packet block that cannot be used as a packet (unknown interface,
    inconsistent lengths) gives a Problem and is then passed through as a
    :class:`Passthrough` so that writers can still copy it.  ``skim``: a
    ``pcapca.skim.Skimmer`` that may account for packets itself; they are
    then not yielded.
    """
    reader = _CountingReader(stream)
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
        new = None if strict else _resync(reader, offset + 4, buf, endian or "<")
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
                taken, stop = yield from _epb_run(buf, start, reader.pos - start, endian,
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
            # a run of enhanced packet blocks from here, in bulk (see pcapca.skim)
            reader.unread(head)
            taken, skim_after = yield from _skim_run(reader, skim, endian, ifaces, frame)
            frame += taken
            continue
        if len(head) < 8:
            yield Problem(f"pcapng block at byte offset {offset} is truncated (needs at "
                          f"least 8 bytes, file ends after {len(head)})",
                          frame=frame, offset=offset, fatal=True)
            return

        if head[:4] == _SHB_MAGIC:
            bom = read(4)
            e = "<" if bom == _BOM_LE else ">" if bom == _BOM_BE else None
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
                why = _bad_length(blen)
            prefix = head[4:] + bom
        else:
            if endian is None:
                yield Problem("not a pcapng file: it does not start with a section "
                              "header block", frame=frame, offset=offset, fatal=True)
                return
            e = endian
            blen = u2(head)[1]
            why = _bad_length(blen)
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
            if len(ifaces) >= MAX_INTERFACES:
                yield Passthrough(btype, raw, offset, e)
                if not too_many:
                    too_many = True
                    yield Problem(f"interface description block at byte offset {offset}: its "
                                  f"section has over {MAX_INTERFACES} interfaces; the packets "
                                  f"of this one and those after it are copied, not decoded",
                                  frame=frame, offset=offset, topic="too many interfaces")
                continue
            iface, tsoffset, problems = _decode_idb(raw, e)
            ifaces.append((iface, iface.tsresol, tsoffset))
            yield Passthrough(btype, raw, offset, e)
            for msg in problems:
                yield Problem(f"interface {len(ifaces) - 1}: {msg}", frame=frame,
                              offset=offset, topic="damaged interface description")
            continue
        else:
            yield Passthrough(btype, raw, offset, e)
            if btype == ISB:
                loss = _isb_loss(raw, e, ifaces, section, reported)
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
            ts = ticks * _NS // tps + tsoffset
        yield Packet(frame, ts, data, orig_len, iface, iid, offset, raw, e)
        frame += 1


ISB_IFRECV, ISB_IFDROP, ISB_OSDROP = 4, 5, 7


def _isb_loss(raw: bytes, e: str, ifaces, section: int, reported: dict):
    """(message, (section, interface id, packets dropped)) for an Interface
    Statistics Block whose drop counters (isb_ifdrop + isb_osdrop, counted
    from the start of the capture) went up since the last one of its
    interface, else None."""
    if len(raw) < 24:
        return None
    iid = struct.unpack_from(e + "I", raw, 8)[0]
    opts, _ = parse_options(raw, 20, len(raw) - 4, e)
    counts = {code: struct.unpack(e + "Q", value)[0] for code, value in opts
              if code in (ISB_IFRECV, ISB_IFDROP, ISB_OSDROP) and len(value) == 8}
    drops = [counts[c] for c in (ISB_IFDROP, ISB_OSDROP) if c in counts]
    dropped = sum(drops)
    if not drops or dropped <= reported.get((section, iid), 0):
        return None
    reported[(section, iid)] = dropped
    name = ifaces[iid][0].name if iid < len(ifaces) and ifaces[iid][0].name else None
    which = f"interface {iid}" + (f" ({name})" if name else "")
    received = counts.get(ISB_IFRECV)
    of = f" of {received} received" if received is not None else ""
    return (f"{which}: the capturing program counted {dropped} packets dropped{of} "
            f"(pcapng interface statistics); CA messages may be missing from this capture",
            (section, iid, dropped))


# ---------------------------------------------------------------- writing


def cut_comment(text: str) -> bytes:
    """UTF-8 encode a comment, cut to fit a pcapng option (65535 bytes).

    A cut comment ends with ``…[cut by pcapca: N bytes]`` (N: bytes removed);
    a UTF-8 character is never split.
    """
    enc = text.encode("utf-8", "replace")
    if len(enc) <= MAX_OPTION_LEN:
        return enc
    n = len(enc) - MAX_OPTION_LEN
    while True:
        tail = f"…[cut by pcapca: {n} bytes]".encode("utf-8")
        keep = MAX_OPTION_LEN - len(tail)
        while keep > 0 and (enc[keep] & 0xC0) == 0x80:
            keep -= 1
        if len(enc) - keep == n:
            return enc[:keep] + tail
        n = len(enc) - keep


def _marker_count(code: int, value: bytes, endian: str) -> Optional[int]:
    """N if (code, value) is a pcapca marker ``pcapca:comments=N``, else None."""
    if code not in (OPT_CUSTOM_STR_COPY, OPT_CUSTOM_STR) or len(value) < 4:
        return None
    if struct.unpack_from(endian + "I", value)[0] != MARKER_PEN:
        return None
    if not value[4:].startswith(MARKER_PREFIX):
        return None
    try:
        return int(value[4 + len(MARKER_PREFIX):])
    except ValueError:
        return 0


def strip_pcapca_comments(opts: list, endian: str) -> list:
    """Remove pcapca's markers and the comments they mark (see module doc)."""
    out: list = []
    for code, value in opts:
        n = _marker_count(code, value, endian)
        if n is None:
            out.append((code, value))
        elif 0 < n <= len(out) and all(c == OPT_COMMENT for c, _ in out[-n:]):
            del out[-n:]
    return out


def _pack_options(opts: Iterable[tuple[int, bytes]], endian: str) -> bytes:
    if not opts:
        return b""
    parts = []
    hh = _HH[endian]
    for code, value in opts:
        parts.append(hh(code, len(value)))
        parts.append(value)
        parts.append(b"\0" * (-len(value) % 4))
    if parts:
        parts.append(b"\0\0\0\0")
    return b"".join(parts)


def pack_epb(endian: str, interface_id: int, ticks: int, data: bytes, orig_len: int,
             options: Iterable[tuple[int, bytes]] = ()) -> bytes:
    """An Enhanced Packet Block, packed with struct (works for empty packets)."""
    return _epb(endian, interface_id, ticks, data, orig_len, _pack_options(options, endian))


def _epb(endian: str, interface_id: int, ticks: int, data: bytes, orig_len: int,
         opt: bytes) -> bytes:
    """``pack_epb`` with its options already packed (``opt``)."""
    ticks &= 0xFFFFFFFFFFFFFFFF
    pad = _PADDING[-len(data) % 4]
    total = 32 + len(data) + len(pad) + len(opt)
    head, tail = _EPB_STRUCTS[endian]
    return b"".join((head(EPB, total, interface_id, ticks >> 32, ticks & 0xFFFFFFFF,
                          len(data), orig_len & 0xFFFFFFFF),
                     data, pad, opt, tail(total)))


_PADDING = (b"", b"\0", b"\0\0", b"\0\0\0")
_HH = {e: struct.Struct(e + "HH").pack for e in "<>"}
_EPB_STRUCTS = {e: (struct.Struct(e + "7I").pack, struct.Struct(e + "I").pack) for e in "<>"}
_EPB_TYPE = {e: struct.pack(e + "I", EPB) for e in "<>"}
_TYPE_LEN = {e: struct.Struct(e + "II").pack for e in "<>"}


def _write_block(blk) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # if_tsresol has no field type in python-pcapng: DeprecationWarning
        warnings.simplefilter("ignore", DeprecationWarning)
        blk._write(buf)
    return buf.getvalue()


def build_shb(endian: str = "<", userappl: Optional[str] = None) -> bytes:
    """A Section Header Block built by python-pcapng."""
    opts = {"shb_userappl": userappl} if userappl else {}
    return _write_block(_blocks.SectionHeader(endianness=endian, options=opts))


def build_idb(endian: str, linktype: int, snaplen: int, name: Optional[str] = None,
              tsresol: int = 9) -> bytes:
    """An Interface Description Block built by python-pcapng (ns timestamps)."""
    opts = {"if_tsresol": bytes([tsresol])}
    if name:
        opts["if_name"] = name
    shb = _blocks.SectionHeader(endianness=endian)
    idb = shb.new_member(_blocks.InterfaceDescription, link_type=linktype & 0xFFFF,
                         snaplen=snaplen & 0xFFFFFFFF, options=opts)
    return _write_block(idb)


class PcapngWriter:
    """Write pcapng to a binary stream, sequentially (pipes are fine).

    Blocks from a pcapng input are copied: give every :class:`Passthrough`
    to :meth:`write_passthrough` and every packet to :meth:`write_packet`,
    in input order.  Packets from legacy pcap (``raw is None``) get a
    section of our own (little-endian SHB, one IDB per distinct interface,
    nanosecond timestamps).  A packet that cannot be copied into the current
    section as it is (its IDB was not written to it, or other byte order)
    gets an IDB of ours in that section and is re-packed with its
    nanosecond timestamp.
    """

    def __init__(self, out: BinaryIO, *, userappl: str = "pcapca", flush_each: bool = True):
        self.out = out
        self.userappl = userappl
        self.flush_each = flush_each
        self._endian: Optional[str] = None      # byte order of the current section
        self._ifaces: list[bytes] = []          # IDB raw bytes of the current section
        self._ids: dict[bytes, int] = {}        # IDB raw bytes -> first interface id
        self._idbs = 0                          # IDBs in the current section (see MAX_INTERFACES)
        self._idb_cache: dict[tuple, bytes] = {}
        # (endian, count) -> pcapca's marker option, and it packed with the end of options
        self._markers: dict[tuple, tuple] = {}
        self._wrote = False
        # the interface of the last legacy-pcap packet and its id in this section
        self._pcap_iface: Optional[Interface] = None
        self._pcap_iid: Optional[int] = None

    # -- sections and interfaces

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self._wrote = True

    def _new_section(self, endian: str) -> None:
        self._endian = endian
        self._ifaces = []
        self._ids = {}
        self._idbs = 0
        self._pcap_iface = self._pcap_iid = None

    def _add_idb(self, raw: bytes) -> int:
        self._write(raw)
        return self._remember(raw)

    def _remember(self, raw: bytes) -> int:
        """The id of an IDB written to the section (remembered up to MAX_INTERFACES)."""
        iid = self._idbs
        self._idbs += 1
        if iid >= MAX_INTERFACES:
            return iid
        self._ifaces.append(raw)
        return self._ids.setdefault(raw, iid)

    def _own_section(self) -> None:
        self._write(build_shb("<", self.userappl))
        self._new_section("<")

    def _interface_for(self, pkt: Packet) -> tuple[int, bool]:
        """Output interface id for pkt, and whether its tick count can be kept."""
        if self._endian is None:
            self._own_section()
        ifr = pkt.interface.raw
        if pkt.raw is not None and ifr is not None and pkt.endian == self._endian:
            iid = pkt.interface_id
            if iid < len(self._ifaces) and self._ifaces[iid] == ifr:
                return iid, True
            iid = self._ids.get(ifr)
            return (self._add_idb(ifr) if iid is None else iid), True
        i = pkt.interface
        key = (self._endian, i.linktype, i.snaplen, i.name)
        raw = self._idb_cache.get(key)
        if raw is None:
            raw = self._idb_cache[key] = build_idb(self._endian, i.linktype, i.snaplen, i.name)
        iid = self._ids.get(raw)
        return (self._add_idb(raw) if iid is None else iid), False

    # -- public API

    def write_passthrough(self, item: Passthrough) -> None:
        """Copy a non-packet block byte for byte (an SHB starts a section)."""
        if item.block_type == SHB:
            self._new_section(item.endian)
        elif self._endian is None:
            self._own_section()
        if item.block_type == IDB:
            self._remember(item.raw)
        self._write(item.raw)
        if self.flush_each:
            self.out.flush()

    def write_packet(self, pkt: Packet, comments: Iterable[str] = ()) -> None:
        """Write one packet with pcapca's comments (replacing earlier ones)."""
        if pkt.raw is None and pkt.interface is self._pcap_iface:
            # a legacy pcap packet (nothing to copy) of the interface before
            # (most packets of an annotate): no interface to look up
            block = _epb(self._endian, self._pcap_iid, pkt.ts, pkt.data, pkt.orig_len,
                         self._comments_block(comments))
        else:
            block = self._block(pkt, list(comments))
        self._write(block)
        if self.flush_each:
            self.out.flush()

    def _block(self, pkt: Packet, comments: list) -> bytes:
        iid, same = self._interface_for(pkt)
        raw = pkt.raw
        if raw is None:
            self._pcap_iface, self._pcap_iid = pkt.interface, iid
        elif same and iid == pkt.interface_id:        # (its header can stay as it is)
            caplen = len(pkt.data)
            if not comments:
                if MARKER_PREFIX not in raw:
                    return raw
            elif len(raw) == 32 + caplen + (-caplen % 4) and raw[:4] == _EPB_TYPE[self._endian]:
                # an enhanced packet block without options (as dumpcap writes
                # them): _rebuild's block, without unpacking and re-packing it
                return self._epb_with_comments(raw, caplen, comments)
        return self._rebuild(pkt, iid, same, comments)

    def _marker(self, n: int) -> tuple:
        """pcapca's option that marks the ``n`` comments before it, in this
        section's byte order: (the option, it packed with the end of options)."""
        key = (self._endian, n)
        marker = self._markers.get(key)
        if marker is None:
            option = (OPT_CUSTOM_STR_COPY, struct.pack(self._endian + "I", MARKER_PEN)
                      + MARKER_PREFIX + str(n).encode())
            marker = self._markers[key] = (option, _pack_options([option], self._endian))
        return marker

    def _comments_block(self, comments) -> bytes:
        """``_pack_options`` of ``_comment_options(comments)``, in one go."""
        hh = _HH[self._endian]
        parts = []
        for text in comments:
            enc = cut_comment(text)
            size = len(enc)
            parts += (hh(OPT_COMMENT, size), enc, _PADDING[-size % 4])
        if not parts:
            return b""
        parts.append(self._marker(len(parts) // 3)[1])
        return b"".join(parts)

    def _epb_with_comments(self, raw: bytes, caplen: int, comments: list) -> bytes:
        """``_rebuild`` of an EPB without options in the section it came
        from: the same header and data (zero padding), then the comments."""
        e = self._endian
        opt = self._comments_block(comments)
        pad = _PADDING[-caplen % 4]
        total = 32 + caplen + len(pad) + len(opt)
        return b"".join((_TYPE_LEN[e](EPB, total), raw[8:28 + caplen], pad, opt,
                         _EPB_STRUCTS[e][1](total)))

    def _rebuild(self, pkt: Packet, iid: int, same: bool, comments: list) -> bytes:
        e = self._endian
        ticks = pkt.ts
        opts: list = []
        raw = pkt.raw
        if raw is not None:
            pe = pkt.endian
            btype = struct.unpack_from(pe + "I", raw)[0]
            if btype in (EPB, PB) and len(raw) >= 32:
                if same:
                    th, tl = struct.unpack_from(pe + "II", raw, 12)
                    ticks = (th << 32) | tl
                caplen = struct.unpack_from(pe + "I", raw, 20)[0]
                opts, _ = parse_options(raw, 28 + caplen + (-caplen % 4), len(raw) - 4, pe)
                if btype == PB:
                    drops = struct.unpack_from(pe + "H", raw, 10)[0]
                    if drops not in (0, 0xFFFF):
                        opts.append((4, struct.pack(pe + "Q", drops)))   # epb_dropcount
            opts = strip_pcapca_comments(opts, pe)
            if pe != e:   # numbers in other options would be in the wrong byte order
                opts = [(c, v) for c, v in opts if c in (1, 3)]   # comment, hash
        opts.extend(self._comment_options(comments))
        return pack_epb(e, iid, ticks, pkt.data, pkt.orig_len, opts)

    def _comment_options(self, comments: list) -> list:
        """The comment options and pcapca's marker option that counts them."""
        if not comments:
            return []
        opts = [(OPT_COMMENT, cut_comment(c)) for c in comments]
        opts.append(self._marker(len(comments))[0])
        return opts

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        """Flush (never closes ``out``).  An empty output gets an SHB so that
        it is still a valid pcapng file."""
        if not self._wrote:
            self._own_section()
        self.out.flush()
