"""Open a capture (path, ``-`` or binary stream) and read it, whatever its format.

The format is told by the magic bytes, never by the file name.
"""
from __future__ import annotations

import dataclasses
import os
import struct
from typing import BinaryIO, Iterator, Union

from ..errors import CaptureFormatError
from ..items import Packet, Passthrough, Problem
from .gunzip import GZIP_MAGIC, Gunzip, is_gzip
from .pcap import MAGICS as PCAP_MAGICS, is_pcap, read_pcap
from .pcapng_read import read_pcapng
from .sources import ByteSource, open_source

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_PCAP_MAGICS = tuple(struct.pack("<I", m) for m in PCAP_MAGICS)
# other compressors (Wireshark reads zstd and lz4 too): told apart, not read
_COMPRESSED = (
    (b"\x28\xb5\x2f\xfd", "zstd", "zstd -dc"),
    (b"\x04\x22\x4d\x18", "lz4", "lz4 -dc"),
    (b"\xfd7zXZ", "xz", "xz -dc"),
    (b"BZh", "bzip2", "bzip2 -dc"),
)
# Other capture formats (magic bytes -> name), which Wireshark's editcap
# converts to pcapng.
_OTHER_CAPTURES = (
    (b"snoo", "Sun snoop"),
    (b"GMBU", "Microsoft Network Monitor 2.x"),
    (b"RTSS", "Microsoft Network Monitor 1.x"),
    (b"Obse", "Viavi Observer"),
    (b"TRSN", "Sniffer (DOS)"),
    (b"TR\x00d", "HP-UX nettl"),
    (b"\x34\xcd\xb2\xa1", "modified (Kuznetzov) pcap"),
    (b"\xa1\xb2\xcd\x34", "modified (Kuznetzov) pcap"),
)


class _SourceFile:
    """A minimal binary file object over a ByteSource (read exactly n, tell)."""

    def __init__(self, src: ByteSource):
        self._src = src
        self.name = src.name

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            chunks = []
            while True:
                chunk = self._src.read(1 << 20)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        return self._src.read(n)

    def tell(self) -> int:
        return self._src.offset

    def window(self):
        """What is buffered, for parsing in place (``ByteSource.window``)."""
        return self._src.window()

    def seek_to(self, pos: int) -> None:
        self._src.seek_to(pos)


def _magic_prefix(magic: bytes) -> bool:
    """Are these 1-3 bytes the start of a pcap, pcapng or gzip magic number?"""
    return any(m.startswith(magic) for m in (PCAPNG_MAGIC, *_PCAP_MAGICS, GZIP_MAGIC))


def detect(src: ByteSource) -> str:
    """'pcap', 'pcapng', 'gzip' (a compressed file, of either) or 'truncated'
    (a file cut inside the magic number of one of them); raises
    CaptureFormatError otherwise."""
    magic = src.peek(4)
    if is_gzip(magic):
        return "gzip"
    if len(magic) < 4:
        if magic and _magic_prefix(magic):
            return "truncated"
        raise CaptureFormatError(
            f"{src.name}: not a capture file: only {len(magic)} bytes" if magic
            else f"{src.name}: empty input, not a capture file")
    if magic == PCAPNG_MAGIC:
        return "pcapng"
    if is_pcap(magic):
        return "pcap"
    for prefix, kind, command in _COMPRESSED:
        if magic.startswith(prefix):
            shown = "FILE" if src.name.startswith("<") else src.name
            raise CaptureFormatError(
                f"{src.name}: a {kind}-compressed file; pcapca reads pcap, pcapng and "
                f"gzip-compressed captures: decompress it first, e.g. "
                f"{command} {shown} | pcapca print -")
    for prefix, kind in _OTHER_CAPTURES:
        if magic.startswith(prefix):
            shown = "FILE" if src.name.startswith("<") else src.name
            raise CaptureFormatError(
                f"{src.name}: a {kind} capture; pcapca reads pcap and pcapng: convert it "
                f"first with Wireshark's editcap: editcap -F pcapng {shown} {shown}.pcapng")
    raise CaptureFormatError(
        f"{src.name}: not a pcap or pcapng file (magic bytes {magic.hex()})")


