"""annotate's default comments: readable text, then a versioned tag for the Wireshark plugin."""
from __future__ import annotations

import functools
from urllib.parse import quote

from ..capture.pcapng_blocks import MAX_OPTION_LEN
from ..capture.pcapng_write import cut_comment
from ..escape import printable
from .reprs import record_repr

# The machine-readable tag that ends each default comment and note, read by
# the Wireshark plugin (pcapca/wireshark/pcapca.lua); format in docs/wireshark.md,
# choice in docs/design.md. Bump TAG_VERSION on any incompatible change.
TAG_VERSION = 1
_TAG = f" [pcapca/{TAG_VERSION} "
NOTE_TAG = f" [pcapca/{TAG_VERSION} problem]"
# PV bytes written as themselves in the tag; any other byte (space, %, [, ],
# controls, non-ASCII) is %XX, so the tag holds no space or bracket of the wire
_PV_SAFE = "!\"#$&'()*+,/:;<=>?@\\^`{|}"


@functools.lru_cache(maxsize=4096)
def tag_pv(pv: str) -> str:
    """``pv`` percent-encoded for the tag (UTF-8; surrogate escapes back to bytes)."""
    try:
        return quote(pv, safe=_PV_SAFE, errors="surrogateescape")
    except UnicodeEncodeError:
        return quote(pv, safe=_PV_SAFE, errors="replace")


# (role, class, PV) -> (the PV as {pv} shows it and a space, or "", the tag's
# start), memoised: the tag must cost little beside the repr. At most
# _MAX_STARTS entries (then cleared), PV names of at most 256 characters
# (longer ones, rare and maybe hostile, are not kept)
_starts: dict = {}
_MAX_STARTS = 16384
_SHORT = MAX_OPTION_LEN // 4         # characters that fit whatever their UTF-8 size


def _start(record) -> tuple:
    pv = record.pv
    key = (record.role, record.cls, pv)
    found = _starts.get(key)
    if found is None:
        start = f"{_TAG}role={record.role} cmd={record.cls.__name__}"
        if pv is None:
            found = ("", start)
        else:                   # (escaped as {pv} is: caproto's repr escapes its own text)
            found = (f"{pv if pv.isprintable() else printable(pv)} ", f"{start} pv={tag_pv(pv)}")
        if pv is None or len(pv) <= 256:
            if len(_starts) >= _MAX_STARTS:
                _starts.clear()
            _starts[key] = found
    return found


def _end(record, first: int) -> str:
    """The tag's end: `` req=FRAME lat=SECONDS]``, each when known. ``first``:
    the first frame of the output file (several captures): req is a frame of
    that file, absent when the request is in an earlier file (Wireshark opens
    one file at a time)."""
    req = record.request_frame
    if first != 1 and req is not None:
        req = req - first + 1 if req >= first else None
    latency = record.latency
    if req is None:
        return "]" if latency is None else f" lat={latency:.6f}]"
    if latency is None:
        return f" req={req}]"
    return f" req={req} lat={latency:.6f}]"


def _fit(text: str, tag: str) -> str:
    """``text + tag``, the text cut (``cut_comment``) so that the tag survives
    pcapng's 65535-byte option limit."""
    whole = text + tag
    if len(whole) <= _SHORT:            # (no UTF-8 encoding needed)
        return whole
    room = MAX_OPTION_LEN - len(tag.encode("utf-8"))
    return cut_comment(text, room).decode("utf-8") + tag


def default_comment(record, first: int = 1) -> str:
    """``{pv} {command}``, without the PV (and its space) when it is unknown,
    then the tag `` [pcapca/1 role=R cmd=NAME pv=ESCAPED req=FRAME lat=SECONDS]``,
    pv, req and lat only when known (``first``: see _end)."""
    prefix, start = _start(record)
    return _fit(prefix + record_repr(record), start + _end(record, first))


def note_comment(note: str) -> str:
    """A decode problem's comment (``pcapca: TEXT``) with its tag."""
    return _fit(note, NOTE_TAG)
