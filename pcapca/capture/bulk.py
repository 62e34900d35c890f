"""What the readers hand the filtered print's shortcut: runs of complete records, and its interface."""
from __future__ import annotations

from typing import Iterator, List, Protocol, Sequence

MIN_RECORDS = 64          # fewer complete records in a window (a live pipe): read one by one
MAX_RUN = 8192            # records per run at most (bounds what a damaged window costs)
SKIM_CHUNK = 1 << 20      # bytes the pcapng reader reads ahead for a run


class Skim(Protocol):
    """The shortcut as the readers see it (``pcapca.fast.skim.Skimmer``): a
    reader offers it each run of complete, plausible packet records and
    yields as packets only the records it gives back."""

    skipped: int          # packets accounted for (not yielded) so far

    def handles(self, linktype: int) -> bool:
        """Can it take packets of this link type (legacy pcap: the file's)?"""

    def wants(self, interfaces: Sequence) -> bool:
        """Can it take packets of a pcapng section with these interfaces
        ((Interface, ticks per second, offset) each)?"""

    def run(self, buf: bytes, offsets: List[int], caplens: List[int], tss: List[int],
            frame: int, linktype: int, data_at: int = 16) -> Iterator[int]:
        """Indices of the records at ``offsets`` in ``buf`` (packet bytes
        ``data_at`` bytes in, captured lengths ``caplens``, times ``tss`` in
        ns, frame numbers from ``frame``) that the reader must yield, in
        order; it accounts for the others. Each is yielded before the next
        is looked at (the stages process it in between)."""
