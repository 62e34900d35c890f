"""Name patterns of a filter (``pv``, ``command``...): globs or ``re:`` regexes, checked and compiled."""
from __future__ import annotations

import difflib
import fnmatch
import re
from typing import Dict, Iterable, List, Optional, Tuple

from ..ca._caproto import Commands, EventCancelResponse
from ..errors import FilterError

REGEX_PREFIX = "re:"
_GLOB_CHARS = frozenset("*?[")
CACHE_MAX = 1 << 16          # entries of each per-name cache (then it starts afresh)


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
    return list(values)


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
    elif key in ("command", "not_command"):
        names = command_names()
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            near = difflib.get_close_matches(pattern, sorted(names), n=3)
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise FilterError(key, f"{pattern!r} matches no CA command name{hint}; names are "
                                   f"caproto class names like ReadNotifyResponse")
    return pattern


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

