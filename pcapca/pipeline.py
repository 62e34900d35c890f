"""The stages joined: capture reader -> decoder -> channel state (-> filter).

Each stage is a generator; nothing is kept per packet, so memory does not
grow with the capture's length.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, Optional

from .ca.channels import ChannelTracker
from .ca.circuits import Decoder
from .ca.records import Decoded, Record
from .capture.progress import open_with_progress
from .capture.reader import label_offsets, offsets_in, read_capture
from .capture.sets import Files, probe_all, read_captures
from .capture.sources import ByteSource, open_source
from .fast.skim import Skimmer
from .items import Packet, Problem


def first_packet(items: Iterable, anchor: Callable[[int], None]) -> Iterator:
    """The reader's ``items``, calling ``anchor(ts)`` with the time stamp of
    the first packet (``Filter.anchor``: ``--since +SECONDS``)."""
    items = iter(items)
    for item in items:
        if item.__class__ is Packet:
            anchor(item.ts)
            yield item
            break
        yield item
    yield from items


def anchor_of(*users) -> Optional[Callable[[int], None]]:
    """One callable handing the capture's first packet time to each of
    ``users`` (a Filter, a Template, None) that counts from it (``relative``:
    ``+SECONDS``, ``{time_relative}``), or None if none does."""
    anchors = [user.anchor for user in users if getattr(user, "relative", False)]
    if not anchors:
        return None
    if len(anchors) == 1:
        return anchors[0]
    return lambda ts: [anchor(ts) for anchor in anchors]


def _stages(read: Callable, decoder: Optional[Decoder], tracker: Optional[ChannelTracker],
            drops: Optional[Callable], anchor: Optional[Callable] = None,
            tap: Optional[Callable] = None) -> Iterator:
    """The decoder and the channel state over ``read(skim)``, a reader's
    items (``skim``: the filtered print's shortcut for ``drops``, or None;
    ``anchor``: see ``first_packet``; ``tap(items)``: the reader's items
    passed on, seen on the way: stats counts each file's packets)."""
    decoder = decoder or Decoder()
    tracker = tracker or ChannelTracker()
    skim = None
    if drops is not None:
        skim = Skimmer(decoder, tracker, drops)
    items = read(skim)
    if tap is not None:
        items = tap(items)
    if anchor is not None:
        items = first_packet(items, anchor)
    return tracker.run(decoder.run(items))


def decode(source, *, decoder: Optional[Decoder] = None,
           tracker: Optional[ChannelTracker] = None, strict: bool = False,
           drops: Optional[Callable] = None, anchor: Optional[Callable] = None,
           tap: Optional[Callable] = None) -> Iterator:
    """Decoded packets (plus Passthrough and Problem items) of a capture.

    ``drops``: a ``Filter.drops``; packets whose messages it drops (all of
    them) may then be left out, counted but not yielded (``pcapca.skim``)."""
    src = source if isinstance(source, ByteSource) else open_source(source)
    offsets = offsets_in(src)          # (a gzip-compressed capture; before reading starts)
    stream = _stages(lambda skim: read_capture(src, strict=strict, skim=skim),
                     decoder, tracker, drops, anchor, tap)
    return label_offsets(stream, offsets) if offsets else stream


def decode_files(files: Files, *, opener: Callable, decoder: Optional[Decoder] = None,
                 tracker: Optional[ChannelTracker] = None, strict: bool = False,
                 drops: Optional[Callable] = None, anchor: Optional[Callable] = None,
                 tap: Optional[Callable] = None) -> Iterator:
    """``decode`` for several captures read in order as one (see
    ``pcapca.capture_set``): every problem names its file."""
    stream = _stages(lambda skim: read_captures(files, opener=opener, strict=strict, skim=skim),
                     decoder, tracker, drops, anchor, tap)
    for item in stream:
        if item.__class__ is Problem:
            # (the decoder's: it knows the frame, not the file)
            item = files.label(item, len(files.starts) - 1)
        yield item


def decode_captures(files: Files, *, bars: bool, decoder: Optional[Decoder] = None,
                    strict: bool = False, drops: Optional[Callable] = None,
                    anchor: Optional[Callable] = None, tracker: Optional[ChannelTracker] = None,
                    tap: Optional[Callable] = None, opener: Optional[Callable] = None):
    """``decode`` of the one capture of ``files``, or ``decode_files`` of
    several, each file with a progress bar when ``bars`` (and stderr is a
    terminal): (items, tick, close). ``tick()``, when not None, is to be
    called per Decoded item (the bar of one capture moves with them; a set's
    reader moves its bars itself); ``close()``, when not None, at the end.
    ``opener(path)``: the file's Progress, instead of one with a bar when ``bars``."""
    if opener is None:
        def opener(path):
            return open_with_progress(path, enabled=bars)
    if files.several:
        items = decode_files(files, opener=opener, decoder=decoder, tracker=tracker,
                             strict=strict, drops=drops, anchor=anchor, tap=tap)
        return items, None, None
    progress = opener(files.paths[0])
    items = decode(progress.src, decoder=decoder, tracker=tracker, strict=strict, drops=drops,
                   anchor=anchor, tap=tap)
    return items, (progress.update if progress.active else None), progress.close


def read(source, *, on_problem: Optional[Callable[[Problem], None]] = None,
         decoder: Optional[Decoder] = None) -> Iterator[Record]:
    """Yield every CA message of a capture as a ``Record``.

    ``source`` is a path, ``"-"`` for stdin, or a binary file object; or a
    list (tuple) of paths: several captures read in order as one (a ring
    buffer), frames numbered across them as ``mergecap -a`` numbers them. A
    record has the attributes of caproto's ``shark()`` items (timestamp,
    command, src, dst, ip, transport, ethernet) and pcapca's own (frame,
    ts, sport, dport, proto, role, name, pv, request_frame, latency).
    Problems (damaged file, junk on CA ports) go to ``on_problem``.
    """
    if isinstance(source, (list, tuple)):
        files = Files(source)
        probe_all(files.paths)          # (an unreadable file raises before any record)
        items = decode_captures(files, bars=False, decoder=decoder)[0]
    else:
        items = decode(source, decoder=decoder)
    for item in items:
        cls = item.__class__
        if cls is Decoded:
            yield from item.records
        elif cls is Problem and on_problem is not None:
            on_problem(item)
