"""Byte sources for the capture readers: files, stdin and slow pipes.

A ``ByteSource`` buffers what it has read from a binary stream and knows the
absolute byte offset of everything in its buffer, so that readers can name
the offset of any damage. It only blocks for the bytes a reader asks for, so
a live ``tcpdump -U -w - | pcapca ...`` shows each packet as soon as it has
arrived.
"""
from __future__ import annotations

import io
import os
import sys
from typing import BinaryIO, Union

CHUNK = 1 << 20


class ByteSource:
    __slots__ = ("_stream", "_buf", "_pos", "_base", "_read", "eof", "name")

    def __init__(self, stream: BinaryIO, name: str = "<stream>"):
        self._stream = stream
        self._buf = b""
        self._pos = 0          # read position in _buf
        self._base = 0         # absolute offset of _buf[0]
        # read1 returns what is available without waiting for a full chunk
        self._read = getattr(stream, "read1", None) or stream.read
        self.eof = False
        self.name = name

    @property
    def offset(self) -> int:
        """Absolute offset of the next unread byte."""
        return self._base + self._pos

    def available(self) -> int:
        return len(self._buf) - self._pos

    def fill(self, n: int) -> bool:
        """Make at least ``n`` unread bytes available; False at end of input."""
        while len(self._buf) - self._pos < n:
            if self.eof:
                return False
            want = max(CHUNK, n - (len(self._buf) - self._pos))
            chunk = self._read(want)
            if not chunk:
                self.eof = True
                return False
            if self._pos:
                self._base += self._pos
                self._buf = self._buf[self._pos:] + chunk
                self._pos = 0
            else:
                self._buf += chunk
        return True

    def peek(self, n: int) -> bytes:
        """Up to ``n`` unread bytes without consuming them (may be fewer at EOF)."""
        self.fill(n)
        return self._buf[self._pos:self._pos + n]

    def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or fewer at end of input."""
        self.fill(n)
        data = self._buf[self._pos:self._pos + n]
        self._pos += len(data)
        return data

    def window(self):
        """(buffer, read position): for readers that parse in place; they
        must call ``seek_to`` with the position they consumed up to."""
        return self._buf, self._pos

    def offset_of(self, pos: int) -> int:
        """Absolute offset of buffer position ``pos`` (from ``window``)."""
        return self._base + pos

    def seek_to(self, pos: int) -> None:
        self._pos = pos

    def unread(self, n: int) -> None:
        """Step back over the last ``n`` bytes read (they are still buffered)."""
        if n > self._pos:
            raise ValueError("cannot step back past the buffer")
        self._pos -= n

    def skip(self, n: int) -> int:
        self.fill(n)
        n = min(n, len(self._buf) - self._pos)
        self._pos += n
        return n


def open_source(source: Union[str, os.PathLike, BinaryIO]) -> ByteSource:
    """A ByteSource for a path, ``-`` (stdin) or an open binary file."""
    if isinstance(source, (str, os.PathLike)):
        if str(source) == "-":
            return ByteSource(sys.stdin.buffer, "<stdin>")
        return ByteSource(open(source, "rb", buffering=0), os.fspath(source))
    if isinstance(source, (bytes, bytearray)):
        return ByteSource(io.BytesIO(source), "<bytes>")
    return ByteSource(source, getattr(source, "name", "<stream>"))
