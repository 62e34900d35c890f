"""The stats collectors' state is an explicit, picklable object: a capture
read half by one collector and on by its unpickled copy gives the report of
one uninterrupted pass. And the command dispatch table (ca/commands.py)."""
import copy
import json
import pickle

import caproto
import pytest

from pcapca.ca.channels import ChannelTracker
from pcapca.ca.circuits import Decoder
from pcapca.ca.commands import ANSWER_ID, CLASSES, KIND, REQUEST_ID, dispatch
from pcapca.capture.sets import Files
from pcapca.pipeline import decode_captures
from pcapca.stats.collector import StatsCollector, collect

from tests.conftest import fixture

RING = sorted(str(p) for p in fixture("ring").iterdir())


def _report(paths, copy_at=(), how=pickle):
    """The report of ``paths``, the collector replaced by a copy of itself
    (``how``: pickle or copy) after each item number in ``copy_at``."""
    current = [StatsCollector(timeline=True)]
    files = Files(paths)
    current[0].capture.start(files)

    def tap(items):                   # (CaptureFiles.tap, for whichever collector is current)
        for item in items:
            current[0].capture.see(item)
            yield item
        current[0].capture.done()
    decoder = Decoder()
    items, _, _ = decode_captures(files, bars=False, decoder=decoder,
                                  tracker=ChannelTracker(), tap=tap)
    for n, item in enumerate(items):
        if n in copy_at:
            current[0] = (pickle.loads(pickle.dumps(current[0])) if how is pickle
                          else copy.deepcopy(current[0]))
            current[0].capture.start(files)   # (the reader's frame map, which reads on)
        current[0].feed(item)
    current[0].decoder_stats = decoder.stats
    timeline = current[0].timeline
    return json.dumps(current[0].report()), (timeline.width, timeline.bins, timeline.pending)


@pytest.mark.parametrize("paths", [[str(fixture("corpus_libca.pcap"))],
                                   [str(fixture("twoservers.pcap"))],
                                   [str(fixture("slowclient.pcap"))], RING],
                         ids=["corpus_libca", "twoservers", "slowclient", "ring"])
@pytest.mark.parametrize("how", [pickle, copy], ids=["pickle", "deepcopy"])
def test_collector_copied_mid_capture_gives_the_same_report(paths, how):
    whole = _report(paths)
    assert json.loads(whole[0]) == collect(paths)        # (the same as run() gives)
    assert json.loads(whole[0])["capture"]["messages_counted"] > 20
    assert _report(paths, copy_at={5, 40, 41, 200}, how=how) == whole


def test_dispatch_joins_the_handlers_of_a_class_in_order():
    calls = []
    table = dispatch({caproto.ReadNotifyRequest: lambda r: calls.append(("a", r))},
                     {(caproto.ReadNotifyRequest, caproto.Beacon): lambda r: calls.append(("b", r))})
    assert set(table) == {caproto.ReadNotifyRequest, caproto.Beacon}
    table[caproto.ReadNotifyRequest](1)
    table[caproto.Beacon](2)
    assert calls == [("a", 1), ("b", 1), ("b", 2)]
    with pytest.raises(ValueError, match="not a caproto command class"):
        dispatch({int: print})


def test_command_facts_are_keyed_by_the_decoders_classes():
    for table in (REQUEST_ID, ANSWER_ID, KIND):
        assert set(table) <= set(CLASSES)
    assert len(CLASSES) == len({cls.__name__ for cls in CLASSES})
    # every handler of the channel state and of stats is keyed by such a class
    assert set(ChannelTracker()._handlers) <= set(CLASSES)
    c = StatsCollector()
    assert set(c._table) == set(CLASSES)
    assert c._table[caproto.EventAddResponse][2] == 4          # ("monitor")
    assert pickle.loads(pickle.dumps(c._table[caproto.EventAddResponse][0])) is not None

