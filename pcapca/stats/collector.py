"""``pcapca stats``: one pass over the decoded messages, each handed to the collectors of its command.

Usage from Python::

    from pcapca.stats.collector import collect
    report = collect(["a.pcap", "b.pcap"])      # a JSON-able dict
"""
from __future__ import annotations

import random
from typing import Callable, Optional, Sequence

from ..ca.channels import ChannelTracker
from ..ca.circuits import Decoder
from ..ca.commands import CLASSES, KIND, KINDS, dispatch
from ..ca.records import Decoded
from ..capture.progress import open_with_progress
from ..capture.sets import FileFrames
from ..items import CircuitClosed, Problem
from ..pipeline import decode_captures
from . import flow
from .beacons import Beacons
from .bounds import SEED
from .capture import CaptureFiles
from .circuits import Circuits
from .errors import Errors
from .report import build
from .requests import Requests
from .searches import Searches
from .subscriptions import Subscriptions
from .timeline import Timeline
from .traffic import Traffic


class StatsCollector:
    """Feed it the items of ``ChannelTracker.run(Decoder.run(...))`` (``run``
    does); call ``report()`` at the end. ``keep`` is the filter predicate (or
    None). Its state is the collectors' (picklable: a capture can be read on
    by another process)."""

    def __init__(self, *, keep: Optional[Callable] = None, timeline: bool = False):
        self.keep = keep
        rng = random.Random(SEED)
        self.capture = CaptureFiles()
        self.timeline = Timeline() if timeline else None
        self.traffic = Traffic(rng)
        self.searches = Searches(self.traffic, self.timeline)
        self.requests = Requests(self.capture)
        self.subscriptions = Subscriptions(self.capture)
        self.circuits = Circuits(self.capture, self.traffic, self.requests, self.subscriptions,
                                 filtered=keep is not None)
        self.errors = Errors(self.capture, self.traffic)
        self.beacons = Beacons(self.capture, rng)
        self.decoder_stats = None
        # One table: command class -> (handler before the filter, TCP only:
        # (record, circuit); handler after it: (record, PV row, circuit);
        # index of its kind in the timeline)
        before = dispatch(self.circuits.handlers(), flow.handlers(),
                          self.subscriptions.update_handlers(), self.requests.answer_handlers())
        after = dispatch(self.requests.handlers(), self.subscriptions.handlers(),
                         self.traffic.handlers(), self.searches.handlers(),
                         self.errors.handlers(), self.beacons.handlers())
        self._table = {cls: (before.get(cls), after.get(cls), KINDS.index(KIND.get(cls, "other")))
                       for cls in CLASSES}
        self._other = (None, None, KINDS.index("other"))

    # ---------------------------------------------------------------- input
    def run(self, paths: Sequence[str], decoder: Decoder,
            tracker: Optional[ChannelTracker] = None,
            on_problem: Optional[Callable[[Problem], Optional[bool]]] = None,
            opener: Optional[Callable] = None, anchor: Optional[Callable] = None) -> None:
        """Read ``paths`` in order, as one capture (pipeline.decode_captures);
        ``on_problem`` gets every Problem and may return True to stop reading
        (the report then covers what was read). ``opener(path)``: a
        ``Progress`` for each file (a bar); ``anchor``: ``pipeline.first_packet``'s."""
        frames = FileFrames(paths)
        if opener is None:              # (a binary stream given for a path is read as it is)
            sources = dict(zip(frames.paths, paths))
            opener = lambda path: open_with_progress(sources[path], enabled=False)  # noqa: E731
        self.capture.start(frames)
        items, tick, close = decode_captures(self.capture.frames, bars=False, decoder=decoder,
                                             tracker=tracker, anchor=anchor, tap=self._tap,
                                             opener=opener)
        for item in items:
            if tick is not None and item.__class__ is Decoded:
                tick()
            if self.feed(item, on_problem):
                break                           # the caller wants to stop (--strict)
        if close is not None:
            close()
        self.decoder_stats = decoder.counts

    def _tap(self, items):
        """The reader's items: each file's packets counted (self.capture)."""
        for item in items:
            self.capture.see(item)
            yield item
        self.capture.done()

    def feed(self, item, on_problem: Optional[Callable] = None) -> bool:
        """One item of the channel state stage; True: ``on_problem`` says stop."""
        cls = item.__class__
        if cls is Decoded:
            self.circuits.last_packet_ts = item.packet.ts
            for record in item.records:
                self.add(record)
        elif cls is CircuitClosed:
            self.circuits.close(item.key, item.lost, item.stalls, item.ended_by)
        elif cls is Problem and item.kind != "order":   # (the report says so: files_in_time_order)
            return on_problem is not None and bool(on_problem(item))
        return False

    # ---------------------------------------------------------------- per message
    def add(self, record) -> None:
        # (header fields where they serve: most messages' caproto objects are
        # never built, see ca.framing.build_later)
        before, after, kind = self._table.get(record.cls, self._other)
        circuit = None
        if record.proto == "tcp":
            circuit = self.circuits.of(record)
            if before is not None:
                before(record, circuit)
        if self.keep is not None and not self.keep(record):
            return
        pv = self.traffic.count(record, circuit)
        if self.timeline is not None:
            self.timeline.add(record.ts, kind)
        if after is not None:
            after(record, pv, circuit)

    # ---------------------------------------------------------------- the report
    def report(self) -> dict:
        return build(self)


def collect(paths: Sequence[str], *, decoder: Optional[Decoder] = None, keep=None,
            timeline: bool = False, on_problem=None) -> dict:
    """The report of ``paths`` (read in order as one capture) as a dict.
    With ``timeline=True`` the dict has a ``"_timeline"`` entry (for plot())."""
    collector = StatsCollector(keep=keep, timeline=timeline)
    collector.run(paths, decoder or Decoder(), on_problem=on_problem)
    out = collector.report()
    if timeline:
        out["_timeline"] = collector.timeline
    return out
