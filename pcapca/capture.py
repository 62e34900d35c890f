"""Open a capture (path, ``-`` or binary stream) and read it, whatever its format.

The format is told by the magic bytes, never by the file name.
"""
from __future__ import annotations

import os
import struct
from typing import BinaryIO, Iterator, Union

from .events import Packet, Passthrough, Problem
from .pcap_reader import MAGICS as PCAP_MAGICS, is_pcap, read_pcap
from .streams import ByteSource, open_source

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_PCAP_MAGICS = tuple(struct.pack("<I", m) for m in PCAP_MAGICS)


class CaptureFormatError(Exception):
    """Not a capture file pcapca can read (bad magic, missing file...)."""


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


def _magic_prefix(magic: bytes) -> bool:
    """Are these 1-3 bytes the start of a pcap or pcapng magic number?"""
    return any(m.startswith(magic) for m in (PCAPNG_MAGIC, *_PCAP_MAGICS))


def detect(src: ByteSource) -> str:
    """'pcap', 'pcapng' or 'truncated' (a file cut inside the magic number
    of one of them); raises CaptureFormatError otherwise."""
    magic = src.peek(4)
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
    raise CaptureFormatError(
        f"{src.name}: not a pcap or pcapng file (magic bytes {magic.hex()})")


def read_capture(source: Union[str, os.PathLike, BinaryIO, ByteSource], *, strict: bool = False,
                 skim=None) -> Iterator[Union[Packet, Passthrough, Problem]]:
    """Yield the packets of a capture (and, for pcapng, its other blocks as
    ``Passthrough``), with ``Problem`` items where the file is damaged.

    Raises CaptureFormatError (before yielding anything) if it is not a
    capture file at all, and OSError if it cannot be opened. ``skim``: see
    ``pcapca.skim``."""
    src = source if isinstance(source, ByteSource) else open_source(source)
    kind = detect(src)
    if kind == "truncated":
        n = src.available()
        return iter([Problem(f"capture file is truncated: it ends inside its magic number "
                             f"({n} of 4 bytes)", offset=0, fatal=True)])
    if kind == "pcap":
        return read_pcap(src, strict=strict, skim=skim)
    from .pcapng_io import read_pcapng
    return read_pcapng(_SourceFile(src), strict=strict, skim=skim)
