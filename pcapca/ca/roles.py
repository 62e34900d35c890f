"""Who is the CA client and who the server: TCP circuit ends and UDP datagram roles, decided here."""
from __future__ import annotations

from typing import Iterable

from ..net.link import TCP_ACK, TCP_SYN, Segment
from ._caproto import CLIENT, SERVER, Beacon, SearchResponse
from .framing import decode_datagram

CA_SERVER_PORT = 5064
CA_REPEATER_PORT = 5065
_ANY = ("255.255.255.255", "0.0.0.0")      # an address that means "the sender"


class Roles:
    """The ports known to serve CA and the servers (ip, port) that search
    replies and beacons announced (one entry per announced server, not bounded yet)."""
    __slots__ = ("server_ports", "udp_ports", "repeater_port", "servers", "max_message")

    def __init__(self, server_ports: Iterable[int], repeater_port: int, max_message: int):
        self.server_ports = set(server_ports)        # TCP server / UDP search ports
        self.udp_ports = set(self.server_ports)      # ...and search ports learned
        self.repeater_port = repeater_port
        self.servers = set()                         # (ip, port) learned from replies/beacons
        self.max_message = max_message

    def tcp_ends(self, seg: Segment):
        """(client, server), each (ip, port), of a new TCP circuit whose
        first packet seen is ``seg``."""
        src = (seg.src, seg.sport)
        dst = (seg.dst, seg.dport)
        flags = seg.flags
        if flags & TCP_SYN:                  # the SYN's sender is the client
            return (dst, src) if flags & TCP_ACK else (src, dst)
        if dst in self.servers or (src not in self.servers and seg.dport in self.server_ports):
            return src, dst                  # a known server port
        if src in self.servers or seg.sport in self.server_ports:
            return dst, src
        if seg.dport < seg.sport:
            return src, dst                  # else: the lower port serves
        return dst, src

    def serves_ca(self, server) -> bool:
        """Is ``server`` (ip, port) known to speak CA?"""
        return server in self.servers or server[1] in self.server_ports

    def serves(self, server) -> None:
        """``server`` (ip, port) spoke CA."""
        self.servers.add(server)

    def udp_role(self, seg: Segment):
        """CLIENT or SERVER: the sender of a UDP datagram; None: not CA."""
        sport, dport = seg.sport, seg.dport
        if dport in self.udp_ports:
            return CLIENT
        if sport in self.udp_ports:
            return SERVER
        if dport == self.repeater_port:
            return CLIENT
        if sport == self.repeater_port:
            return SERVER
        # A search sent to a port we did not know yet (e.g. a server on 5066
        # named in EPICS_CA_ADDR_LIST) starts with a version request.
        p = seg.payload
        if len(p) >= 32 and p[0:2] == b"\x00\x00" and p[2:4] == b"\x00\x00" and p[16:18] == b"\x00\x06":
            commands, junk = decode_datagram(p, CLIENT, seg.src, self.max_message)
            if not junk:
                self.udp_ports.add(dport)
                return CLIENT
        return None

    def learn(self, cmd, seg: Segment) -> None:
        """Server addresses announced by search replies and beacons."""
        if cmd.__class__ is SearchResponse:
            ip = cmd.ip
            if ip in _ANY:
                ip = seg.src
            self.servers.add((ip, cmd.port))
        elif cmd.__class__ is Beacon:
            ip = cmd.address
            if ip in _ANY:
                ip = seg.src
            self.servers.add((ip, cmd.server_port))
