"""UDP: one datagram in its sender's role -> its CA records (searches, replies, beacons)."""
from __future__ import annotations

from ..items import Packet, Problem
from ..net.link import Segment
from ._caproto import CLIENT, SERVER, Beacon, header_fields
from .counts import Counts
from .framing import decode_datagram
from .records import CLIENT_ROLE, SERVER_ROLE, Decoded, Record
from .roles import Roles

_new = tuple.__new__       # a NamedTuple without its Python-level __new__


def decode_udp(roles: Roles, counts: Counts, packet: Packet, seg: Segment):
    """(Decoded, problems) of one UDP packet; servers it announces go to ``roles``."""
    role = roles.udp_role(seg)
    if role is None:
        counts.skipped["UDP not CA"] += 1
        return Decoded(packet), ()
    commands, junk = decode_datagram(seg.payload, role, seg.src, roles.max_message)
    problems = []
    notes = []
    label = f"{seg.src}:{seg.sport}->{seg.dst}:{seg.dport}"
    if junk:
        if role == "probe":
            counts.skipped["UDP not CA"] += 1
            return Decoded(packet), ()
        counts.problems += 1
        text = f"UDP datagram {label} is not CA: {junk}"
        notes.append("pcapca: " + text)
        problems.append(Problem(text, frame=packet.frame, kind="decode",
                                topic="UDP datagram not CA", sender=seg.src))
        return Decoded(packet, (), tuple(notes)), problems
    role_name = CLIENT_ROLE if role is CLIENT else SERVER_ROLE
    records = []
    for cmd in commands:
        if cmd.__class__ is str:
            counts.problems += 1
            notes.append("pcapca: " + cmd)
            problems.append(Problem(f"UDP datagram {label}: {cmd}", frame=packet.frame,
                                    kind="decode", topic="UDP message not decoded",
                                    sender=seg.src))
            continue
        # beacons are sent by servers, also when the repeater forwards them
        records.append(Record(packet, seg, cmd.__class__, header_fields(cmd.header), None, 0,
                              cmd, SERVER_ROLE if cmd.__class__ is Beacon else role_name,
                              (seg.src, seg.sport)))
        if role is SERVER or cmd.__class__ is Beacon:
            roles.learn(cmd, seg)
    counts.messages += len(records)
    return _new(Decoded, (packet, tuple(records), tuple(notes), False)), problems
