"""The ``pcapca stats`` report as text: aligned tables, one section per concern."""
from __future__ import annotations

import os
from typing import Callable, List, Optional, Sequence

from ..escape import printable
from ..times import utc

NS = 1_000_000_000


# ------------------------------------------------------------------ tables
def table(headers: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "  ",
          right: Optional[Sequence[bool]] = None) -> List[str]:
    """Aligned plain-text columns; numbers (or columns flagged in ``right``)
    are right-aligned. None prints as '-'."""
    cells = [[("-" if v is None else printable(str(v))) for v in row] for row in rows]
    if right is None:
        right = [bool(rows) and all(isinstance(r[i], (int, float)) or r[i] is None
                                    for r in rows) and any(isinstance(r[i], (int, float))
                                                           for r in rows)
                 for i in range(len(headers))]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, v in enumerate(row):
            widths[i] = max(widths[i], len(v))

    def line(values):
        parts = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)]
        return (indent + "  ".join(parts)).rstrip()
    return [line(list(headers))] + [line(row) for row in cells]


def ns_of(ts: Optional[str]) -> Optional[int]:
    if ts is None:
        return None
    whole, _, frac = ts.partition(".")
    sign = -1 if whole.startswith("-") else 1
    return sign * (abs(int(whole)) * NS + int((frac + "000000000")[:9]))


