"""Time as the rules see it: aware UTC datetimes in, ISO 8601 strings in stored events.

The times an operator or a client may give (`as_of`, a sweep's `now`) are bounded here:
UTC years 1970 to 9998 (the rules add months and years to a time, and an offset near year 1
or 9999 overflows the conversion to UTC), and a sweep not later than the ledger clock plus
`TICK_CLOCK_SKEW`.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

EARLIEST_YEAR, LATEST_YEAR = 1970, 9998
# How far ahead of the ledger clock an admin may date a sweep: a tick dated later would
# expire lots irreversibly before their time. The margin covers clocks a little apart.
TICK_CLOCK_SKEW = timedelta(minutes=5)


def in_ledger_range(moment: datetime) -> datetime:
    """`moment` in UTC, if the ledger can store and compute with it; else ValueError."""
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            f"must be a time between the years {EARLIEST_YEAR} and {LATEST_YEAR} in UTC"
        ) from None
    if not EARLIEST_YEAR <= utc.year <= LATEST_YEAR:
        raise ValueError(
            f"must be a time between the years {EARLIEST_YEAR} and {LATEST_YEAR} in UTC; "
            f"got {utc.year}"
        )
    return utc


def not_ahead_of(moment: datetime, clock: datetime) -> str | None:
    """Why `moment` may not date a sweep run at `clock` (None when it may)."""
    latest = clock + TICK_CLOCK_SKEW
    if moment > latest:
        minutes = int(TICK_CLOCK_SKEW.total_seconds() // 60)
        return (
            f"must not be later than the ledger clock plus {minutes} minutes "
            f"({latest.isoformat()}); a sweep dated ahead would expire lots before their time"
        )
    return None


def parse_ts(value: str) -> datetime:
    """An RFC 3339 timestamp (with offset) as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without offset: {value!r}")
    return parsed.astimezone(UTC)


def iso(moment: datetime) -> str:
    """The stored form: UTC, ISO 8601, microseconds kept only when present."""
    return (moment if moment.tzinfo is UTC else moment.astimezone(UTC)).isoformat()


def utcnow() -> datetime:
    return datetime.now(UTC)


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar months, clamping the day (31 Jan + 1 month = 28/29 Feb)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def days(n: int) -> timedelta:
    return timedelta(days=n)
