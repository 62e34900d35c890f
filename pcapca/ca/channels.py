"""Channel state: the PV name of every message that concerns a channel.

Only searches and channel creation carry the PV name; everything after them
carries numeric ids. This stage follows the ids the way a CA client and
server do, and names every message:

- UDP (and TCP) searches, per client (ip, port): SearchRequest(name, cid) ->
  the SearchResponse / NotFoundResponse with that cid;
- per TCP circuit: CreateChanRequest(name, cid) -> cid; CreateChanResponse
  (cid, sid) -> sid; AccessRights, CreateChFail, ServerDisconn by cid; every
  request by its sid; ReadNotify/WriteNotify/Read requests record their ioid
  for the response; EventAddRequest records the subscription id for the
  updates and the cancel reply; ErrorResponse by the header of the failed
  request it quotes.

ClearChannel and ServerDisconn end a channel's mappings (ids are reused) and
a circuit's tables die with the circuit. Every table has a bound (past it the
oldest half is forgotten, and the PV of their messages is unknown):
MAX_PENDING searches per client and ioids / creations waiting per circuit,
MAX_CHANNELS cids, sids and subscription ids per circuit. When the creation
was not captured the PV is unknown: ``pv`` stays None.

Responses are paired with their requests: ``request_frame`` and ``latency``
(seconds) for read/write notify, search -> reply and create -> create reply.
"""
from __future__ import annotations

from typing import Dict, Iterable, Iterator, Optional, Tuple

from ..items import CircuitClosed
from ._caproto import caproto
from .commands import dispatch, id_field, message_id, quoted_id
from .records import Decoded, Record

_SUB, _SID, _REQUEST, _RESPONSE = range(4)    # kinds of skim_rules
MAX_PENDING = 65536        # outstanding searches / ioids kept per client or circuit
MAX_CHANNELS = 1 << 18     # cids, sids, subscription ids kept per circuit


def c_name(name: str) -> str:
    """A CA name as rsrv and libca read it: up to its first NUL (the rest
    of the payload is padding, stale bytes from EPICS 3.13 clients)."""
    return name.partition("\0")[0]


