"""The filtered print's shortcut: packets a filter would drop, skipped in bulk.

``pcapca print --pv X`` on a long capture spends most of its time on packets
that in the end change nothing but counters: the monitor updates and read
replies of other PVs, bare ACKs. Every stage would build its objects for
them (Packet, Segment, Record) only for the filter to drop the records.

The legacy pcap reader hands a ``Skimmer`` each run of complete, plausible
packet records (up to ``MAX_RUN``; the pcapng reader, blocks). The skimmer parses the link,
IPv4, TCP and first CA headers of all of them at once with numpy, then goes
through them in order and skips the packets it can prove would leave only
counters and dropped records, judging from the live state of the decoder
(circuit, TCP sequence, CA framing) and of the channel tracker (which PV an
id names). Every other packet goes back to the reader and through the whole
pipeline, which has processed the packets before it by then (the stages are
generators). A packet is skipped only if it is:

- TCP over IPv4 without options, no SYN/FIN/RST, completely captured, in a
  circuit known to carry CA, not acknowledging bytes the capture lacks,
  and either without data or carrying exactly the next bytes of its
  direction, which start and end on message boundaries;
- made of messages the decoder keeps unbuilt (``StreamDecoder.later_rule``),
  whose channel-state handling needs only header ids
  (``ChannelTracker.skim_rules``) and which the filter drops by PV name or
  command (``Filter.drops``);
- not the packet after which the decoder looks for idle circuits.

What the stages would have done with it is done here: the decoder's
counters, the circuit's time, the direction's next sequence number and
framing state, the channel state's table of pending ioids.
tests/fast/test_skim.py compares the output with and without the shortcut.
"""
from __future__ import annotations

import socket
import struct
from typing import Callable, Iterator, List

import numpy as np

from ..ca.channels import ChannelTracker
from ..ca.circuits import EVICT_EVERY, Decoder
from ..net.link import (DLT_EN10MB, DLT_IPV4, DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_RAW, DLT_RAW_BSD,
                        DLT_RAW_OPENBSD, ETH_IPV4, PROTO_TCP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN)
from ..net.tcp_reassembly import seq_diff

# link type -> (offset of the IPv4 header, offset of the EtherType or None)
LINKS = {DLT_EN10MB: (14, 12), DLT_LINUX_SLL: (16, 14), DLT_LINUX_SLL2: (20, 0),
         DLT_RAW: (0, None), DLT_RAW_BSD: (0, None), DLT_RAW_OPENBSD: (0, None),
         DLT_IPV4: (0, None)}
MIN_RECORDS = 64          # fewer records in a window (a live pipe): not worth numpy's set-up
MAX_RUN = 8192            # records per run at most (bounds what a damaged window costs)
_header = struct.Struct(">HHHHII").unpack_from
_pack_ip = struct.Struct("!I").pack
_ntoa = socket.inet_ntoa
_NOT_PLAIN = TCP_SYN | TCP_FIN | TCP_RST
_MIX = 0x9E3779B1        # (see _columns: flows told apart by one sort)


