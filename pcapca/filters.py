"""Which CA messages to keep: ``--pv``, ``--command``, ``--host``, ``--port``,
``--since``/``--until`` (and the same keys under ``filter:`` in a config file).

Semantics (docs/filters.md has the user's version):

* Patterns (``pv``, ``not_pv``, ``command``, ``not_command``) are shell globs
  matched case-sensitively against the whole name (``fnmatch.fnmatchcase``),
  or, with a ``re:`` prefix, Python regular expressions *searched* in the name
  (``re.search``, like grep: anchor with ``^...$`` for a whole-name match).
* Within one kind, any value may match; every kind given must match; a
  message matched by ``not_pv`` / ``not_command`` is dropped.
* A message without a PV (version, host/client name, echo, beacon, search
  replies that cannot be paired...) never matches ``pv`` and is never
  excluded by ``not_pv``.
* ``host``: an IPv4/IPv6 address or a CIDR network, matched against the
  message's source or destination address. ``port``: matched against its
  source or destination port.
* ``since`` (inclusive) and ``until`` (exclusive) are compared with the exact
  integer-nanosecond time stamp of the packet that completed the message.
  They are ISO 8601 date-times (a time without an offset is UTC), epoch
  seconds with up to 9 decimals, or ``+SECONDS``: seconds after the first
  packet of the capture (Wireshark's default Time column), known once the
  reading starts (``Filter.anchor``).

``Filter.build(...)`` validates everything up front and raises ``FilterError``
(naming the key and the bad value); ``Filter.matches(record)`` is then a
chain of precompiled checks, cheapest first, with per-name caches.
"""
from __future__ import annotations

import calendar
import datetime
import difflib
import fnmatch
import ipaddress
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from .ca._caproto import Commands, EventCancelResponse
from .errors import FilterError

__all__ = ["Filter", "FilterError", "FirstPacket", "FILTER_KEYS", "parse_time", "parse_when", "parse_host",
           "parse_port", "check_patterns", "command_names"]

FILTER_KEYS = ("pv", "not_pv", "command", "not_command", "host", "port", "since", "until")
REGEX_PREFIX = "re:"
_GLOB_CHARS = frozenset("*?[")
_CACHE_MAX = 1 << 16
MAX_VALUES = 10_000       # per key: 10k globs compile to one regex in about a second
# Python's re backtracks: a re: pattern is searched only in names of at most
# this many characters (a longer one never matches it; CA names are far
# shorter), and nested repetition is refused (docs/filters.md, design.md)
MAX_REGEX_NAME = 256


# ------------------------------------------------------------------ patterns
class _Matcher:
    """A compiled list of name patterns: exact names in a set, globs in one
    regex, ``re:`` patterns each compiled; results cached per name."""
    __slots__ = ("exact", "glob", "regexes", "cache")

    def __init__(self, patterns: Iterable[str]):
        exact, globs, regexes = set(), [], []
        for p in patterns:
            if p.startswith(REGEX_PREFIX):
                regexes.append(re.compile(p[len(REGEX_PREFIX):]))
            elif _GLOB_CHARS.isdisjoint(p):
                exact.add(p)
            else:
                globs.append(fnmatch.translate(p))
        self.exact = frozenset(exact)
        self.glob = re.compile("|".join(globs)).match if globs else None
        self.regexes = tuple(r.search for r in regexes)
        self.cache: Dict[str, bool] = {}

    def _compute(self, name: str) -> bool:
        if name in self.exact:
            return True
        if self.glob is not None and self.glob(name):
            return True
        if len(name) <= MAX_REGEX_NAME:
            for search in self.regexes:
                if search(name):
                    return True
        return False

    def __call__(self, name: str) -> bool:
        hit = self.cache.get(name)
        if hit is None:
            hit = self._compute(name)
            if len(self.cache) >= _CACHE_MAX:
                self.cache.clear()
            self.cache[name] = hit
        return hit


def _as_list(key: str, values) -> List:
    if values is None:
        return []
    if isinstance(values, (str, int)):
        return [values]
    values = list(values)
    if len(values) > MAX_VALUES:
        raise FilterError(key, f"{len(values)} values: at most {MAX_VALUES} per key")
    return values


def check_pattern(key: str, pattern) -> str:
    """Validate one pattern of ``key``; return it. Raises FilterError."""
    if not isinstance(pattern, str):
        raise FilterError(key, f"expected a string pattern, got {pattern!r}")
    if pattern == "" or pattern == REGEX_PREFIX:
        raise FilterError(key, f"empty pattern {pattern!r}")
    if pattern.startswith(REGEX_PREFIX):
        try:
            re.compile(pattern[len(REGEX_PREFIX):])
        except re.error as exc:
            raise FilterError(key, f"bad regular expression {pattern!r}: {exc}") from None
        if _nested_repeat(_sre_parse.parse(pattern[len(REGEX_PREFIX):]), False):
            raise FilterError(key, f"regular expression {pattern!r} repeats a group that "
                                   f"itself repeats or alternates, as (a+)+ does: Python's re "
                                   f"can take hours on one name with it; write it without the "
                                   f"nesting, or as a glob")
    elif key in ("command", "not_command"):
        names = command_names()
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            near = difflib.get_close_matches(pattern, sorted(names), n=3)
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise FilterError(key, f"{pattern!r} matches no CA command name{hint}; names are "
                                   f"caproto class names like ReadNotifyResponse")
    return pattern


