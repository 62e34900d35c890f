"""The same packet captured on two interfaces (e.g. ``lo`` and ``any``): found, to be ignored."""
from __future__ import annotations

from collections import OrderedDict

DUP_WINDOW_NS = 50 * 10**6       # the same packet on two interfaces within this
DUP_MEMORY = 4096                # packets remembered to find such duplicates


class Duplicates:
    """The last DUP_MEMORY packets' keys -> (time, interface)."""
    __slots__ = ("recent",)

    def __init__(self) -> None:
        self.recent: "OrderedDict[tuple, tuple]" = OrderedDict()

    def seen(self, packet, key: tuple) -> bool:
        """Was this packet already seen on another interface? Packets are
        identified by ``key``: their addresses, IP id, TCP sequence/ack/flags
        (or fragment offset) and payload."""
        recent = self.recent
        seen = recent.get(key)
        if seen is not None and seen[1] is not packet.interface and abs(packet.ts - seen[0]) <= DUP_WINDOW_NS:
            return True
        recent[key] = (packet.ts, packet.interface)
        if len(recent) > DUP_MEMORY:
            recent.popitem(last=False)
        return False