class Skimmer:
    def __init__(self, decoder: Decoder, tracker: ChannelTracker, drops: Callable):
        self.decoder = decoder
        self.tracker = tracker
        self.drops = drops             # Filter.drops
        self._plans = ({}, {})         # per direction (client, server): see _plan()
        self.skipped = 0               # packets skipped (for tests and curiosity)

    @staticmethod
    def handles(linktype: int) -> bool:
        return linktype in LINKS

    def wants(self, interfaces) -> bool:
        """Worth trying on a pcapng section with these interfaces? Not when
        the decoder compares every packet with the others (several
        interfaces: packets captured twice), nor for an unknown link type."""
        return (len(interfaces) == 1 and not self.decoder.finds_duplicates
                and self.handles(interfaces[0][0].linktype))

    def run(self, buf: bytes, offsets: List[int], caplens: List[int], tss: List[int],
            frame: int, linktype: int, data_at: int = 16) -> Iterator[int]:
        """Indices of the records at ``offsets`` in ``buf`` (the packet's bytes
        ``data_at`` bytes in, frame numbers from ``frame``) that must be read
        as packets; the others are accounted for."""
        decoder = self.decoder
        cols, flow_ids, pays = _columns(buf, offsets, caplens, linktype, data_at)
        flows = [None] * len(flow_ids)       # what _flow says of each, while valid
        stats = decoder.stats
        max_message = decoder.max_message
        rules = self.tracker.skim_rules
        skim = self.tracker.skim
        skim_all = self.tracker.skim_all
        drops = self.drops
        # the decoder's counters and generation, kept here and handed over (and
        # back) around each packet it gets: the decoder works only then
        packets, messages, generation = stats.packets, stats.messages, decoder.generation
        # (the decoder looks for idle circuits after the packet that makes
        # stats.packets a multiple of EVICT_EVERY: that one it must get)
        evict_before = packets - packets % EVICT_EVERY + EVICT_EVERY - 1
        given = 0
        for i, (ok, f, seq, ack, plen, kind, size, p1, p2, ts) in enumerate(zip(*cols, tss)):
            if ok and packets != evict_before:
                flow = flows[f]
                if flow is None or flow[0] != generation:
                    flow = flows[f] = self._flow(*flow_ids[f])
                _, circuit, half, other, stream, state, plan_of = flow
                if circuit is not None:
                    nxt = other.next_seq
                    # (ack is -1 without the ACK flag) not acknowledging bytes the capture lacks:
                    if ack < 0 or nxt is None or ack == nxt or seq_diff(ack, nxt) <= 0:
                        if not plen:
                            packets += 1
                            circuit.last_ts = ts
                            continue
                        # at a message boundary, nothing buffered (see StreamDecoder.feed)
                        if (seq == half.next_seq and not half.pending and stream.synced
                                and not stream.buf and not stream.skip):
                            if size + 16 == plen and size != 0xFFFF and size <= max_message:
                                # one message (most packets): its header is in the columns
                                plan = plan_of.get(kind) or _plan(plan_of, stream, kind, rules)
                                n = (size >= plan[1] and skim(state, plan[2], (p1, p2), plan[0],
                                                              frame + i, ts, drops))
                            else:
                                n = _skim_messages(buf, int(pays[i]), plen, plan_of, stream,
                                                   state, frame + i, ts, max_message, rules,
                                                   skim_all, drops)
                            if n:
                                packets += 1
                                messages += n
                                circuit.last_ts = ts
                                half.next_seq = (seq + plen) & 0xFFFFFFFF
                                stream.fresh = stream.partial = False    # (as feed does)
                                continue
            stats.packets, stats.messages = packets, messages
            yield i
            given += 1
            packets, messages, generation = stats.packets, stats.messages, decoder.generation
            evict_before = packets - packets % EVICT_EVERY + EVICT_EVERY - 1
        stats.packets, stats.messages = packets, messages
        self.skipped += len(offsets) - given

    def _flow(self, a: int, b: int) -> tuple:
        """What the loop of ``run`` needs of the direction of a circuit that
        packets from ``a`` to ``b`` (address << 16 | port) belong to, valid
        while the decoder's circuits stay the same (``generation``):
        (generation, circuit, half stream, the other half, stream decoder,
        channel state, plans), or with circuit None when it is not known to
        carry CA."""
        decoder = self.decoder
        key = (_ntoa(_pack_ip(a >> 16)), a & 0xFFFF, _ntoa(_pack_ip(b >> 16)), b & 0xFFFF)
        circuit = decoder.circuits.get(key)
        if circuit is None or circuit.is_ca is not True:
            # (when the decoder learns that it is CA, its generation changes)
            flow = (decoder.generation, None, None, None, None, None, None)
        else:
            side = 0 if (key[1] == circuit.client[1] and key[0] == circuit.client[0]) else 1
            flow = (decoder.generation, circuit, circuit.halves[side], circuit.halves[1 - side],
                    circuit.decoders[side], self.tracker.state_of(circuit.key), self._plans[side])
        return flow


def _plan(plans: dict, stream, kind: int, rules) -> tuple:
    """(class, smallest payload size, skim rule) of the messages of ``kind``
    (data count << 32 | command << 16 | data type) that the shortcut takes
    from ``stream`` (a smallest size no message has when it takes none), kept
    in ``plans``. The smallest size is also the one that holds the count's
    values (``StreamDecoder.later_rule``): one comparison per packet."""
    plan = plans.get(kind)
    if plan is None:
        rule = stream.later_rule((kind >> 16) & 0xFFFF, kind & 0xFFFF)
        skim_rule = rules.get(rule[0]) if rule is not None else None
        if len(plans) >= MAX_PLANS:
            plans.clear()                 # (counts from the wire: the table stays bounded)
        plan = plans[kind] = ((rule[0], max(rule[1], (kind >> 32) * rule[2] + rule[3]),
                               skim_rule) if skim_rule else _NONE)
    return plan


_NONE = (None, 1 << 62, None)
MAX_PLANS = 4096


