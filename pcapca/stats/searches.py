"""Searches: names searched for and never answered, names answered by several servers."""
from __future__ import annotations

from typing import Dict, List, Tuple

from caproto import NotFoundResponse, SearchRequest, SearchResponse

from ..output.jsonout import ts_string
from ..times import iso
from . import bounds
from .bounds import add_bounded, fold
from .rows import addr

ANY_ADDRESS = ("255.255.255.255", "0.0.0.0")
# The tables fold bounds (see traffic.FOLDED)
FOLDED = {
    "searched_names": ("searches", lambda s: s.searches),
    "answers": ("search_replies", lambda servers: sum(a.replies for a in servers.values())),
}


class SearchedName:
    __slots__ = ("searches", "clients", "clients_total", "first", "last", "answered",
                 "not_found", "not_found_by")

    def __init__(self, ts):
        self.searches = 0
        self.clients: Dict[str, None] = {}
        self.clients_total = 0
        self.first = ts
        self.last = ts
        self.answered = 0
        self.not_found = 0
        self.not_found_by: Dict[str, None] = {}


class Answer:
    __slots__ = ("replies", "first", "last", "clients")

    def __init__(self, ts):
        self.replies = 0
        self.first = ts
        self.last = ts
        self.clients: Dict[str, None] = {}


class Searches:
    """Per name searched and per name answered (by server); counts go to the
    ``traffic`` rows too, and to the ``timeline`` (--plot) when there is one."""

    def __init__(self, traffic, timeline):
        self.traffic = traffic
        self.timeline = timeline
        self.searched: Dict[str, SearchedName] = {}
        self.answers: Dict[str, Dict[Tuple[str, int], Answer]] = {}
        self.unnamed_replies = 0
        self.folded = {table: [0, 0] for table in FOLDED}

    def handlers(self) -> dict:
        """After the filter: (record, its PV's row or None, its CircuitStats or None)."""
        return {SearchRequest: self._search, SearchResponse: self._reply,
                NotFoundResponse: self._not_found}

    def _search(self, record, pv, circuit) -> None:
        name = record.pv                    # (the tracker's name: up to its NUL)
        ts = record.ts
        s = self.searched.get(name)
        if s is None:
            if len(self.searched) >= bounds.MAX_ROWS:
                fold(self.searched, FOLDED["searched_names"][1], self.folded["searched_names"])
            s = self.searched[name] = SearchedName(ts)
        s.searches += 1
        if ts < s.first:
            s.first = ts
        if ts > s.last:
            s.last = ts
        if add_bounded(s.clients, addr((record.src, record.sport)), bounds.MAX_CLIENTS_LISTED):
            s.clients_total += 1
        self.traffic.pv(name).searches += 1
        if record.proto == "udp":
            self.traffic.client(record.src).searches += 1
        elif record.circuit is not None:
            self.traffic.client(record.circuit[1][0]).searches += 1
        if self.timeline is not None:
            self.timeline.search(ts, name)

    def _reply(self, record, pv, circuit) -> None:
        cmd = record.command
        pv_name = record.pv
        ts = record.ts
        try:
            ip = cmd.ip
        except Exception:
            ip = None
        if not ip or ip in ANY_ADDRESS:
            ip = record.src
        server_key = (ip, cmd.port)
        srv = self.traffic.server(server_key)
        srv.search_replies += 1
        if pv_name is None:
            self.unnamed_replies += 1       # the request was not captured
            return
        pv = self.traffic.pv(pv_name)
        pv.search_replies += 1
        if record.latency is not None:
            pv.latency.add("search", record.latency)
            srv.latency.add("search", record.latency)
        s = self.searched.get(pv_name)
        if s is not None:
            s.answered += 1
        servers = self.answers.get(pv_name)
        if servers is None:
            if len(self.answers) >= bounds.MAX_ROWS:
                fold(self.answers, FOLDED["answers"][1], self.folded["answers"])
            servers = self.answers[pv_name] = {}
        a = servers.get(server_key)
        if a is None and len(servers) >= bounds.MAX_CLIENTS_LISTED:   # (servers kept per name)
            self.folded["answers"][1] += 1
            a = Answer(ts)                  # (counted, not kept)
        elif a is None:
            a = servers[server_key] = Answer(ts)
        a.replies += 1
        a.first = min(a.first, ts)
        a.last = max(a.last, ts)
        add_bounded(a.clients, addr((record.dst, record.dport)), bounds.MAX_CLIENTS_LISTED)
        if self.timeline is not None:
            self.timeline.answered(pv_name)

    def _not_found(self, record, pv, circuit) -> None:
        pv_name = record.pv
        s = self.searched.get(pv_name) if pv_name is not None else None
        if s is not None:
            s.not_found += 1
            add_bounded(s.not_found_by, addr((record.src, record.sport)),
                        bounds.MAX_CLIENTS_LISTED)

    # ---------------------------------------------------------------- the report
    def unanswered_rows(self) -> List[dict]:
        out = []
        for name, s in self.searched.items():
            if s.answered:
                continue
            span = (s.last - s.first) / 1e9
            out.append({
                "pv": name, "searches": s.searches,
                "clients": list(s.clients), "clients_total": s.clients_total,
                "first": ts_string(s.first), "first_iso": iso(s.first),
                "last": ts_string(s.last), "last_iso": iso(s.last),
                "span_s": span,
                "rate_per_s": (s.searches - 1) / span if s.searches > 1 and span > 0 else None,
                "not_found": s.not_found, "not_found_by": list(s.not_found_by),
            })
        out.sort(key=lambda e: (-e["searches"], e["pv"]))
        return out

    def conflict_rows(self) -> List[dict]:
        out = []
        for name, servers in self.answers.items():
            if len(servers) < 2:
                continue
            out.append({"pv": name, "servers": [
                {"server": addr(k), "replies": a.replies, "first": ts_string(a.first),
                 "last": ts_string(a.last), "clients": list(a.clients)}
                for k, a in sorted(servers.items(), key=lambda kv: kv[1].first)]})
        out.sort(key=lambda e: e["pv"])
        return out
