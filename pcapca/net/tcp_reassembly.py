"""TCP reassembly of one direction of a connection, by sequence number.

``HalfStream.segment()`` takes one captured segment and returns what it makes
newly contiguous, as a list of ``(missing, data, tag)`` triples: ``missing``
bytes that will never be seen (capture loss, snaplen cut) come before
``data`` (``data`` None: the bytes were cut by the capture's snaplen);
``tag`` is what the caller passed with the segment that carried it.
Retransmitted and duplicated bytes are returned once; out-of-order segments
wait (bounded) until the hole before them is filled, the peer acknowledges
past the hole (the capture lost those bytes), or too much is waiting.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

MOD = 1 << 32
HALF = 1 << 31
MAX_PENDING_BYTES = 8 << 20
MAX_PENDING_SEGMENTS = 512


def seq_diff(a: int, b: int) -> int:
    """a - b in sequence space (signed)."""
    d = (a - b) % MOD
    return d - MOD if d >= HALF else d


class HalfStream:
    """One direction's next expected sequence number and the segments waiting
    behind a hole (at most MAX_PENDING_BYTES / MAX_PENDING_SEGMENTS)."""
    __slots__ = ("next_seq", "pending", "pending_bytes", "fin_seq", "retransmitted")

    def __init__(self) -> None:
        self.next_seq: Optional[int] = None    # next expected sequence number
        self.pending: Dict[int, Tuple[bytes, int, object]] = {}   # seq -> (data, wire_len, tag)
        self.pending_bytes = 0
        self.fin_seq: Optional[int] = None    # sequence number of our FIN
        self.retransmitted = 0                 # bytes seen twice

    def syn(self, seq: int) -> None:
        self.next_seq = (seq + 1) % MOD
        self.pending.clear()
        self.pending_bytes = 0

    def segment(self, seq: int, data: bytes, wire_len: int, tag=None) -> List[Tuple[int, bytes, object]]:
        """Add a segment carrying ``wire_len`` bytes at ``seq``, of which
        ``data`` were captured. Returns [(missing, data), ...] in order."""
        if wire_len <= 0:
            return []
        if self.next_seq is None:          # first data seen: start here
            self.next_seq = seq
        d = seq_diff(seq, self.next_seq)
        if d > 0:
            if seq in self.pending:
                self.retransmitted += wire_len
                return []
            self.pending[seq] = (data, wire_len, tag)
            self.pending_bytes += len(data)
            if (self.pending_bytes > MAX_PENDING_BYTES
                    or len(self.pending) > MAX_PENDING_SEGMENTS):
                return self._skip_to_pending()
            return []
        out: List[Tuple[int, bytes, object]] = []
        self._take(out, d, data, wire_len, 0, tag)
        if self.pending:
            self._drain(out)
        return out

    def _take(self, out, d: int, data: bytes, wire_len: int, missing: int, tag) -> None:
        """Append the part of a segment at offset d (<= 0) that is new."""
        if -d >= wire_len:
            self.retransmitted += wire_len
            return
        if d < 0:
            self.retransmitted += -d
            data = data[-d:]
            wire_len += d
        cut = wire_len - len(data)
        if data:
            out.append((missing, data, tag))
            missing = 0
        if cut > 0:                            # snaplen cut: the rest is lost
            missing += cut
            out.append((missing, None, tag))   # None: lost by the capture's snaplen
        self.next_seq = (self.next_seq + wire_len) % MOD

    def _drain(self, out) -> None:
        while self.pending:
            best = None
            for s in self.pending:
                d = seq_diff(s, self.next_seq)
                if d <= 0 and (best is None or d < best[1]):
                    best = (s, d)
            if best is None:
                return
            data, wire_len, tag = self.pending.pop(best[0])
            self.pending_bytes -= len(data)
            self._take(out, best[1], data, wire_len, 0, tag)

    def _skip_to_pending(self, upto: Optional[int] = None, tag=None) -> list:
        """Give up on the hole before the first waiting segment (or up to the
        acknowledged sequence number ``upto``)."""
        out: list = []
        if not self.pending and upto is None:
            return out
        if self.pending:
            first = min(self.pending, key=lambda s: seq_diff(s, self.next_seq))
            target = first if upto is None or seq_diff(first, upto) <= 0 else upto
        else:
            target = upto
        missing = seq_diff(target, self.next_seq)
        if missing <= 0:
            # (no hole before it: not left by this class, but flush must end)
            self._drain(out)
            return out
        self.next_seq = target
        out.append((missing, b"", tag))
        self._drain(out)
        return out

    def give_up(self) -> None:
        """Forget the segments waiting behind a hole (too much buffered)."""
        self.pending.clear()
        self.pending_bytes = 0

    def fin(self, seq: int, wire_len: int) -> None:
        """A FIN at ``seq`` after ``wire_len`` data bytes (it takes one sequence number)."""
        self.fin_seq = (seq + wire_len) % MOD

    def acked(self, ack: int, tag=None) -> list:
        """The peer acknowledged up to ``ack``: bytes before it that we have
        not seen were lost by the capture, not by the network."""
        if self.fin_seq is not None and ack == (self.fin_seq + 1) % MOD:
            ack = self.fin_seq
        if self.next_seq is None or seq_diff(ack, self.next_seq) <= 0:
            return []
        return self._skip_to_pending(ack, tag)

    def flush(self) -> list:
        """End of capture: deliver what waits behind a hole."""
        out: list = []
        while self.pending:
            out.extend(self._skip_to_pending())
        return out
