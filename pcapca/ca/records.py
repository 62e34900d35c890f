"""What the decoder produces: one ``Record`` per CA message, grouped by packet.

A ``Record`` has the attributes of the items of caproto's ``shark()``
(``timestamp, ethernet, ip, transport, src, dst, command``) plus pcapca's own
(``frame, sport, dport, proto, role, name, pv, request_frame, latency``).
The dpkt objects behind ``ethernet``/``ip``/``transport`` are built only
when asked for.

The channel-state stage fills in ``pv``, ``request_frame`` and ``latency``;
no later stage changes a record.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

from ..items import Packet
from ..net.link import PROTO_TCP, Segment, dpkt_layers
from .messages import build_later

CLIENT_ROLE = "client"
SERVER_ROLE = "server"


class Record:
    __slots__ = ("packet", "segment", "cls", "fields", "msg", "hsize", "_command", "role",
                 "circuit", "pv", "request_frame", "latency", "_layers")

    def __init__(self, packet: Packet, segment: Segment, cls, fields: tuple, msg: Optional[bytes],
                 hsize: int, command, role: str, circuit):
        self.packet = packet
        self.segment = segment
        self.cls = cls              # the caproto class of the message
        self.fields = fields        # its header, as a HEADER_FIELDS tuple
        self.msg = msg              # its bytes (None for UDP messages: built at once)
        self.hsize = hsize          # header size in msg
        self._command = command     # the caproto object, or None until asked for
        self.role = role            # "client" or "server": who sent it
        self.circuit = circuit      # key of the TCP circuit / UDP peer pair
        self.pv: Optional[str] = None
        self.request_frame: Optional[int] = None
        self.latency: Optional[float] = None
        self._layers = None

    @property
    def command(self):
        """The caproto command object (built on first use: see ca_decode)."""
        command = self._command
        if command is None:
            command = self._command = build_later(self.cls, self.msg, self.hsize)
        return command

    # -- pcapca's own attributes
    @property
    def frame(self) -> int:
        return self.packet.frame

    @property
    def ts(self) -> int:
        """Exact timestamp, integer nanoseconds since the epoch."""
        return self.packet.ts

    @property
    def timestamp(self) -> float:
        """Seconds as a float, computed as caproto-shark does (sec + frac)."""
        return self.packet.timestamp

    @property
    def src(self) -> str:
        return self.segment.src

    @property
    def dst(self) -> str:
        return self.segment.dst

    @property
    def sport(self) -> int:
        return self.segment.sport

    @property
    def dport(self) -> int:
        return self.segment.dport

    @property
    def proto(self) -> str:
        return "tcp" if self.segment.proto == PROTO_TCP else "udp"

    @property
    def name(self) -> str:
        return self.cls.__name__

    # -- caproto-shark's dpkt objects, built on demand
    def _dpkt(self):
        if self._layers is None:
            self._layers = dpkt_layers(self.packet.interface.linktype,
                                       self.packet.data, self.segment.ip_offset)
        return self._layers

    @property
    def ethernet(self):
        return self._dpkt()[0]

    @property
    def ip(self):
        return self._dpkt()[1]

    @property
    def transport(self):
        return self._dpkt()[2]

    def __repr__(self) -> str:
        return (f"<Record frame={self.frame} {self.src}:{self.sport}->{self.dst}:{self.dport} "
                f"{self.role} {self.name} pv={self.pv!r}>")


class Decoded(NamedTuple):
    """One input packet and what the decoder made of it (immutable; a
    NamedTuple because one is built per packet)."""
    packet: Packet
    records: Tuple[Record, ...] = ()
    notes: Tuple[str, ...] = ()          # decode problems attributed to this packet
    # True when the messages were completed only at the end of the capture,
    # after the packet itself had been passed on (data waiting behind a hole)
    late: bool = False
