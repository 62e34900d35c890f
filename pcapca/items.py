"""The small immutable records that flow between pcapca's pipeline stages.

capture readers -> ``Packet`` / ``Passthrough`` / ``Problem``
decoder         -> ``Decoded`` (``pcapca.ca.records``) / ``CircuitClosed`` / ``Problem``

Every stage is a generator that consumes the previous stage's items and
passes along the ones it does not handle, so that data flows one way and
memory does not grow with the length of the capture.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional


@dataclass(frozen=True, slots=True)
class Interface:
    """A capture interface: what is needed to read and to re-write packets.

    For legacy pcap there is one interface per file; for pcapng one per
    Interface Description Block of the current section.
    """
    linktype: int
    snaplen: int = 0
    tsresol: int = 1_000_000        # ticks per second (pcap µs: 10**6, ns: 10**9)
    name: Optional[str] = None
    # pcapng: the IDB's raw bytes (for lossless copying), else None
    raw: Optional[bytes] = None


class Packet(NamedTuple):
    """One captured packet, exactly as it is in the file.

    An immutable NamedTuple rather than a frozen dataclass: one is built per
    packet and a NamedTuple is four times cheaper to build."""
    frame: int                # 1-based, across the whole file (Wireshark's numbering)
    ts: int                   # nanoseconds since the epoch, exact integer
    data: bytes               # the captured bytes
    orig_len: int             # the packet's length on the wire
    interface: Interface
    interface_id: int = 0     # index of the interface in its section (pcapng)
    offset: int = 0           # byte offset of the packet's record/block in the file
    # pcapng: the block's raw bytes and byte order, so writers can copy it
    raw: Optional[bytes] = None
    endian: str = "<"

    @property
    def timestamp(self) -> float:
        """Seconds as a float: whole seconds plus the fraction, as dpkt (and
        so caproto-shark) computes it, not ts / 1e9 (which rounds differently)."""
        sec, ns = divmod(self.ts, 1_000_000_000)
        return sec + ns / 1e9


@dataclass(frozen=True, slots=True)
class Passthrough:
    """A pcapng block that is not a packet (SHB, IDB, NRB, ISB, DSB, custom,
    unknown...), carried as raw bytes so that writers lose nothing."""
    block_type: int
    raw: bytes
    offset: int
    endian: str = "<"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something that could not be read or decoded. Stages yield these in
    line with their output; the CLI prints them as one line each."""
    message: str
    frame: Optional[int] = None
    offset: Optional[int] = None
    # "capture" (file damage), "decode" (traffic), "loss" (the capture's
    # own count of packets it dropped: pcapng interface statistics) or
    # "order" (several captures given out of time order: a note)
    kind: str = "capture"
    fatal: bool = False            # the reader could not go on
    detail: Any = None
    offsets_in: str = ""           # what ``offset`` counts when not the file's bytes
    source: str = ""               # the capture file, when several are read as one
    # what kind of problem it is and who sent the traffic concerned: the first
    # lines of each are shown, the rest only counted (decoder.SHOWN_PER_KIND)
    topic: str = ""
    sender: str = ""

    @property
    def stops_strict(self) -> bool:
        """Does ``--strict`` stop at it? Every problem but a capture's own
        count of the packets it lost and a note that several captures are
        not in time order (nothing is wrong with the files)."""
        return self.kind != "loss" and self.kind != "order"

    def __str__(self) -> str:
        where = []
        if self.frame is not None:
            where.append(f"frame {self.frame}")
        if self.offset is not None:
            where.append(f"byte offset {self.offset}"
                         + (f" of the {self.offsets_in}" if self.offsets_in else ""))
        if self.source:
            where.insert(0, self.source)
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


@dataclass(frozen=True, slots=True)
class Stall:
    """When one side of a TCP circuit advertised a zero window: it was not
    reading what the other side sent, which had to wait. ``episodes`` from
    a zero window to the next open one (or the circuit's end), their total
    and longest length, and the first one's start."""
    episodes: int
    total_ns: int
    longest_ns: int
    first_ts: int


@dataclass(frozen=True, slots=True)
class CircuitClosed:
    """The decoder forgot a TCP circuit (closed, reset or idle): later stages
    drop what they keep for it. ``key`` is the circuit key of its records;
    ``lost``: the bytes of each direction (from the client, from the server)
    the capture lacks; ``stalls``: a ``Stall`` (or None) for the client and
    for the server, when it stopped reading; ``ended_by``: who sent the first
    FIN or RST ("client FIN", "server RST"...), None if neither was seen."""
    key: tuple
    lost: tuple = (0, 0)
    stalls: tuple = (None, None)
    ended_by: Optional[str] = None
