"""The pcapng reader's input: exact reads from any stream, push-back, resynchronisation."""
from __future__ import annotations

import struct
from typing import BinaryIO, Optional

from .pcapng_blocks import BOM_BE, BOM_LE, KNOWN_TYPES, RESYNC_MAX_LEN, SHB, bad_length


class CountingReader:
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



def resync(reader: CountingReader, start: int, buf: bytes, endian: str) -> Optional[int]:
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
                e = "<" if bom == BOM_LE else ">" if bom == BOM_BE else None
                ok = e is not None
        else:
            ok = btype in KNOWN_TYPES
        if ok:
            blen = struct.unpack_from(e + "I", buf, i + 4)[0]
            if (bad_length(blen, RESYNC_MAX_LEN) is None and need(i + blen)
                    and struct.unpack_from(e + "I", buf, i + blen - 4)[0] == blen):
                reader.unread(bytes(buf[i:]))
                return start + i
        i += 4
    return None

