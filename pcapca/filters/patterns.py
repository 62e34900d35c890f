"""Name patterns of a filter (``pv``, ``command``...): globs or ``re:`` regexes, checked and compiled."""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import re
import sys
from typing import Dict, Iterable, List, Optional, Tuple

from ..ca._caproto import Commands, EventCancelResponse
from ..errors import FilterError

REGEX_PREFIX = "re:"
_GLOB_CHARS = frozenset("*?[")
CACHE_MAX = 1 << 16          # entries of each per-name cache (then it starts afresh)
MAX_VALUES = 10_000       # per key: 10k globs compile to one regex in about a second
# Python's re backtracks: a re: pattern is searched only in names of at most
# this many characters (a longer one never matches it; CA names are far
# shorter), and nested repetition is refused (docs/filters.md, design.md)
MAX_REGEX_NAME = 256
# re's own parser (``re._parser`` since Python 3.11, ``sre_parse`` before)
_sre_parse = importlib.import_module("re._parser" if sys.version_info >= (3, 11) else "sre_parse")
_sre = importlib.import_module("re._constants" if sys.version_info >= (3, 11)
                               else "sre_constants")
_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT)
_NO_BACKTRACK = tuple(getattr(_sre, name) for name in ("ATOMIC_GROUP", "POSSESSIVE_REPEAT")
                      if hasattr(_sre, name))


class Matcher:
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
            if len(self.cache) >= CACHE_MAX:
                self.cache.clear()
            self.cache[name] = hit
        return hit



def as_list(key: str, values) -> List:
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
    return tuple(check_pattern(key, p) for p in as_list(key, patterns))


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

