"""Time stamps (integer nanoseconds since the epoch) as UTC text, for any value."""
from __future__ import annotations

from typing import Tuple


def utc(ts: int) -> Tuple[str, str, int]:
    """("YYYY-MM-DD", "HH:MM:SS", nanoseconds) of a time stamp (integer ns
    since the epoch), in UTC, for any value: a damaged capture's time stamp
    can lie past year 9999, where datetime gives up (the year then has more
    digits)."""
    sec, ns = divmod(ts, 1_000_000_000)
    days, sec = divmod(sec, 86400)
    # days -> civil date (H. Hinnant's days_from_civil inverse, proleptic Gregorian)
    z = days + 719468
    era, doe = divmod(z, 146097)
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    return (f"{year:04d}-{month:02d}-{day:02d}",
            f"{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}", ns)


def iso(ts: int) -> str:
    """ISO 8601 UTC with the nanosecond digits: 2026-11-29T18:44:05.559352000Z"""
    date, time, ns = utc(ts)
    return f"{date}T{time}.{ns:09d}Z"