try:                                          # (re's own parser: Python 3.11+, then 3.10)
    from re import _constants as _sre, _parser as _sre_parse
except ImportError:                           # pragma: no cover
    import sre_constants as _sre
    import sre_parse as _sre_parse
_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT)
_NO_BACKTRACK = tuple(getattr(_sre, name) for name in ("ATOMIC_GROUP", "POSSESSIVE_REPEAT")
                      if hasattr(_sre, name))


def _nested_repeat(items, inside: bool) -> bool:
    """Does a repeated part of a parsed pattern hold another repeat or an
    alternation (the shapes on which backtracking is exponential)? Atomic
    groups and possessive repeats do not backtrack."""
    for op, av in items:
        if op in _REPEATS:
            low, high, sub = av
            if high > 1 and inside and low != high:      # (a{2})+ is one way only
                return True
            if _nested_repeat(sub, inside or high > 1):
                return True
        elif op is _sre.BRANCH:
            if inside:
                return True
            if any(_nested_repeat(branch, inside) for branch in av[1]):
                return True
        elif op is _sre.SUBPATTERN:
            if _nested_repeat(av[-1], inside):
                return True
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT):
            if _nested_repeat(av[1], inside):
                return True
        elif op is _sre.GROUPREF_EXISTS:
            if any(_nested_repeat(b, inside) for b in av[1:] if b is not None):
                return True
        elif op in _NO_BACKTRACK:
            continue
    return False


def check_patterns(key: str, patterns) -> Tuple[str, ...]:
    return tuple(check_pattern(key, p) for p in _as_list(key, patterns))


_COMMAND_NAMES: Optional[frozenset] = None


def command_names() -> frozenset:
    """Every class name a record's ``name`` can have."""
    global _COMMAND_NAMES
    if _COMMAND_NAMES is None:
        names = {cls.__name__ for table in Commands.values() for cls in table.values()}
        names.add(EventCancelResponse.__name__)
        names.add("UnknownCommand")
        _COMMAND_NAMES = frozenset(names)
    return _COMMAND_NAMES


# ------------------------------------------------------------------ hosts, ports
def parse_host(value) -> str:
    """An address or CIDR network, normalised (``'10.0.0.0/24'``, ``'10.0.0.1'``)."""
    if not isinstance(value, str):
        raise FilterError("host", f"expected an address or CIDR network as a string, "
                                  f"got {value!r}")
    text = value.strip()
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text, strict=True))
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise FilterError("host", f"bad address or CIDR network {value!r}: {exc}") from None


def parse_port(value) -> int:
    if isinstance(value, bool):
        raise FilterError("port", f"expected a port number, got {value!r}")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not 0 <= value <= 65535:
        raise FilterError("port", f"bad port {value!r}: expected an integer 0..65535")
    return value


# ------------------------------------------------------------------ times
_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)"
    r"(?:[Tt ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d{1,9}))?)?)?"
    r"\s*(?:([Zz])|([+-])(\d\d):?(\d\d))?")
_EPOCH = re.compile(r"-?(\d+(\.\d*)?|\.\d+)")
_RELATIVE = re.compile(r"\+(\d+(\.\d*)?|\.\d+)")


def parse_time(value, key: str = "since") -> int:
    """Integer nanoseconds since the epoch from ISO 8601 text (no offset =
    UTC) or epoch seconds (int, float or decimal text, up to 9 decimals)."""
    if isinstance(value, bool):
        raise FilterError(key, f"expected a date-time or epoch seconds, got {value!r}")
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        delta = value - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return ((delta.days * 86400 + delta.seconds) * 1_000_000_000
                + delta.microseconds * 1000)
    if isinstance(value, (int, float)):
        value = repr(value)          # the shortest text that gives the float back
    if not isinstance(value, str):
        raise FilterError(key, f"expected a date-time or epoch seconds, got {value!r}")
    text = value.strip()
    if _EPOCH.fullmatch(text):
        try:
            d = Decimal(text)
        except InvalidOperation:
            d = None
        if d is not None:
            ns = d * 1_000_000_000
            if ns != ns.to_integral_value():
                raise FilterError(key, f"bad time {value!r}: more than 9 decimals")
            return int(ns)
    m = _ISO.fullmatch(text)
    if not m:
        raise FilterError(key, f"bad time {value!r}: expected ISO 8601 like "
                               f"2026-11-29T18:44:00Z / 2026-11-29T19:44:00.5+01:00 "
                               f"(no offset = UTC), epoch seconds like 1795977745.5 or "
                               f"+SECONDS after the capture's first packet like +12.5")
    (year, month, day, hour, minute, second, frac, _zulu, sign, oh, om) = m.groups()
    try:
        year, month, day = int(year), int(month), int(day)
        hour, minute, second = int(hour or 0), int(minute or 0), int(second or 0)
        if not 1 <= month <= 12:
            raise ValueError("month out of range")
        if not 1 <= day <= calendar.monthrange(year, month)[1]:
            raise ValueError("day out of range for the month")
        if hour > 23 or minute > 59 or second > 59:
            raise ValueError("time of day out of range")
        if sign and (int(oh) > 23 or int(om) > 59):
            raise ValueError("UTC offset out of range")
    except ValueError as exc:
        raise FilterError(key, f"bad time {value!r}: {exc}") from None
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if sign:
        offset = int(oh) * 3600 + int(om) * 60
        seconds -= offset if sign == "+" else -offset
    ns = int((frac or "").ljust(9, "0") or 0)
    return seconds * 1_000_000_000 + ns


