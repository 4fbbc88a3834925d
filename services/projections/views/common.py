"""What every view shares: the stored event topics, time and money in the forms the views keep.

Times stay the strings the write side stored (`iso()`: UTC, `+00:00`, six fraction digits
or none), which sort in time order as plain strings, so the fold compares strings and
parses a time only where it computes with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.lots import AVAILABLE, DEBT, PENDING
from services.ledger.domain.program import Program

ACCOUNT_PREFIX = f"{CustomerAccount.__module__}:{CustomerAccount.__qualname__}."
PROGRAM_PREFIX = f"{Program.__module__}:{Program.__qualname__}."
OPENED = ACCOUNT_PREFIX + "Opened"
PROGRAM_TOPICS = (PROGRAM_PREFIX + "Started", PROGRAM_PREFIX + "RulesChanged")

# SPEC §4 "rolling 12 months" for the segment ladder and lifetime value.
YEAR = timedelta(days=365)
CENT = Decimal("0.01")
ZERO = Decimal("0")

Data = dict[str, Any]


def account_event_names() -> list[str]:
    """Every event class the customer account defines, by name (the fold handles each)."""
    from eventsourcing.domain import Aggregate

    return sorted(
        name
        for name, value in vars(CustomerAccount).items()
        if isinstance(value, type)
        and issubclass(value, Aggregate.Event)
        and name not in ("Event", "Created")
    )


def customer_deltas(data: Data) -> tuple[int, int, int]:
    """The event's moves on the customer's available, pending and owed (debt) points."""
    available = pending = debt = 0
    for account, delta in data.get("postings") or ():
        if account == AVAILABLE:
            available += delta
        elif account == PENDING:
            pending += delta
        elif account == DEBT:
            debt -= delta
    return available, pending, debt


def moment_of(kind: str, data: Data) -> str | None:
    """When an event took effect, by the POS or ledger clock in its fields (not recorded_at):
    a goodwill grant when it was granted, a decision when it was made, else occurred_at."""
    if kind == "GoodwillGranted":
        return str(data["granted_at"])
    found = data.get("occurred_at") or data.get("decided_at")
    return str(found) if found is not None else None


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


def money(value: Decimal) -> str:
    """A decimal string with at least two decimals ("1000" -> "1000.00", "2.125" kept)."""
    cents = value.quantize(CENT)
    return str(cents) if cents == value else str(value.normalize())


def at_least(moment: str | None, other: str | None) -> str | None:
    if moment is None:
        return other
    if other is None:
        return moment
    return moment if moment >= other else other
