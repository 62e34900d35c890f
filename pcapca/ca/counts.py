"""What the decoder counted: packets, messages, skips, losses (``print``'s summary line)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

from . import shown


@dataclass
class Counts:
    """Running totals of one decoder (a few ints and three small tables: picklable)."""
    packets: int = 0
    messages: int = 0
    skipped: Counter = field(default_factory=Counter)   # reason -> packets
    retransmitted_bytes: int = 0
    lost_bytes: int = 0
    gaps: int = 0
    problems: int = 0          # decode problems (junk, undecodable messages)
    capture_problems: int = 0  # damage in the capture file
    # packets the capturing program dropped, by (section, interface): its last count
    capture_drops: dict = field(default_factory=dict)
    duplicates: int = 0        # packets seen again on another interface
    cut_messages: int = 0      # messages cut off by the end of the capture or a close
    unshown: Counter = field(default_factory=Counter)   # problem kind -> problems not shown

    @property
    def dropped(self) -> int:
        """Packets the capturing program said it dropped (pcapng statistics)."""
        return sum(self.capture_drops.values())

    def summary(self) -> str:
        parts = [f"{self.packets} packets", f"{self.messages} CA messages"]
        if self.problems:
            parts.append(f"{self.problems} decode problems")
        if self.capture_problems:
            parts.append(f"{self.capture_problems} capture problems")
        if self.capture_drops:
            parts.append(f"{self.dropped} packets dropped by the capturing program")
        if self.gaps:
            parts.append(f"{self.lost_bytes} TCP bytes missing in {self.gaps} gaps")
        if self.retransmitted_bytes:
            parts.append(f"{self.retransmitted_bytes} retransmitted TCP bytes decoded once")
        if self.cut_messages:
            parts.append(f"{self.cut_messages} messages incomplete at the end of their stream")
        if self.duplicates:
            parts.append(f"{self.duplicates} packets seen again on another interface ignored")
        skipped = sum(self.skipped.values())
        if skipped:
            why = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common())
            parts.append(f"{skipped} packets skipped ({why})")
        return "; ".join(parts)

    def unshown_line(self) -> Optional[str]:
        """The one line that counts the problems not shown (``ShownProblems``), or None."""
        if not self.unshown:
            return None
        why = ", ".join(f"{n} {kind}" for kind, n in self.unshown.most_common())
        return (f"{sum(self.unshown.values())} more problems were only counted, not shown "
                f"(the first {shown.SHOWN_PER_KIND} of each kind and sender are): {why}")