def _skim_messages(buf: bytes, pos: int, length: int, plans: dict, stream, state, frame: int,
                   ts: int, max_message: int, rules, skim_all, drops) -> int:
    """How many messages exactly fill ``buf[pos:pos+length]``, if the shortcut
    takes them all and the filter drops them all (then skimmed), else 0."""
    found = []
    end = pos + length
    while pos < end:
        if end - pos < 16:
            return 0
        command, size, dtype, count, p1, p2 = _header(buf, pos)
        if size == 0xFFFF or size > max_message or pos + 16 + size > end:
            return 0
        cls, smallest, rule = _plan(plans, stream, count << 32 | command << 16 | dtype, rules)
        if size < smallest:
            return 0
        found.append((cls, (p1, p2), rule))
        pos += 16 + size
    return len(found) if skim_all(state, found, frame, ts, drops) else 0


def _columns(buf: bytes, offsets: List[int], caplens: List[int], linktype: int,
             data_at: int):
    """(columns, flows, payload offsets). ``columns``, per record, as lists:
    ok, flow (an index in ``flows``), seq, ack (-1 without the ACK flag),
    payload size, and the first CA header's (data count << 32 | command << 16
    | data type), payload size, parameter1, parameter2. ``ok``: a TCP/IPv4 packet without
    options or SYN/FIN/RST, wholly captured, whose payload is empty or at
    least a CA header long; the other columns mean something only where
    ``ok`` (where not, they may have been read elsewhere). ``flows``: the
    ((source address << 16 | port), (destination address << 16 | port)) of
    the flows in the window; payload offsets in ``buf``: an array."""
    ip_at, etype_at = LINKS[linktype]
    # every byte offset of buf as the start of a big-endian 32-bit word
    words = np.ndarray(shape=(len(buf) - 3,), dtype=">u4", buffer=buf, strides=(1,))
    last = len(buf) - 4
    frame = np.asarray(offsets, dtype=np.int64) + data_at
    caplen = np.asarray(caplens, dtype=np.int64)
    # (an ok packet's IPv4 and TCP headers and first CA header are within
    # its record: clamping moves only the others')
    ip = np.minimum(frame + ip_at, last - 36)

    def word(at):
        return words[at].astype(np.int64)

    w0 = word(ip)                             # version/IHL, TOS, total length
    total = w0 & 0xFFFF
    w32 = word(ip + 32)                       # TCP data offset, flags, window
    thl = (w32 >> 26) & 0x3C
    flags = (w32 >> 16) & 0xFF
    ports = word(ip + 20)
    plen = total - 20 - thl
    ok = (((w0 >> 24) == 0x45) & (((word(ip + 8) >> 16) & 0xFF) == PROTO_TCP)
          & ((word(ip + 4) & 0x3FFF) == 0) & (thl >= 20) & (plen >= 0)
          & (ip_at + total <= caplen) & ((flags & _NOT_PLAIN) == 0)
          & ((plen == 0) | (plen >= 16)))
    if etype_at is not None:
        ok &= (word(np.minimum(frame + etype_at, last)) >> 16) == ETH_IPV4
    ack = np.where(flags & TCP_ACK, word(ip + 28), -1)
    pay = ip + 20 + thl
    at = np.minimum(pay, last - 12)
    w = word(at)                              # command, payload size
    w4 = word(at + 4)                         # data type, data count
    # the flows: ((source address << 16 | port), (destination address << 16 | port))
    src = (word(ip + 12) << 16) | (ports >> 16)
    dst = (word(ip + 16) << 16) | (ports & 0xFFFF)
    # one sort, of a mix of the two (exact: checked, else one sort each)
    mixed = src * _MIX ^ dst
    _, first, flow = np.unique(mixed, return_index=True, return_inverse=True)
    flow = flow.reshape(-1)
    if not ((src[first][flow] == src).all() and (dst[first][flow] == dst).all()):
        _, first, flow = np.unique(_index_of(src) * (len(src) + 1) + _index_of(dst),
                                   return_index=True, return_inverse=True)
    return ((ok.tolist(), flow.tolist(), word(ip + 24).tolist(), ack.tolist(), plen.tolist(),
             (((w4 & 0xFFFF) << 32) | ((w >> 16) << 16) | (w4 >> 16)).tolist(),
             (w & 0xFFFF).tolist(),
             word(at + 8).tolist(), word(at + 12).tolist()),
            list(zip(src[first].tolist(), dst[first].tolist())), pay)


def _index_of(values):
    """Small integers that are equal where ``values`` are."""
    return np.unique(values, return_inverse=True)[1].reshape(-1)
