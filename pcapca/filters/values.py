"""The host, port and time values of a filter, parsed and checked."""
from __future__ import annotations

import calendar
import datetime
import ipaddress
import re
from decimal import Decimal, InvalidOperation
from typing import Tuple

from ..errors import FilterError


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

