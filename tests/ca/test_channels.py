"""Channel state: the PV of every message, request/response pairing."""
import pytest

import pcapca
from pcapca.capture.reader import read_capture
from pcapca.ca.channels import ChannelTracker
from pcapca.ca.circuits import Decoder
from pcapca.items import Packet

from tests.conftest import fixture

NO_PV = {"VersionRequest", "VersionResponse", "HostNameRequest", "ClientNameRequest",
         "Beacon", "RepeaterRegisterRequest", "RepeaterConfirmResponse",
         "EchoRequest", "EchoResponse"}


def records(name):
    return list(pcapca.read(fixture(name)))


@pytest.mark.parametrize("name", ["basic.pcap", "libca.pcap", "rsrv.pcap", "session.pcapng",
                                  "sll2.pcap", "bigarray.pcap", "reuse.pcap"])
def test_every_channel_message_is_named(name):
    for r in records(name):
        if r.name in NO_PV:
            assert r.pv is None, r
        else:
            assert r.pv, r


def test_names_follow_ids_not_guesses():
    r = records("libca.pcap")
    # EventAdd updates are named through the subscription id, read replies
    # through the ioid, clears through the sid
    by_name = {}
    for x in r:
        by_name.setdefault(x.name, set()).add(x.pv)
    assert by_name["EventAddResponse"] == {"FIX:ticks"}
    assert by_name["EventCancelResponse"] == {"FIX:ticks"}
    assert len(by_name["ClearChannelResponse"]) == 7
    assert by_name["ClearChannelResponse"] == by_name["CreateChanResponse"]


def test_midstream_capture_names_nothing():
    r = records("midstream.pcap")
    assert len(r) == 9
    assert [x.pv for x in r] == [None] * 9
    # ...but still pairs what it saw: the ReadNotify replies have their requests
    replies = [x for x in r if x.name == "ReadNotifyResponse"]
    assert all(x.request_frame is not None for x in replies)


def test_ids_reused_after_clear():
    r = records("reuse.pcap")
    creates = [(x.command.cid, x.command.sid, x.pv) for x in r if x.name == "CreateChanResponse"]
    assert creates == [(0, 0, "FIX:dbl"), (0, 1, "FIX:long"), (0, 2, "FIX:dbl"), (1, 3, "FIX:limited")]
    reads = [(x.command.ioid, x.pv, float(x.command.data[0])) for x in r if x.name == "ReadNotifyResponse"]
    assert reads == [(0, "FIX:dbl", 3.25), (0, "FIX:long", 42.0), (0, "FIX:dbl", 3.25),
                     (3, "FIX:limited", 50.0)]
    clears = [x.pv for x in r if x.name.startswith("ClearChannel")]
    assert clears == ["FIX:dbl", "FIX:dbl", "FIX:long", "FIX:long", "FIX:dbl", "FIX:dbl",
                      "FIX:limited", "FIX:limited"]


def test_error_response_named_and_paired():
    r = records("reuse.pcap")
    errors = [x for x in r if x.name == "ErrorResponse"]
    assert [x.pv for x in errors] == ["FIX:limited", "FIX:limited"]
    assert [x.command.original_request.command for x in errors] == [19, 4]
    put = next(x for x in r if x.name == "WriteNotifyRequest")
    assert errors[0].request_frame == put.frame      # the failed put with completion


def _packet_times(name):
    return {p.frame: p.ts for p in read_capture(fixture(name)) if isinstance(p, Packet)}


@pytest.mark.parametrize("name", ["libca.pcap", "basic.pcap", "twoservers.pcap"])
def test_latency_is_the_time_since_the_request(name):
    times = _packet_times(name)
    r = records(name)
    paired = [x for x in r if x.request_frame is not None]
    kinds = {x.name for x in paired}
    assert {"ReadNotifyResponse", "SearchResponse", "CreateChanResponse"} <= kinds
    for x in paired:
        assert x.latency == (times[x.frame] - times[x.request_frame]) / 1e9
        assert x.latency >= 0
    frames = {}
    for x in r:
        frames.setdefault(x.frame, []).append(x)
    for x in paired:
        # the request is in that frame, from the client, about the same PV
        assert any(q.role == "client" and q.pv == x.pv for q in frames[x.request_frame]), x


def test_search_replies_named_from_two_servers():
    r = records("twoservers.pcap")
    replies = [(x.pv, x.sport) for x in r if x.name == "SearchResponse"]
    assert replies == [("FIX:common", 5064), ("FIX:common", 5066), ("FIX:common", 5066)]
    missing = [x.pv for x in r if x.name == "SearchRequest" and x.pv.startswith("FIX:missing")]
    assert len(missing) == 18 and set(missing) == {"FIX:missing_0", "FIX:missing_1", "FIX:missing_2"}


def test_state_dies_with_the_circuit():
    tracker = ChannelTracker()
    decoder = Decoder()
    n = sum(len(d.records) for d in tracker.run(decoder.run(read_capture(fixture("libca.pcap"))))
            if hasattr(d, "records"))
    assert n == 94
    assert tracker.circuits == {}           # the circuit was closed: its tables are gone
    assert decoder.circuits == {}


