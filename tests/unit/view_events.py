"""Hand-written account events, in the shape the store keeps them, for the view tests.

Each builder returns `(kind, fields)` as a decoded stored event: the business fields the
account's event carries, with its double-entry postings. `fold` applies them to one
customer's view the way the live runner does (the watch re-evaluated after each event)
and returns the view and every change it reported.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.ledger.domain.clock import add_months, iso
from services.ledger.domain.rules import ProgramRules
from services.projections.views.customer import CustomerView
from services.projections.views.watch import Change, Watch

RULES = ProgramRules().with_version(1)
T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
Event = tuple[str, dict[str, Any]]


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def purchase(event_id: str, when: datetime, amount: str, points: int | None = None) -> Event:
    points = int(float(amount)) if points is None else points
    return "PurchaseRecorded", {
        "event_id": event_id,
        "occurred_at": iso(when),
        "store_id": "riga-1",
        "receipt_id": f"r-{event_id}",
        "amount": amount,
        "currency": "EUR",
        "points": points,
        "tier": "bronze",
        "multiplier": "1.0",
        "rule_version": 1,
        "matures_at": iso(when + timedelta(days=14)),
        "expires_at": iso(add_months(when, 12)),
        "postings": [["program:issued", -points], ["customer:pending", points]] if points else [],
    }


def refund(event_id: str, when: datetime, original: str, amount: str, points: int) -> Event:
    return "RefundRecorded", {
        "event_id": event_id,
        "occurred_at": iso(when),
        "store_id": "riga-1",
        "original_event_id": original,
        "amount": amount,
        "currency": "EUR",
        "points_reversed": points,
        "takes": [[original, "pending", points]],
        "debt_added": 0,
        "rule_version": 1,
        "postings": [["customer:pending", -points], ["program:issued", points]],
    }


def review(
    event_id: str, when: datetime, rating: int, *, touchpoint: str = "sales", points: int = 0
) -> Event:
    return "ReviewRecorded", {
        "event_id": event_id,
        "occurred_at": iso(when),
        "store_id": "riga-1",
        "rating": rating,
        "touchpoint": touchpoint,
        "comment": None,
        "receipt_id": None,
        "points": points,
        "expires_at": iso(add_months(when, 12)),
        "no_reward_reason": None if points else "one rewarded review per purchase: none left",
        "debt_repaid": 0,
        "rule_version": 1,
        "postings": [["program:issued", -points], ["customer:available", points]] if points else [],
    }


def incident(event_id: str, when: datetime) -> Event:
    return "IncidentReported", {
        "event_id": event_id,
        "occurred_at": iso(when),
        "store_id": "riga-1",
        "severity": "high",
        "description": "the car came back with a scratch",
    }


def goodwill(
    event_id: str,
    when: datetime,
    points: int = 100,
    *,
    incident_id: str | None = None,
    granted_at: datetime | None = None,
) -> Event:
    return "GoodwillGranted", {
        "event_id": event_id,
        "occurred_at": iso(when),
        "granted_at": iso(granted_at or when),
        "store_id": "riga-1",
        "points": points,
        "amount": None,
        "currency": None,
        "reason_code": "sorry",
        "incident_id": incident_id,
        "issued_by": "agent-1",
        "approved_by": None,
        "expires_at": iso(add_months(granted_at or when, 12)),
        "debt_repaid": 0,
        "rule_version": 1,
        "postings": [["program:issued", -points], ["customer:available", points]],
    }


def referral_rewarded(referee: str, when: datetime, points: int = 500) -> Event:
    return "ReferralRewarded", {
        "lot_id": f"referral:{referee}",
        "occurred_at": iso(when),
        "referee_id": referee,
        "points": points,
        "expires_at": iso(add_months(when, 12)),
        "debt_repaid": 0,
        "rule_version": 1,
        "postings": [["program:issued", -points], ["customer:available", points]],
    }


def matured(lot_id: str, when: datetime, points: int) -> Event:
    return "PointsMatured", {
        "lot_id": lot_id,
        "occurred_at": iso(when),
        "points": points,
        "debt_repaid": 0,
        "referral_reward_to": None,
        "postings": [["customer:pending", -points], ["customer:available", points]],
    }


def fold(
    events: list[Event], rules: ProgramRules = RULES, *, customer: str = "cust-1"
) -> tuple[CustomerView, list[Change]]:
    """One customer's view after `events`, and every change the watch reported."""
    view = CustomerView(customer, "00000000-0000-0000-0000-000000000001", 1, Watch())
    assert view.watch is not None
    changes = view.watch.refresh(view, "Opened", {}, rules)
    for position, (kind, fields) in enumerate(events, start=2):
        view.apply(position, kind, fields, rules)
        changes += view.watch.refresh(view, kind, fields, rules)
    return view, changes
