"""Write pcapng (PcapngWriter), and pcapca's marked comments on packets.

The comments pcapca adds to a packet are ``opt_comment`` options at the end
of the EPB's options followed by one custom option (code 2988, PEN 32473, the
IANA documentation PEN) ``pcapca:comments=N``; writing a packet again removes
each marker with the N comments directly before it (only if all N are
comments), so re-annotating does not pile up comments, and a comment not
provably ours is never deleted.
"""
from __future__ import annotations

import struct
from typing import BinaryIO, Iterable, Optional

from ..items import Interface, Packet, Passthrough
from . import pcapng_blocks
from .pcapng_blocks import (EPB, EPB_STRUCTS, EPB_TYPE, HH, IDB, MARKER_PEN, MARKER_PREFIX,
                            MAX_OPTION_LEN, OPT_COMMENT, OPT_CUSTOM_STR, OPT_CUSTOM_STR_COPY,
                            PADDING, PB, SHB, TYPE_LEN, build_idb, build_shb, pack_epb,
                            pack_epb_raw, pack_options, parse_options)


def cut_comment(text: str, limit: int = MAX_OPTION_LEN) -> bytes:
    """UTF-8 encode a comment, cut to fit ``limit`` bytes (a pcapng option: 65535).

    A cut comment ends with ``…[cut by pcapca: N bytes]`` (N: bytes removed);
    a UTF-8 character is never split.
    """
    enc = text.encode("utf-8", "replace")
    if len(enc) <= limit:
        return enc
    n = len(enc) - limit
    while True:
        tail = f"…[cut by pcapca: {n} bytes]".encode("utf-8")
        keep = limit - len(tail)
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
        if iid >= pcapng_blocks.MAX_INTERFACES:
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
            block = pack_epb_raw(self._endian, self._pcap_iid, pkt.ts, pkt.data, pkt.orig_len,
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
            elif len(raw) == 32 + caplen + (-caplen % 4) and raw[:4] == EPB_TYPE[self._endian]:
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
            marker = self._markers[key] = (option, pack_options([option], self._endian))
        return marker

    def _comments_block(self, comments) -> bytes:
        """``pack_options`` of ``_comment_options(comments)``, in one go."""
        hh = HH[self._endian]
        parts = []
        for text in comments:
            enc = cut_comment(text)
            size = len(enc)
            parts += (hh(OPT_COMMENT, size), enc, PADDING[-size % 4])
        if not parts:
            return b""
        parts.append(self._marker(len(parts) // 3)[1])
        return b"".join(parts)

    def _epb_with_comments(self, raw: bytes, caplen: int, comments: list) -> bytes:
        """``_rebuild`` of an EPB without options in the section it came
        from: the same header and data (zero padding), then the comments."""
        e = self._endian
        opt = self._comments_block(comments)
        pad = PADDING[-caplen % 4]
        total = 32 + caplen + len(pad) + len(opt)
        return b"".join((TYPE_LEN[e](EPB, total), raw[8:28 + caplen], pad, opt,
                         EPB_STRUCTS[e][1](total)))

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