class _Clock:
    """Times of the report as text: time of day (UTC, µs) when the capture
    lies within one UTC day, else date and time."""

    def __init__(self, first: Optional[str], last: Optional[str]):
        a, b = ns_of(first), ns_of(last)
        self.same_day = (a is not None and b is not None
                         and a // (86400 * NS) == b // (86400 * NS))

    def __call__(self, ts: Optional[str]) -> Optional[str]:
        ns = ns_of(ts)
        if ns is None:
            return None
        date, time, frac = utc(ns)
        text = f"{time}.{frac // 1000:06d}"
        return text if self.same_day else f"{date} {text}"


def _ms(summary: Optional[dict]) -> Optional[str]:
    """'p50/p95/max' in milliseconds."""
    if not summary:
        return None
    return "/".join(f"{summary[k] * 1000:.3f}" for k in ("p50", "p95", "max"))


def _limit(rows: list, top: int):
    if top and len(rows) > top:
        return rows[:top], len(rows) - top
    return rows, 0


def _more(out: List[str], hidden: int) -> None:
    if hidden:
        out.append(f"  ... {hidden} more (--top 0 shows all)")


def _section(out: List[str], title: str, items: list, top: int, headers: Sequence[str],
             row: Callable[[dict], List[list]], right: Sequence[bool],
             notes: Optional[Callable[[dict], List[str]]] = None) -> None:
    """A titled table of the first ``top`` items (``row`` gives each item's
    rows: one, or several for a multi-line item), or 'none'; ``notes``: the
    lines to add under the table for an item shown."""
    out.append("")
    out.append(title)
    if not items:
        out.append("  none")
        return
    shown, hidden = _limit(items, top)
    out += table(headers, [r for item in shown for r in row(item)], right=right)
    if notes is not None:
        out += [line for item in shown for line in notes(item)]
    _more(out, hidden)


def _not_kept(out: List[str], report: dict, table: str, noun: str) -> None:
    """The line under a section whose table reached its bound (stats._fold)."""
    entry = report.get("not_kept", {}).get(table)
    if entry:
        what = "".join(f" ({v} {k.replace('_', ' ')} not in the rows)"
                       for k, v in entry.items() if k != "rows")
        plural = "" if entry["rows"] == 1 else "s"
        out.append(f"  ... and {entry['rows']} more {noun}{plural} not kept{what}")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def render_text(report: dict, top: int = 20) -> str:
    cap = report["capture"]
    clock = _Clock(cap["first"], cap["last"])
    out: List[str] = []

    # -------------------------------------------------------------- capture
    out.append("Capture")
    files = cap["files"]
    for i, f in enumerate(files):
        label = "files" if i == 0 and len(files) > 1 else ("file" if i == 0 else "")
        out.append(f"  {label:<9} {f['path']} ({_plural(f['packets'], 'packet')}"
                   + (f", {clock(f['first'])} .. {clock(f['last'])})" if len(files) > 1 and f["first"] else ")"))
    if not cap.get("files_in_time_order", True):
        out.append(f"  {'':<9} note: the files overlap or are not in time order; "
                   f"they were read in the order given")
    if cap["first"] is not None:
        out.append(f"  {'span':<9} {cap['first_iso']} .. {cap['last_iso']} ({cap['span_s']:.6f} s)")
    counted = ""
    if cap["messages_counted"] != cap["messages"]:
        counted = f" ({cap['messages_counted']} match the filter)"
    out.append(f"  {'packets':<9} {cap['packets']}; CA messages {cap['messages']}{counted}; "
               f"decode problems {cap['decode_problems']}; capture problems {cap['capture_problems']}")
    if cap.get("tcp_bytes_missing"):
        out.append(f"  {'missing':<9} {cap['tcp_bytes_missing']} TCP bytes of CA circuits were not "
                   f"captured (holes in their sequence numbers): CA messages may be missing")
    if cap.get("packets_dropped_by_capture"):
        out.append(f"  {'dropped':<9} {cap['packets_dropped_by_capture']} packets dropped by the "
                   f"capturing program (pcapng interface statistics): CA messages may be missing")
    out.append("  times below are UTC; latencies p50/p95/max in ms")

    # -------------------------------------------------------------- unanswered searches
    un = report["unanswered_searches"]
    total = sum(e["searches"] for e in un)
    _section(out, f"Unanswered searches ({_plural(len(un), 'name')}, "
                  f"{total} {'search' if total == 1 else 'searches'})", un, top,
             ["PV", "SEARCHES", "CLIENTS", "FIRST", "LAST", "RATE/S", "NOT-FOUND"],
             lambda e: [[e["pv"], e["searches"], _clients(e["clients"], e["clients_total"]),
                         clock(e["first"]), clock(e["last"]),
                         None if e["rate_per_s"] is None else f"{e['rate_per_s']:.3f}",
                         e["not_found"]]],
             right=[False, True, False, False, False, True, True])
    _not_kept(out, report, "searched_names", "searched name")

    # -------------------------------------------------------------- unanswered requests
    ur = report["unanswered_requests"]
    total = report["unanswered_requests_total"]
    _section(out, f"Unanswered requests ({_plural(total, 'request')})", ur, top,
             ["PV", "REQUEST", "COUNT", "FIRST", "FRAME", "WAITED s", "CLIENT", "SERVER", "UNTIL"],
             lambda e: [[e["pv"], e["request"], e["count"], clock(e["first"]), e["first_frame"],
                         f"{e['longest_wait_s']:.3f}", e["client"], e["server"],
                         e["until"] + (f"; {e['server_bytes_not_captured']} bytes from the "
                                       f"server not captured"
                                       if e["server_bytes_not_captured"] else "")]],
             right=[False, False, True, False, True, True, False, False, False])
    listed = sum(e["count"] for e in ur)
    if total > listed:
        out.append(f"  ({total - listed} more not listed)")

    # -------------------------------------------------------------- subscriptions
    subs = report.get("subscriptions", [])
    total = report.get("subscriptions_total", len(subs))
    _section(out, f"Subscriptions ({total}, longest silence first)", subs, top,
             ["PV", "CLIENT", "SERVER", "TYPE", "UPDATES", "START", "LAST UPDATE",
              "LONGEST GAP s", "SILENT AT END s", "ENDED"],
             lambda e: [[e["pv"], e["client"], e["server"], e["data_type"], e["updates"],
                         clock(e["start"]), clock(e["last_update"]),
                         f"{e['longest_gap_s']:.3f}", f"{e['silent_at_end_s']:.3f}",
                         e["ended"]]],
             right=[False, False, False, False, True, False, False, True, True, False])
    if total > len(subs):
        out.append(f"  ({total - len(subs)} more not listed)")

    # -------------------------------------------------------------- name conflicts
    nc = report["name_conflicts"]
    _section(out, f"Name conflicts: PVs answered by more than one server ({len(nc)})", nc, top,
             ["PV", "SERVER", "REPLIES", "FIRST", "LAST", "CLIENTS"],
             lambda e: [[e["pv"] if i == 0 else "", s["server"], s["replies"],
                         clock(s["first"]), clock(s["last"]),
                         _clients(s["clients"], len(s["clients"]))]
                        for i, s in enumerate(e["servers"])],
             right=[False, False, True, False, False, False])
    _not_kept(out, report, "answers", "answered name")

    # -------------------------------------------------------------- circuits
    circuits = report["circuits"]
    busiest = sorted(circuits, key=lambda c: (-(c["messages_to_server"] + c["messages_to_client"]),
                                              c["number"]))
    _section(out, f"Circuits ({len(circuits)}, busiest first)", busiest, top,
             ["#", "CLIENT", "SERVER", "HOST", "USER", "START", "END", "CLOSED BY", "CHANNELS",
              "MSGS C>S", "MSGS S>C", "BYTES C>S", "BYTES S>C"],
             lambda c: [[c["number"], c["client"], c["server"], c["host"], c["user"],
                         clock(c["start"]),
                         clock(c["end"]) if c["state"] == "closed" else
                         (c["state"] if c["end"] is None else f"idle {clock(c['end'])}"),
                         c.get("closed_by"),
                         c["channels"], c["messages_to_server"], c["messages_to_client"],
                         c["bytes_to_server"], c["bytes_to_client"]]],
             right=[True, False, False, False, False, False, False, False,
                    True, True, True, True, True], notes=_not_captured)
    _not_kept(out, report, "circuits", "closed circuit")

    # -------------------------------------------------------------- flow control
    fc = sorted(report.get("flow_control", []), key=lambda c: (
        -sum(s["total_s"] for s in (c["client_not_reading"], c["server_not_reading"]) if s),
        -c["events_off_s"], c["number"]))
    _section(out, f"Flow control: circuits whose receiver stopped reading ({len(fc)}, "
                  f"longest first)", fc, top,
             ["#", "CLIENT", "SERVER", "CLIENT NOT READING", "SERVER NOT READING",
              "EVENTS-OFF", "FIRST"],
             lambda c: [[c["number"], c["client"], c["server"],
                         _stall(c["client_not_reading"]), _stall(c["server_not_reading"]),
                         f"{c['events_off']} for {c['events_off_s']:.6f} s"
                         if c["events_off"] else None,
                         clock(min((s["first"] for s in (c["client_not_reading"],
                                                          c["server_not_reading"]) if s),
                                   default=None))]],
             right=[True, False, False, False, False, False, False])

    # -------------------------------------------------------------- servers
    servers = report["servers"]
    _section(out, f"Servers ({len(servers)})",
             sorted(servers, key=lambda s: (-s["messages"], s["server"])), top,
             ["SERVER", "CIRCUITS", "CHANNELS", "MESSAGES", "BYTES", "SEARCH-REPLIES",
              "ERRORS", "READ ms", "WRITE ms", "SEARCH ms", "CREATE ms"],
             lambda s: [[s["server"], s["circuits"], s["channels"], s["messages"], s["bytes"],
                         s["search_replies"], s["errors"]] + _latencies(s)],
             right=[False] + [True] * 10)
    _not_kept(out, report, "servers", "server")

    # -------------------------------------------------------------- clients
    clients = report["clients"]
    _section(out, f"Clients by messages sent ({len(clients)})", clients, top,
             ["CLIENT", "HOSTS", "USERS", "CIRCUITS", "SEARCHES", "MESSAGES", "BYTES"],
             lambda c: [[c["client"], ",".join(c["hosts"]) or None, ",".join(c["users"]) or None,
                         c["circuits"], c["searches"], c["messages"], c["bytes"]]],
             right=[False, False, False, True, True, True, True])
    _not_kept(out, report, "clients", "client")

    # -------------------------------------------------------------- PVs
    pvs = report["pvs"]
    _section(out, f"PVs by messages ({len(pvs)})", pvs, top,
             ["PV", "MSGS", "BYTES", "SEARCH", "READS", "WRITES", "PUTS-CB", "SUBS",
              "UPDATES", "ERRORS", "READ ms", "WRITE ms", "SEARCH ms", "CREATE ms"],
             lambda p: [[p["pv"], p["messages"], p["bytes"], p["searches"], p["reads"],
                         p["writes"], p["puts_notify"], p["subscriptions"], p["updates"],
                         p["errors"]] + _latencies(p)],
             right=[False] + [True] * 13)
    _not_kept(out, report, "pvs", "PV")

    # -------------------------------------------------------------- errors
    errors = report["errors"]
    kept = "" if report["errors_total"] == len(errors) else f", {len(errors)} kept"
    several = len(files) > 1
    _section(out, f"Errors ({report['errors_total']}{kept})", errors, top,
             (["FILE"] if several else []) + ["FRAME", "TIME", "PV", "MESSAGE", "STATUS",
                                              "REQUEST", "CLIENT", "SERVER", "TEXT"],
             lambda e: [([os.path.basename(e["file"] or "")] if several else [])
                        + [e["frame"], clock(e["time"]), e["pv"], e["command"], e["status"],
                           e["request"], e["client"], e["server"], e["text"]]],
             right=([False] if several else []) + [True] + [False] * 8)

    # -------------------------------------------------------------- beacons
    beacons = report["beacons"]
    _section(out, f"Beacons ({_plural(len(beacons), 'server')}; repeater copies counted once)",
             beacons, top,
             ["SERVER", "BEACONS", "COPIES", "FIRST", "LAST", "IDS",
              "INTERVAL s med/min/max", "RESTARTS"],
             lambda b: [[b["server"], b["beacons"], b["copies"], clock(b["first"]),
                         clock(b["last"]), f"{b['first_id']}..{b['last_id']}",
                         None if not b["interval"] else "/".join(
                             f"{b['interval'][k]:.3f}" for k in ("median", "min", "max")),
                         len(b["restarts"])]],
             right=[False, True, True, False, False, False, True, True])
    _not_kept(out, report, "beacons", "beacon server")
    if beacons:
        for b in beacons:
            for r in b["restarts"]:
                where = f"frame {r['frame']}" + (f" of {r['file']}" if len(files) > 1 else "")
                out.append(f"  restart: {b['server']} at {clock(r['time'])} ({where}): "
                           f"{r['reason']} ({r['from_id']} -> {r['to_id']}), sent by {r['sender']}")
            if b["started_in_capture"]:
                note = (f" (new port: the host also served on {', '.join(map(str, b['other_ports_of_host']))})"
                        if b["new_port_for_host"] else "")
                out.append(f"  start: {b['server']} began beaconing at {clock(b['first'])} "
                           f"with beacon id 0{note}")
    return "\n".join(printable(line) for line in out) + "\n"     # (and lines besides tables)


def _not_captured(c: dict) -> List[str]:
    """The line under Circuits for a circuit whose capture lost bytes."""
    lost = c.get("bytes_not_captured_to_server", 0), c.get("bytes_not_captured_to_client", 0)
    if not any(lost):
        return []
    return [f"  circuit {c['number']}: bytes not captured (lost by the capture): "
            f"{lost[0]} to the server, {lost[1]} to the client"]


def _stall(s: Optional[dict]) -> Optional[str]:
    """A side's zero windows: '3.516163 s (37 times, longest 0.121421 s)'."""
    if s is None:
        return None
    times = "once" if s["episodes"] == 1 else f"{s['episodes']} times"
    return f"{s['total_s']:.6f} s ({times}, longest {s['longest_s']:.6f} s)"


def _latencies(entry: dict) -> list:
    """READ/WRITE/SEARCH/CREATE ms cells of a server or PV row."""
    return [_ms(entry["latency"].get(k)) for k in ("read", "write", "search", "create")]


def _clients(listed: Sequence[str], total: int) -> str:
    shown = list(listed[:3])
    more = total - len(shown)
    return ", ".join(shown) + (f" +{more}" if more > 0 else "")