def _trim(d: dict, limit: Optional[int] = None) -> None:
    """Forget the oldest half of a table that grew past its bound
    (``limit``, else MAX_PENDING)."""
    if len(d) > (MAX_PENDING if limit is None else limit):
        for key in list(d)[:len(d) // 2]:
            del d[key]


class CircuitState:
    """One circuit's channel tables: cids, sids, ioids, subscriptions, creations
    waiting (each bounded: MAX_CHANNELS or MAX_PENDING, see the module)."""
    __slots__ = ("cids", "sids", "ioids", "subs", "creates", "sids_of", "subs_of")

    def __init__(self):
        self.cids: Dict[int, str] = {}                   # cid -> name
        self.sids: Dict[int, str] = {}                   # sid -> name
        self.ioids: Dict[int, Tuple[str, int, int]] = {}  # ioid -> (name, frame, ts)
        self.subs: Dict[int, str] = {}                   # subscription id -> name
        self.creates: Dict[int, Tuple[int, int]] = {}     # cid -> (frame, ts) of the request
        # name -> its sids / subscription ids, in step with sids / subs (set_sid,
        # subscribe...): clearing a channel must not scan every one (quadratic)
        self.sids_of: Dict[str, Dict[int, None]] = {}
        self.subs_of: Dict[str, Dict[int, None]] = {}

    def set_sid(self, sid: int, name: str) -> None:
        _put(self.sids, self.sids_of, sid, name)

    def sid_of(self, name: Optional[str]) -> Optional[int]:
        """The first sid that names ``name``, or None."""
        return next(iter(self.sids_of.get(name, ())), None)

    def subscribe(self, sub: int, name: str) -> None:
        _put(self.subs, self.subs_of, sub, name)

    def unsubscribe(self, sub: int) -> Optional[str]:
        name = self.subs.pop(sub, None)
        _unindex(self.subs_of, name, sub)
        return name

    def forget(self, cid: Optional[int], sid: Optional[int]) -> None:
        name = None
        if cid is not None:
            name = self.cids.pop(cid, None)
        if sid is not None:
            old = self.sids.pop(sid, None)
            _unindex(self.sids_of, old, sid)
            name = old or name
        if name is not None:
            for sub in self.subs_of.pop(name, ()):
                del self.subs[sub]


def _put(table: Dict[int, str], index: Dict[str, Dict[int, None]], key: int, name: str) -> None:
    """``table[key] = name`` with ``index`` (name -> keys) in step; past
    MAX_CHANNELS the oldest half is forgotten."""
    old = table.get(key)
    if old != name:
        _unindex(index, old, key)
    table[key] = name
    index.setdefault(name, {})[key] = None
    if len(table) > MAX_CHANNELS:
        _trim_indexed(table, index)


def _trim_indexed(d: Dict[int, str], index: Dict[str, Dict[int, None]]) -> None:
    """Forget the oldest half of a name table past its bound, index entries too."""
    for key in list(d)[:len(d) // 2]:
        _unindex(index, d.pop(key), key)


def _unindex(index: Dict[str, Dict[int, None]], name: Optional[str], key: int) -> None:
    """Take ``key`` out of ``index[name]`` (a name -> ids table above)."""
    keys = index.get(name)
    if keys is not None:
        keys.pop(key, None)
        if not keys:
            del index[name]


class ChannelTracker:
    """The channel state of every live circuit and the searches waiting per
    client (at most MAX_PENDING clients); pickled without its handler tables."""

    def __init__(self):
        self.circuits: Dict[tuple, CircuitState] = {}
        self.searches: Dict[tuple, Dict[int, Tuple[str, int, int]]] = {}  # client -> cid -> (name, frame, ts)
        self._handlers = dispatch({
            caproto.SearchRequest: self._search_request,
            (caproto.SearchResponse, caproto.NotFoundResponse): self._search_reply,
            caproto.CreateChanRequest: self._create_request,
            caproto.CreateChanResponse: self._create_response,
            caproto.AccessRightsResponse: self._by_cid,
            (caproto.CreateChFailResponse, caproto.ServerDisconnResponse): self._cid_end,
            (caproto.ReadNotifyRequest, caproto.WriteNotifyRequest,
             caproto.ReadRequest): self._io_request,
            (caproto.WriteRequest, caproto.EventCancelRequest,
             caproto.ClearChannelRequest): self._by_sid,
            (caproto.ReadNotifyResponse, caproto.WriteNotifyResponse,
             caproto.ReadResponse): self._io_response,
            caproto.EventAddRequest: self._sub_request,
            caproto.EventAddResponse: self._sub_update,
            caproto.EventCancelResponse: self._sub_cancel,
            caproto.ClearChannelResponse: self._clear_response,
            caproto.ErrorResponse: self._error,
        })
        # For ``pcapca.skim``: the messages whose PV and whole effect on this
        # state follow from their parameter1/parameter2 header fields (see
        # ``skim``): class -> (kind, which parameter holds the sid/subscription
        # id/ioid, which the ioid), 0 for parameter1 and 1 for parameter2
        kinds = {self._sub_update: (_SUB, "subscriptionid"), self._by_sid: (_SID, "sid"),
                 self._io_request: (_REQUEST, "sid"), self._io_response: (_RESPONSE, "ioid")}
        params = {4: 0, 5: 1}           # HEADER_FIELDS index -> parameter
        self.skim_rules = {}
        for cls, handler in self._handlers.items():
            kind, id_name = kinds.get(handler, (None, None))
            if kind is None:
                continue
            first = params.get(id_field(cls, id_name))
            ioid = params.get(id_field(cls, "ioid"))
            if first is not None and (kind != _REQUEST or ioid is not None):
                self.skim_rules[cls] = (kind, first, ioid)

    def __getstate__(self):
        return {"circuits": self.circuits, "searches": self.searches}

    def __setstate__(self, state) -> None:
        self.__init__()                  # (the tables of handlers: built, not pickled)
        self.circuits, self.searches = state["circuits"], state["searches"]

    def run(self, items: Iterable) -> Iterator:
        handlers = self._handlers
        for item in items:
            cls = item.__class__
            if cls is Decoded:
                for record in item.records:
                    handler = handlers.get(record.cls)
                    if handler is not None:
                        handler(record)
            elif cls is CircuitClosed:
                self.circuits.pop(item.key, None)
            yield item

    # ---------------------------------------------------------------- helpers
    _id = staticmethod(message_id)

    def _state(self, record: Record) -> CircuitState:
        return self.state_of(record.circuit)

    def state_of(self, circuit) -> CircuitState:
        state = self.circuits.get(circuit)
        if state is None:
            state = self.circuits[circuit] = CircuitState()
        return state

    # ---------------------------------------------------------------- for skim
    @staticmethod
    def skim(state: CircuitState, rule, params, cls, frame: int, ts: int, drops,
             apply: bool = True) -> bool:
        """For ``pcapca.skim``: would ``drops(pv, cls)`` drop the record of
        this message (of the circuit whose state is ``state``, with its
        ``skim_rules`` entry and its (parameter1, parameter2))? If so (and
        ``apply``), change the state as its handler (_sub_update, _by_sid,
        _io_request, _io_response) would. tests/fast/test_skim.py compares the
        output with and without skim."""
        kind, first, ioid = rule
        entry = None
        if kind == _SUB:
            name = state.subs.get(params[first])
        elif kind == _RESPONSE:
            entry = state.ioids.get(params[first])
            name = None if entry is None else entry[0]
        else:                                          # _SID, _REQUEST
            name = state.sids.get(params[first])
        if not drops(name, cls):
            return False
        if apply:
            if kind == _REQUEST:
                state.ioids[params[ioid]] = (name, frame, ts)
                _trim(state.ioids)
            elif entry is not None:
                del state.ioids[params[first]]
        return True

    def skim_all(self, state: CircuitState, messages, frame: int, ts: int, drops) -> bool:
        """``skim`` for the messages of one packet, [(cls, params, rule)]:
        all of them if the filter drops them all, else none."""
        replies = set()
        for cls, params, rule in messages:
            if rule[0] == _RESPONSE:
                if params[rule[1]] in replies:
                    return False       # two replies to one ioid: the first takes it
                replies.add(params[rule[1]])
            if not self.skim(state, rule, params, cls, frame, ts, drops, apply=False):
                return False
        for cls, params, rule in messages:
            self.skim(state, rule, params, cls, frame, ts, drops)
        return True

    @staticmethod
    def _pair(record: Record, frame: int, ts: int) -> None:
        record.request_frame = frame
        record.latency = (record.ts - ts) / 1e9

    # ---------------------------------------------------------------- searches
    def _search_table(self, record: Record, requester: bool):
        if record.proto == "tcp":
            key = record.circuit
        else:
            key = (record.src, record.sport) if requester else (record.dst, record.dport)
        table = self.searches.get(key)
        if table is None:
            if not requester:
                return None
            table = self.searches[key] = {}
            if len(self.searches) > MAX_PENDING:
                _trim(self.searches)
        return table

    def _search_request(self, record: Record) -> None:
        cmd = record.command
        name = record.pv = c_name(cmd.name)
        table = self._search_table(record, True)
        table.pop(cmd.cid, None)
        table[cmd.cid] = (name, record.frame, record.ts)
        _trim(table)

    def _search_reply(self, record: Record) -> None:
        table = self._search_table(record, False)
        if table is None:
            return
        entry = table.get(self._id(record, "cid"))
        if entry is not None:
            record.pv = entry[0]
            self._pair(record, entry[1], entry[2])

    # ---------------------------------------------------------------- circuits
    def _create_request(self, record: Record) -> None:
        cmd = record.command
        state = self._state(record)
        name = record.pv = c_name(cmd.name)
        state.cids[cmd.cid] = name
        _trim(state.cids, MAX_CHANNELS)
        state.creates[cmd.cid] = (record.frame, record.ts)
        _trim(state.creates)

    def _create_response(self, record: Record) -> None:
        cid = self._id(record, "cid")
        state = self._state(record)
        name = state.cids.get(cid)
        if name is not None:
            record.pv = name
            state.set_sid(self._id(record, "sid"), name)
        created = state.creates.pop(cid, None)
        if created is not None:
            self._pair(record, *created)

    def _by_cid(self, record: Record) -> None:
        record.pv = self._state(record).cids.get(self._id(record, "cid"))

    def _cid_end(self, record: Record) -> None:
        state = self._state(record)
        cid = self._id(record, "cid")
        record.pv = state.cids.get(cid)
        created = state.creates.pop(cid, None)
        if created is not None and record.cls.__name__ == "CreateChFailResponse":
            self._pair(record, *created)
        state.forget(cid, state.sid_of(record.pv))

    def _by_sid(self, record: Record) -> None:
        record.pv = self._state(record).sids.get(self._id(record, "sid"))

    def _io_request(self, record: Record) -> None:
        state = self._state(record)
        name = state.sids.get(self._id(record, "sid"))
        record.pv = name
        state.ioids[self._id(record, "ioid")] = (name, record.packet.frame, record.packet.ts)
        _trim(state.ioids)

    def _io_response(self, record: Record) -> None:
        entry = self._state(record).ioids.pop(self._id(record, "ioid"), None)
        if entry is not None:
            record.pv = entry[0]
            self._pair(record, entry[1], entry[2])

    def _sub_request(self, record: Record) -> None:
        state = self._state(record)
        name = state.sids.get(self._id(record, "sid"))
        record.pv = name
        if name is not None:
            state.subscribe(self._id(record, "subscriptionid"), name)

    def _sub_update(self, record: Record) -> None:
        record.pv = self._state(record).subs.get(self._id(record, "subscriptionid"))

    def _sub_cancel(self, record: Record) -> None:
        state = self._state(record)
        record.pv = state.unsubscribe(self._id(record, "subscriptionid"))

    def _clear_response(self, record: Record) -> None:
        cid, sid = self._id(record, "cid"), self._id(record, "sid")
        state = self._state(record)
        record.pv = state.sids.get(sid) or state.cids.get(cid)
        state.forget(cid, sid)

    def _error(self, record: Record) -> None:
        cmd = record.command
        state = self._state(record)
        try:
            orig = cmd.original_request
        except Exception:
            orig = None
        name = None
        if orig is not None:
            command = orig.command
            if command == 18:                       # create channel: cid
                name = state.cids.get(orig.parameter1)
            elif command == 6:                      # search: cid
                name = None
            else:                                   # requests carry the sid
                name = state.sids.get(orig.parameter1)
                quoted = quoted_id(orig)
                if quoted is not None and quoted[0] == "ioid":   # ...and a pending reply's ioid
                    entry = state.ioids.pop(quoted[1], None)
                    if entry is not None:
                        name = name or entry[0]
                        self._pair(record, entry[1], entry[2])
        if name is None:
            name = state.cids.get(cmd.cid)
        record.pv = name
