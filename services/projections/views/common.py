"""What every view shares: the stored event topics, time and money in the forms the views keep.

Times stay the strings the write side stored (`iso()`: UTC, `+00:00`, six fraction digits
or none), which sort in time order as plain strings, so the fold compares strings and
parses a time only where it computes with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from services.ledger.domain import topics
from services.ledger.domain.currencies import minor_unit
from services.ledger.domain.lots import AVAILABLE, DEBT, PENDING

# The stored topics the read side folds (the contract is `domain/topics.py`).
OPENED = topics.OPENED
ACCOUNT_KINDS = topics.ACCOUNT_KINDS  # topic -> event name
PROGRAM_KINDS = topics.PROGRAM_KINDS
ACCOUNT_TOPICS = tuple(sorted(topics.ACCOUNT_EVENTS.values()))
PROGRAM_TOPICS = tuple(topics.RULES_IN_FORCE_EVENTS.values())

# SPEC §4 "rolling 12 months" for the segment ladder and lifetime value.
YEAR = timedelta(days=365)
CENT = Decimal("0.01")
ZERO = Decimal("0")

Data = dict[str, Any]


def account_event_names() -> list[str]:
    """Every stored event of the customer account, by name (the fold handles each)."""
    return sorted(topics.ACCOUNT_EVENTS)


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


def in_minor_units(value: Decimal, currency: str) -> str:
    """Derived money (LTV, `m`) rounded to the currency's ISO 4217 minor unit (SPEC §8):
    EUR "55.50", JPY "6665", BHD "1.234"; half to even, as `Decimal.quantize`."""
    return str(value.quantize(Decimal(1).scaleb(-minor_unit(currency))))


def at_least(moment: str | None, other: str | None) -> str | None:
    if moment is None:
        return other
    if other is None:
        return moment
    return moment if moment >= other else other
