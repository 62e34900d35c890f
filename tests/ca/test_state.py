"""The CA and net stages' state pickled mid-capture: unpickled, it goes on as if never stopped."""
import pickle

import pytest

from pcapca.ca._caproto import CLIENT, SERVER
from pcapca.ca.channels import ChannelTracker
from pcapca.ca.circuits import Decoder
from pcapca.ca.messages import LATER
from pcapca.ca.records import Decoded
from pcapca.capture.reader import read_capture
from pcapca.items import Packet

from tests.conftest import fixture


def _rows(items):
    """What a record is: frame, PV, name, pairing and the caproto object's repr."""
    return [(r.frame, r.pv, r.name, r.latency, r.request_frame, repr(r.command))
            for item in items if item.__class__ is Decoded for r in item.records]


def _state_at(items, cut):
    """Decoder and ChannelTracker after the items before ``cut``, and their rows."""
    decoder, tracker = Decoder(), ChannelTracker()
    rows = _rows(tracker.run(decoder.run(items[:cut], end=False)))
    return decoder, tracker, rows


def _resumed(items, cut):
    decoder, tracker, rows = _state_at(items, cut)
    decoder, tracker = pickle.loads(pickle.dumps((decoder, tracker)))
    for circuit in decoder.circuits.values():    # (the role's rule cache stays shared)
        assert [d.later for d in circuit.decoders] == [LATER[CLIENT], LATER[SERVER]]
        assert all(d.later is LATER[d.role] for d in circuit.decoders)
    return rows + _rows(tracker.run(decoder.run(items[cut:])))


def _half(items):
    packets = [i for i, item in enumerate(items) if item.__class__ is Packet]
    return packets[len(packets) // 2]


@pytest.mark.parametrize("name", ["libca.pcap", "session.pcapng", "mtu1500.pcap",
                                  "fragments.pcap", "lossy.pcap", "twoif.pcapng"])
def test_pickled_mid_capture_same_records(name):
    items = list(read_capture(fixture(name)))
    whole = _rows(ChannelTracker().run(Decoder().run(items)))
    assert whole
    assert _resumed(items, _half(items)) == whole


def _fragments(decoder):
    return bool(decoder.fragments.pending)


def _partial(decoder):
    return any(d.buf for c in decoder.circuits.values() for d in c.decoders)


def _hole(decoder):
    return any(h.pending for c in decoder.circuits.values() for h in c.halves)


@pytest.mark.parametrize("name, waiting", [("fragments.pcap", _fragments),
                                           ("mtu1500.pcap", _partial), ("lossy.pcap", _partial)])
def test_pickled_while_bytes_wait(name, waiting):
    """Cut where IPv4 fragments or a partial CA message wait."""
    items = list(read_capture(fixture(name)))
    whole = _rows(ChannelTracker().run(Decoder().run(items)))
    decoder, tracker = Decoder(), ChannelTracker()
    for cut, item in enumerate(items, 1):
        list(tracker.run(decoder.run([item], end=False)))
        if waiting(decoder):
            break
    assert waiting(decoder)
    assert _resumed(items, cut) == whole


def test_pickled_while_segments_wait_behind_a_hole():
    """Two TCP segments captured in the wrong order: cut after the later one."""
    items = list(read_capture(fixture("bigarray.pcap")))
    decoder = Decoder()
    for j, item in enumerate(items[:-1]):
        ahead = pickle.loads(pickle.dumps(decoder))
        list(ahead.run([items[j + 1]], end=False))
        if _hole(ahead):
            break
        list(decoder.run([item], end=False))
    items[j], items[j + 1] = items[j + 1], items[j]
    whole = _rows(ChannelTracker().run(Decoder().run(items)))
    decoder, tracker, rows = _state_at(items, j + 1)
    assert _hole(decoder)
    assert _resumed(items, j + 1) == whole
