"""The stats report: the collectors' rows assembled into one JSON-able dict (docs/stats.md)."""
from __future__ import annotations

from . import beacons, flow, searches, traffic
from .rows import iso_or_none, t

# what each folded table's weight counts (report name -> field of not_kept), in report order
_FOLDED = {name: entry[0] for module in (searches, traffic, beacons)
           for name, entry in module.FOLDED.items()}


def build(c) -> dict:
    """The report of a StatsCollector ``c`` at the end of its input (the
    circuits, requests and subscriptions still open end here)."""
    c.capture.end()
    files = c.capture.files
    first = min((f["first"] for f in files if f["first"] is not None), default=None)
    last = max((f["last"] for f in files if f["last"] is not None), default=None)
    until = "capture ended" if c.capture.input_done else "reading stopped"
    c.circuits.end()
    c.requests.end(until, last)
    c.subscriptions.end(until, last)
    out = {
        "capture": _capture(c, first, last),
        "unanswered_searches": c.searches.unanswered_rows(),
        "unanswered_requests": c.requests.rows(),
        "unanswered_requests_total": c.requests.total,
        "subscriptions": c.subscriptions.report_rows(),
        "subscriptions_total": c.subscriptions.total,
        "name_conflicts": c.searches.conflict_rows(),
        "circuits": c.circuits.rows(),
        "flow_control": flow.rows(c.circuits.closed),
        "servers": c.traffic.server_rows(),
        "clients": c.traffic.client_rows(),
        "pvs": c.traffic.pv_rows(),
        "errors": list(c.errors.entries),
        "errors_total": c.errors.total,
        "beacons": c.beacons.rows(),
    }
    not_kept = _not_kept(c)
    if not_kept:                        # (a bound was reached: see bounds.fold)
        out["not_kept"] = not_kept
    return out


def _capture(c, first, last) -> dict:
    st = c.decoder_stats
    files = c.capture.files
    return {
        "files": [dict(f, first=t(f["first"]), last=t(f["last"])) for f in files],
        "first": t(first), "first_iso": iso_or_none(first),
        "last": t(last), "last_iso": iso_or_none(last),
        "span_s": (last - first) / 1e9 if first is not None else None,
        "files_in_time_order": all(
            a["last"] is None or b["first"] is None or a["last"] <= b["first"]
            for a, b in zip(files, files[1:])),
        "packets": st.packets if st else None,
        "messages": st.messages if st else None,
        "messages_counted": c.traffic.counted,
        "decode_problems": st.problems if st else None,
        "capture_problems": st.capture_problems if st else None,
        "packets_dropped_by_capture": st.dropped if st else None,
        "packets_skipped": sum(st.skipped.values()) if st else None,
        "tcp_bytes_missing": st.lost_bytes if st else None,
        "search_replies_without_request": c.searches.unnamed_replies,
        "by_command": c.traffic.by_command_row(),
    }


def _not_kept(c) -> dict:
    """Per table that reached its bound: the rows dropped and what they counted."""
    folded = {**c.searches.folded, **c.traffic.folded, **c.beacons.folded}
    out = {table: {"rows": rows, _FOLDED[table]: total}
           for table, (rows, total) in folded.items() if rows or total}
    if c.circuits.dropped:
        out["circuits"] = {"rows": c.circuits.dropped}
    return out
