"""Time as the rules see it: aware UTC datetimes in, ISO 8601 strings in stored events."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta


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