def read_capture(source: Union[str, os.PathLike, BinaryIO, ByteSource], *, strict: bool = False,
                 skim=None, first_frame: int = 1) -> Iterator[Union[Packet, Passthrough, Problem]]:
    """Yield the packets of a capture (and, for pcapng, its other blocks as
    ``Passthrough``), with ``Problem`` items where the file is damaged.

    Raises CaptureFormatError (before yielding anything) if it is not a
    capture file at all, and OSError if it cannot be opened. ``skim``: the
    filtered print's shortcut (``bulk.Skim``) or None; ``first_frame``: the
    number of its first packet (see ``capture.sets``)."""
    src = source if isinstance(source, ByteSource) else open_source(source)
    kind = detect(src)
    if kind == "gzip":
        return _read_gzip(src, strict=strict, skim=skim, first_frame=first_frame)
    return _read(src, kind, strict=strict, skim=skim, first_frame=first_frame)


def offsets_in(src: ByteSource) -> str:
    """What the byte offsets of the problems of this capture count: "" (the
    file's own bytes) or "decompressed capture" for a gzip-compressed one.
    (Looks at the magic number only; nothing is consumed.)"""
    return "decompressed capture" if is_gzip(src.peek(2)) else ""


def labelled(problem: Problem, offsets: str) -> Problem:
    """``problem`` with ``offsets_in`` set (see offsets_in) if it names a byte
    offset and says nothing yet of what it counts."""
    if not offsets or problem.offset is None or problem.offsets_in:
        return problem
    return dataclasses.replace(problem, offsets_in=offsets)


def label_offsets(items: Iterator, offsets: str) -> Iterator:
    """``items`` with their problems ``labelled`` (the decoder's too, which
    only knows the packet's offset)."""
    for item in items:
        yield labelled(item, offsets) if item.__class__ is Problem else item


def probe(src: ByteSource) -> str:
    """The format of what the capture holds: detect(), looking inside a
    gzip-compressed file (reads ahead; use a fresh source to read it)."""
    kind = detect(src)
    return _gunzip(src)[1] if kind == "gzip" else kind


def _gunzip(src: ByteSource):
    """(source of the decompressed bytes, their format, the Gunzip), or
    CaptureFormatError."""
    gz = Gunzip(src)
    inner = ByteSource(gz, src.name)
    try:
        kind = detect(inner)
    except CaptureFormatError as exc:
        if gz.problem is not None:
            raise CaptureFormatError(str(gz.problem)) from None
        raise CaptureFormatError(f"{src.name}: gzip-compressed, and what it holds is not "
                                 f"a capture: {str(exc).split(': ', 1)[1]}") from None
    if kind == "gzip":
        raise CaptureFormatError(f"{src.name}: gzip-compressed twice; "
                                 f"pcapca decompresses once: gzip -dc {src.name} | pcapca ... -")
    return inner, kind, gz


def _read_gzip(src: ByteSource, *, strict: bool, skim, first_frame: int):
    inner, kind, gz = _gunzip(src)
    return _gzip_problems(_read(inner, kind, strict=strict, skim=skim, first_frame=first_frame),
                          gz)


def _gzip_problems(items, gz: Gunzip):
    """The reader's items, with the decompressor's problem (damaged or cut
    gzip data) before the reader's own report of where the capture stops."""
    told = False
    for item in items:
        if not told and item.__class__ is Problem and gz.problem is not None:
            yield gz.problem
            told = True
        yield item
    if not told and gz.problem is not None:
        yield gz.problem


def _read(src: ByteSource, kind: str, *, strict: bool, skim, first_frame: int):
    if kind == "truncated":
        n = src.available()
        return iter([Problem(f"capture file is truncated: it ends inside its magic number "
                             f"({n} of 4 bytes)", offset=0, fatal=True)])
    if kind == "pcap":
        return read_pcap(src, strict=strict, skim=skim, first_frame=first_frame)
    return read_pcapng(_SourceFile(src), strict=strict, skim=skim, first_frame=first_frame)
