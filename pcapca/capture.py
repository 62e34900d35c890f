"""Open a capture (path, ``-`` or binary stream) and read it, whatever its format.

The format is told by the magic bytes, never by the file name.
"""
from __future__ import annotations

import os
from typing import BinaryIO, Iterator, Union

from .events import Packet, Passthrough, Problem
from .pcap_reader import is_pcap, read_pcap
from .streams import ByteSource, open_source

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


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


def detect(src: ByteSource) -> str:
    """'pcap' or 'pcapng'; raises CaptureFormatError otherwise."""
    magic = src.peek(4)
    if len(magic) < 4:
        raise CaptureFormatError(
            f"{src.name}: not a capture file: only {len(magic)} bytes" if magic
            else f"{src.name}: empty input, not a capture file")
    if magic == PCAPNG_MAGIC:
        return "pcapng"
    if is_pcap(magic):
        return "pcap"
    raise CaptureFormatError(
        f"{src.name}: not a pcap or pcapng file (magic bytes {magic.hex()})")


def read_capture(source: Union[str, os.PathLike, BinaryIO, ByteSource]
                 ) -> Iterator[Union[Packet, Passthrough, Problem]]:
    """Yield the packets of a capture (and, for pcapng, its other blocks as
    ``Passthrough``), with ``Problem`` items where the file is damaged.

    Raises CaptureFormatError (before yielding anything) if it is not a
    capture file at all, and OSError if it cannot be opened."""
    src = source if isinstance(source, ByteSource) else open_source(source)
    kind = detect(src)
    if kind == "pcap":
        return read_pcap(src)
    from .pcapng_io import read_pcapng
    return read_pcapng(_SourceFile(src))
