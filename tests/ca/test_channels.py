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
