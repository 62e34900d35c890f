"""A filter: its conditions checked once and compiled into one predicate (``Filter.matches``)."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields
from typing import Callable, Dict, List, Optional, Tuple

from ..errors import FilterError
from ..items import FirstPacket
from .patterns import CACHE_MAX, Matcher, as_list, check_patterns
from .values import parse_host, parse_port, parse_when

FILTER_KEYS = ("pv", "not_pv", "command", "not_command", "host", "port", "since", "until")


def _drops(pv_ok, cls_ok) -> Optional[Callable]:
    """``Filter.drops`` from the PV and the command conditions (each a
    predicate or None): every condition must hold for a record to be kept."""
    if pv_ok is None and cls_ok is None:
        return None
    if cls_ok is None:
        return lambda pv, cls: not pv_ok(pv)
    if pv_ok is None:
        return lambda pv, cls: not cls_ok(cls)
    return lambda pv, cls: not (cls_ok(cls) and pv_ok(pv))


@dataclass(frozen=True)
class Filter:
    """Which records to keep. Build with ``Filter.build``; test with ``matches``."""
    pv: Tuple[str, ...] = ()
    not_pv: Tuple[str, ...] = ()
    command: Tuple[str, ...] = ()
    not_command: Tuple[str, ...] = ()
    hosts: Tuple[str, ...] = ()
    ports: Tuple[int, ...] = ()
    since_ns: Optional[int] = None
    until_ns: Optional[int] = None
    # since/until counted from the capture's first packet (``+SECONDS``)
    since_relative: bool = False
    until_relative: bool = False
    _match: Callable = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def build(cls, *, pv=None, not_pv=None, command=None, not_command=None,
              host=None, port=None, since=None, until=None) -> "Filter":
        """Validate and compile. A scalar is a one-element list; None or an
        empty list means "no condition". Raises FilterError."""
        since_ns, since_rel = (None, False) if since is None else parse_when(since, "since")
        until_ns, until_rel = (None, False) if until is None else parse_when(until, "until")
        if (since_ns is not None and until_ns is not None and since_rel == until_rel
                and until_ns <= since_ns):
            raise FilterError("until", f"until ({until}) is not after since ({since}): "
                                       f"nothing could match")
        hosts = [parse_host(h) for h in as_list("host", host)]
        return cls(pv=check_patterns("pv", pv), not_pv=check_patterns("not_pv", not_pv),
                   command=check_patterns("command", command),
                   not_command=check_patterns("not_command", not_command),
                   hosts=tuple(dict.fromkeys(hosts)),
                   ports=tuple(dict.fromkeys(parse_port(p) for p in as_list("port", port))),
                   since_ns=since_ns, until_ns=until_ns,
                   since_relative=since_rel, until_relative=until_rel)

    @property
    def is_empty(self) -> bool:
        return not (self.pv or self.not_pv or self.command or self.not_command or self.hosts
                    or self.ports or self.since_ns is not None or self.until_ns is not None)

    @property
    def relative(self) -> bool:
        """Is a time counted from the capture's first packet (see ``anchor``)?"""
        return self.since_relative or self.until_relative

    def anchor(self, ts: int) -> None:
        """The time stamp (ns) of the capture's first packet, from which
        ``+SECONDS`` times count (``FirstPacket``): without one, they count
        from the first record tested."""
        self._start.anchor(ts)

    def __post_init__(self):
        object.__setattr__(self, "_start", FirstPacket())     # (see anchor)
        # (``_compile`` also sets ``drops``, see there)
        match = self._compile()
        object.__setattr__(self, "_match", match)
        # The compiled predicate itself, so ``f.matches(record)`` costs no
        # extra method call (it shadows the method below, kept for help()).
        object.__setattr__(self, "matches", match)

    # ``drops(pv, cls)``: is a message with this PV name and caproto class
    # dropped whatever its other attributes? None when the filter has no PV or
    # command condition. (The filtered print's shortcut, ``pcapca.skim``,
    # asks this before a message becomes a record.)
    drops: Optional[Callable] = field(default=None, init=False, repr=False, compare=False)

    def matches(self, record) -> bool:  # noqa: F811 (replaced per instance)
        """Does the record pass every condition?"""
        return self._match(record)

    def __call__(self, record) -> bool:
        return self._match(record)

    def __reduce__(self):
        # the conditions and the first packet's time: the checks are compiled again
        return (_restore, ({f.name: getattr(self, f.name) for f in fields(self) if f.init},
                           self._start.ts))

    def _compile(self) -> Callable:
        """One predicate of every condition, cheapest first (integer compares,
        then the class name and the PV through dict caches, then addresses);
        sets ``drops`` too."""
        checks: List[Callable] = []
        if self.since_ns is not None or self.until_ns is not None:
            checks.append(_time_check(self.since_ns, self.until_ns, self.since_relative,
                                      self.until_relative, self._start))
        if self.ports:
            ports = frozenset(self.ports)
            checks.append(lambda r: r.sport in ports or r.dport in ports)
        cls_ok = pv_ok = None
        if self.command or self.not_command:
            cls_ok = _class_ok(self.command, self.not_command)
            checks.append(lambda r: cls_ok(r.cls))
        if self.pv or self.not_pv:
            pv_ok = _name_ok(self.pv, self.not_pv)
            checks.append(lambda r: pv_ok(r.pv))
        object.__setattr__(self, "drops", _drops(pv_ok, cls_ok))
        if self.hosts:
            addr_ok = _address_ok(self.hosts)
            checks.append(lambda r: addr_ok(r.src) or addr_ok(r.dst))
        return _all_of(checks)