def test_names_end_at_their_nul():
    """Issue 21 point 16: a CA name is a C string; what follows its NUL in
    the padded payload is stale bytes (EPICS 3.13 clients), not the name.
    stalenames.pcap: search and create payloads "FIX:dbl\\0:GUN"."""
    r = records("stalenames.pcap")
    assert [(x.frame, x.name, x.pv, x.request_frame) for x in r] == [
        (1, "VersionRequest", None, None), (1, "SearchRequest", "FIX:dbl", None),
        (5, "VersionRequest", None, None), (5, "HostNameRequest", None, None),
        (5, "ClientNameRequest", None, None), (7, "VersionResponse", None, None),
        (9, "CreateChanRequest", "FIX:dbl", None), (10, "CreateChFailResponse", "FIX:dbl", 9)]
    # the messages themselves stay caproto's, padding included
    assert [x.command.name for x in r if x.name in ("SearchRequest", "CreateChanRequest")] == [
        "FIX:dbl\x00:GUN"] * 2


def test_channel_tables_per_circuit_are_bounded(tmp_path, monkeypatch):
    """Past MAX_CHANNELS cids (sids, subscription ids) on a circuit the oldest
    half is forgotten: their messages then have no PV."""
    import caproto as ca
    import pcapca.ca.channels
    from tests.builders import ca_bytes, tcp_capture
    monkeypatch.setattr(pcapca.ca.channels, "MAX_CHANNELS", 4)
    steps = [(True, ca_bytes(ca.VersionRequest(priority=0, version=13)))]
    for i in range(1, 11):
        steps += [(True, ca_bytes(ca.CreateChanRequest(name=f"C{i}", cid=i, version=13))),
                  (False, ca_bytes(ca.CreateChanResponse(data_type=6, data_count=1, cid=i,
                                                         sid=100 + i))),
                  (True, ca_bytes(ca.EventAddRequest(data_type=6, data_count=1, sid=100 + i,
                                                     subscriptionid=i, low=0.0, high=0.0, to=0.0,
                                                     mask=5)))]
    steps += [(True, ca_bytes(ca.ReadNotifyRequest(data_type=6, data_count=1, sid=100 + i, ioid=i)))
              for i in (1, 10)]
    path = tmp_path / "channels.pcap"
    path.write_bytes(tcp_capture(steps))
    tracker = ChannelTracker()
    sizes, reads = set(), []
    for item in tracker.run(Decoder().run(read_capture(str(path)))):
        for state in tracker.circuits.values():
            sizes.add((len(state.cids), len(state.sids), len(state.subs)))
            last = (list(state.cids), list(state.sids), list(state.subs))
        reads += [r.pv for r in getattr(item, "records", ()) if r.name == "ReadNotifyRequest"]
    assert max(sizes) == (4, 4, 4)
    assert (3, 3, 3) in sizes                # (5 -> 3: the oldest 2 forgotten)
    assert reads == [None, "C10"]
    # the newest are kept: the channels and subscriptions of C7..C10
    assert last == ([7, 8, 9, 10], [107, 108, 109, 110], [7, 8, 9, 10])


class _Visits(dict):
    """A table that counts the entries its loops visit."""
    visited = 0

    def __iter__(self):
        _Visits.visited += len(self)
        return super().__iter__()

    def items(self):
        _Visits.visited += len(self)
        return super().items()

    def values(self):
        _Visits.visited += len(self)
        return super().values()


def test_clearing_channels_visits_no_other_channel(monkeypatch):
    """N channels in one circuit, each with a monitor; half are cleared by the
    client, half disconnected by the server. Each clear scanned every
    subscription (and each disconnect every sid): quadratic, 22.6 s for 40k."""
    import caproto as ca
    from pcapca.ca import channels
    from pcapca.pipeline import decode
    from pcapca.ca.records import Decoded
    from tests.builders import BASIC, basic_recs, build, data, replace_payload

    states = []

    class Counted(channels.CircuitState):
        def __init__(self):
            super().__init__()
            self.sids, self.subs = _Visits(), _Visits()
            states.append(self)

    monkeypatch.setattr(channels, "CircuitState", Counted)
    _Visits.visited = 0
    n = 1000
    chans = range(100, 100 + n)
    half = n // 2
    recs = basic_recs()
    # (the FIX:counter channel of frames 13, 14, 34 and 49, 50 becomes the n channels)
    for index, messages in (
            (12, [ca.CreateChanRequest(f"CH:{c}", c, 13) for c in chans]),
            (13, [ca.CreateChanResponse(ca.ChannelType.DOUBLE, 1, c, c + n) for c in chans]),
            (33, [ca.EventAddRequest(ca.ChannelType.DOUBLE, 1, c + n, c, 0, 0, 0, 5)
                  for c in chans]),
            (48, [ca.ClearChannelRequest(c + n, c) for c in chans[:half]]),
            (49, [ca.ClearChannelResponse(c + n, c) for c in chans[:half]]
             + [ca.ServerDisconnResponse(c) for c in chans[half:]])):
        replace_payload(recs, index, b"".join(map(bytes, messages)))
    tracker = channels.ChannelTracker()
    named = {}
    for item in decode(build(data(BASIC)[:24], recs), tracker=tracker):
        if isinstance(item, Decoded):
            for r in item.records:
                named.setdefault(r.name, []).append(r.pv)
    want = [f"CH:{c}" for c in chans]
    assert named["CreateChanResponse"][1:] == want and named["EventAddRequest"] == want
    assert named["ClearChannelResponse"][1:] == want[:half]
    assert named["ServerDisconnResponse"] == want[half:]
    assert _Visits.visited == 0
    (state,) = states                                      # (the circuit's, now closed)
    assert (state.cids, state.sids, state.subs, state.sids_of, state.subs_of) == ({},) * 5
