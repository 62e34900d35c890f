"""gzip-compressed captures (``capture.pcap.gz``), decompressed as a stream.

Wireshark and tshark open a gzip-compressed pcap or pcapng as if it were not
compressed, and long captures are often kept compressed. ``Gunzip`` is a
binary stream of the decompressed bytes, read from a ``ByteSource`` of the
compressed file a piece at a time: memory does not grow with the file and a
live ``... | gzip | pcapca print -`` is shown as the pieces arrive.

Damage is not an exception: the stream ends where the gzip data stops making
sense and keeps a ``Problem`` naming the byte of the *compressed* file where
that is (``problem``); everything decompressed before it is read as usual.
Several gzip members one after another are one stream (as ``gzip`` and
Wireshark read them); zero bytes after the last member are ignored, as gzip
ignores them.
"""
from __future__ import annotations

import zlib
from typing import Optional

from ..items import Problem
from .sources import ByteSource

GZIP_MAGIC = b"\x1f\x8b"
PIECE = 1 << 16            # compressed bytes handed to zlib at a time
OUT = 1 << 20              # most decompressed bytes returned by one read1
# zlib's words for a member whose trailer does not match what it decompressed
_TRAILER_CHECKS = {"incorrect data check": "CRC", "incorrect length check": "length"}


def is_gzip(magic: bytes) -> bool:
    return magic[:2] == GZIP_MAGIC


class Gunzip:
    """``read1(n)``: up to ``n`` decompressed bytes; b"" at the end of the
    data or where it is damaged (then ``problem`` says where and why)."""

    def __init__(self, src: ByteSource):
        self._src = src
        self.name = src.name
        self._d = zlib.decompressobj(31)        # 31: gzip header and trailer (CRC, length)
        self._pending = b""                    # compressed bytes zlib has not taken yet
        self._at = src.offset                  # compressed offset of _pending[0]
        self._member_at = src.offset           # where the current gzip member starts
        self.decompressed = 0                  # bytes returned so far
        self.problem: Optional[Problem] = None
        self._done = False

    def read1(self, n: int = -1) -> bytes:
        if n is None or n <= 0:
            n = OUT
        while not self._done:
            if self._d.eof:
                self._next_member()
                continue
            if not self._pending:
                self._pending = self._take()
                if not self._pending:
                    self._stop(f"the compressed file ends early, at compressed byte {self._at}: "
                               f"the gzip data that starts at compressed byte "
                               f"{self._member_at} has no end")
                    break
            saved = self._d.copy()
            try:
                out = self._d.decompress(self._pending, min(n, OUT))
            except zlib.error as exc:
                out = self._damaged(saved, exc)
                self.decompressed += len(out)
                return out
            if self._d.eof:
                rest = self._d.unused_data
                self._at += len(self._pending) - len(rest)
                self._pending = rest
            else:
                tail = self._d.unconsumed_tail
                self._at += len(self._pending) - len(tail)
                self._pending = tail
            if out:
                self.decompressed += len(out)
                return out
        return b""

    read = read1

    # ------------------------------------------------------------------ internals
    def _take(self) -> bytes:
        """The next piece of the compressed file: what is there (a pipe is
        not waited on for a whole piece), b"" at its end."""
        src = self._src
        if not src.fill(1):
            return b""
        self._at = src.offset
        return src.read(min(src.available(), PIECE))

    def _next_member(self) -> None:
        """After a gzip member: zero padding (ignored, as gzip ignores it),
        then another member, the end, or data that is not gzip."""
        while True:
            data = self._pending.lstrip(b"\0")
            self._at += len(self._pending) - len(data)
            self._pending = data
            if len(data) >= 2:
                break
            more = self._take()                 # (0 or 1 byte left: read on before deciding)
            if not more:
                if not data:
                    self._done = True           # the normal end
                    return
                break
            self._at -= len(data)
            self._pending = data + more
        if is_gzip(self._pending):
            self._d = zlib.decompressobj(31)
            self._member_at = self._at
            return
        self._stop(f"data that is not gzip follows the end of the compressed capture at "
                   f"compressed byte {self._at}; it is ignored")

    def _damaged(self, saved, exc: zlib.error) -> bytes:
        """Feed the piece zlib rejected one byte at a time to the state
        before it: the data decompressed up to the first byte it rejects is
        returned, and the stream stops at that byte."""
        bad = self._at
        out = []
        for i in range(len(self._pending)):
            try:
                out.append(saved.decompress(self._pending[i:i + 1]))
            except zlib.error:
                bad = self._at + i
                break
        reason = str(exc).split(": ", 1)[-1]
        data = b"".join(out)
        which = _TRAILER_CHECKS.get(reason)
        if which:
            text = (f"the gzip data that starts at compressed byte {self._member_at} fails its "
                    f"{which} check at compressed byte {bad}: what it decompressed to is "
                    f"damaged somewhere")
        else:
            text = (f"the gzip data is damaged at compressed byte {bad} ({reason}); "
                    f"the capture is read up to there")
        self._stop(text, extra=len(data))
        return data

    def _stop(self, text: str, extra: int = 0) -> None:
        # not ``fatal``: where the capture is cut, its reader says so (fatally)
        self.problem = Problem(f"{self.name}: {text} "
                               f"({self.decompressed + extra} bytes decompressed)")
        self._done = True
        self._pending = b""