def _restore(conditions: dict, first_ts: Optional[int]) -> Filter:
    """A Filter unpickled (``Filter.__reduce__``)."""
    flt = Filter(**conditions)
    flt._start.ts = first_ts
    return flt


def _time_check(since, until, since_rel: bool, until_rel: bool, start: FirstPacket) -> Callable:
    """``since <= r.ts < until`` (either may be None; a relative one counts
    from ``start``)."""
    if since_rel or until_rel:
        def in_time(r):
            t = r.ts
            first = start.of(t)
            if since is not None and t < (first + since if since_rel else since):
                return False
            return until is None or t < (first + until if until_rel else until)
        return in_time
    if since is not None and until is not None:
        return lambda r: since <= r.ts < until
    if since is not None:
        return lambda r: r.ts >= since
    return lambda r: r.ts < until


def _class_ok(command, not_command) -> Callable:
    """Is a caproto class kept by the ``command``/``not_command`` patterns?"""
    want = Matcher(command) if command else None
    drop = Matcher(not_command) if not_command else None
    cache: Dict[type, bool] = {}

    def class_ok(cls, want=want, drop=drop, cache=cache):
        ok = cache.get(cls)
        if ok is None:
            name = cls.__name__
            ok = ((want is None or want(name)) and not (drop is not None and drop(name)))
            cache[cls] = ok
        return ok
    return class_ok


def _name_ok(pv, not_pv) -> Callable:
    """Is a PV name (None: no PV) kept by the ``pv``/``not_pv`` patterns?"""
    want = Matcher(pv) if pv else None
    drop = Matcher(not_pv) if not_pv else None
    pv_cache: Dict[Optional[str], bool] = {None: want is None}

    def name_ok(pv, want=want, drop=drop, cache=pv_cache):
        ok = cache.get(pv)
        if ok is None:
            ok = ((want is None or want(pv)) and not (drop is not None and drop(pv)))
            if len(cache) >= CACHE_MAX:
                cache.clear()
                cache[None] = want is None
            cache[pv] = ok
        return ok
    return name_ok


def _address_ok(hosts) -> Callable:
    """Is an address one of ``hosts`` (addresses and CIDR networks)?"""
    exact = frozenset(h for h in hosts if "/" not in h)
    nets = tuple(ipaddress.ip_network(h) for h in hosts if "/" in h)
    addr_cache: Dict[str, bool] = {}

    def addr_ok(addr: str) -> bool:
        ok = addr_cache.get(addr)
        if ok is None:
            ok = addr in exact
            if not ok and nets:
                try:
                    ip = ipaddress.ip_address(addr)
                except ValueError:
                    ip = None
                ok = ip is not None and any(
                    ip.version == n.version and ip in n for n in nets)
            if len(addr_cache) >= CACHE_MAX:
                addr_cache.clear()
            addr_cache[addr] = ok
        return ok
    return addr_ok


def _all_of(checks: List[Callable]) -> Callable:
    """One predicate: every check holds."""
    if not checks:
        return lambda r: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks
        return lambda r: a(r) and b(r)
    checks_t = tuple(checks)

    def match_all(r):
        for check in checks_t:
            if not check(r):
                return False
        return True
    return match_all