def parse_when(value, key: str = "since") -> Tuple[int, bool]:
    """(nanoseconds, relative): ``+SECONDS`` (up to 9 decimals) is relative to
    the capture's first packet; anything else is ``parse_time``'s."""
    if isinstance(value, str) and _RELATIVE.fullmatch(value.strip()):
        ns = Decimal(value.strip()[1:]) * 1_000_000_000
        if ns != ns.to_integral_value():
            raise FilterError(key, f"bad time {value!r}: more than 9 decimals")
        return int(ns), True
    return parse_time(value, key), False


# ------------------------------------------------------------------ the filter
class FirstPacket:
    """The time stamp (ns) of the capture's first packet, from which
    ``+SECONDS`` times and ``{time_relative}`` count: given by ``anchor``
    (``pipeline.first_packet``; the first call counts) or, when never
    given, the first time stamp asked about (``of``)."""
    __slots__ = ("ts",)

    def __init__(self) -> None:
        self.ts: Optional[int] = None

    def anchor(self, ts: int) -> None:
        if self.ts is None:
            self.ts = ts

    def of(self, ts: int) -> int:
        """The first packet's time stamp (``ts`` if none was given yet)."""
        if self.ts is None:
            self.ts = ts
        return self.ts


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
        hosts = [parse_host(h) for h in _as_list("host", host)]
        return cls(pv=check_patterns("pv", pv), not_pv=check_patterns("not_pv", not_pv),
                   command=check_patterns("command", command),
                   not_command=check_patterns("not_command", not_command),
                   hosts=tuple(dict.fromkeys(hosts)),
                   ports=tuple(dict.fromkeys(parse_port(p) for p in _as_list("port", port))),
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

    # Each condition is a predicate on the record; they run cheapest first
    # (integer compares, then the class name and the PV through dict caches,
    # then addresses).
    def _compile(self) -> Callable:
        checks: List[Callable] = []
        since, until = self.since_ns, self.until_ns
        if self.relative:
            start, since_rel, until_rel = self._start, self.since_relative, self.until_relative

            def in_time(r):
                t = r.ts
                first = start.of(t)
                if since is not None and t < (first + since if since_rel else since):
                    return False
                return until is None or t < (first + until if until_rel else until)
            checks.append(in_time)
        elif since is not None and until is not None:
            checks.append(lambda r: since <= r.ts < until)
        elif since is not None:
            checks.append(lambda r: r.ts >= since)
        elif until is not None:
            checks.append(lambda r: r.ts < until)

        if self.ports:
            ports = frozenset(self.ports)
            checks.append(lambda r: r.sport in ports or r.dport in ports)

        cls_ok = pv_ok = None
        if self.command or self.not_command:
            want = _Matcher(self.command) if self.command else None
            drop = _Matcher(self.not_command) if self.not_command else None
            cache: Dict[type, bool] = {}

            def class_ok(cls, want=want, drop=drop, cache=cache):
                ok = cache.get(cls)
                if ok is None:
                    name = cls.__name__
                    ok = ((want is None or want(name)) and not (drop is not None and drop(name)))
                    cache[cls] = ok
                return ok
            cls_ok = class_ok
            checks.append(lambda r: class_ok(r.cls))

        if self.pv or self.not_pv:
            want = _Matcher(self.pv) if self.pv else None
            drop = _Matcher(self.not_pv) if self.not_pv else None
            pv_cache: Dict[Optional[str], bool] = {None: want is None}

            def name_ok(pv, want=want, drop=drop, cache=pv_cache):
                ok = cache.get(pv)
                if ok is None:
                    ok = ((want is None or want(pv)) and not (drop is not None and drop(pv)))
                    if len(cache) >= _CACHE_MAX:
                        cache.clear()
                        cache[None] = want is None
                    cache[pv] = ok
                return ok
            pv_ok = name_ok
            checks.append(lambda r: name_ok(r.pv))
        object.__setattr__(self, "drops", _drops(pv_ok, cls_ok))

        if self.hosts:
            exact = frozenset(h for h in self.hosts if "/" not in h)
            nets = tuple(ipaddress.ip_network(h) for h in self.hosts if "/" in h)
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
                    if len(addr_cache) >= _CACHE_MAX:
                        addr_cache.clear()
                    addr_cache[addr] = ok
                return ok
            checks.append(lambda r: addr_ok(r.src) or addr_ok(r.dst))

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
