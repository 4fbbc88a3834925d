"""Time as POS traffic brings it (SPEC §8): no events from the future, no follow-up before
its original, and a late event earns by the rules in force when it occurred."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.ledger.application.ledger import Ledger
from services.ledger.domain import errors
from services.ledger.domain.clock import iso, utcnow
from services.ledger.domain.rules import ProgramRules


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, rules=ProgramRules())
    try:
        yield app
    finally:
        app.close()


def event(kind: str, n: int, when: Any, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"ev-{n}",
        "type": kind,
        "customer_id": "anna",
        "occurred_at": iso(when),
        "store_id": "s-1",
        "schema_version": 1,
        **fields,
    }


def purchase(n: int, when: Any, value: str = "100.00") -> dict[str, Any]:
    return event(
        "purchase", n, when, receipt_id=f"r-{n}", amount={"value": value, "currency": "EUR"}
    )


def test_an_event_beyond_the_future_skew_is_refused(ledger: Ledger) -> None:
    outcome = ledger.record(purchase(1, utcnow() + timedelta(seconds=301)))
    assert outcome.status == "rejected"
    assert outcome.error is not None and outcome.error.slug == "occurred-in-future"
    assert outcome.error.status == 422
    assert ledger.record(purchase(2, utcnow() + timedelta(seconds=60))).status == "accepted"


def test_a_purchase_dated_2099_cannot_enter_the_tier_window(ledger: Ledger) -> None:
    outcome = ledger.record(purchase(1, utcnow().replace(year=2099), "9000.00"))
    assert outcome.status == "rejected" and outcome.error is not None
    assert outcome.error.slug == "occurred-in-future"
    assert ledger.find_account("anna") is None  # nothing of it was recorded


def test_a_refund_dated_before_its_purchase_is_refused(ledger: Ledger) -> None:
    bought = utcnow() - timedelta(days=2)
    assert ledger.record(purchase(1, bought)).status == "accepted"
    refund = event(
        "refund",
        2,
        bought - timedelta(hours=1),
        original_event_id="ev-1",
        amount={"value": "10.00", "currency": "EUR"},
    )
    outcome = ledger.record(refund)
    assert outcome.error is not None and outcome.error.slug == "before-original"
    assert outcome.error.status == 422
    refund.update(event_id="ev-3", occurred_at=iso(bought + timedelta(hours=1)))
    assert ledger.record(refund).status == "accepted"


def test_a_redemption_cancel_dated_before_its_redemption_is_refused(ledger: Ledger) -> None:
    start = utcnow() - timedelta(days=40)
    ledger.record(purchase(1, start))
    ledger.tick(start + timedelta(days=15), ["anna"])
    redeemed = start + timedelta(days=20)
    assert ledger.record(event("redemption", 2, redeemed, points=10, reward_id="mug")).status == (
        "accepted"
    )
    cancel = event(
        "redemption_cancel", 3, redeemed - timedelta(minutes=1), original_event_id="ev-2"
    )
    outcome = ledger.record(cancel)
    assert outcome.error is not None and outcome.error.slug == "before-original"


def test_a_late_purchase_earns_by_the_rules_in_force_when_it_occurred(ledger: Ledger) -> None:
    before_the_change = utcnow() - timedelta(days=1)
    ledger.change_rules(
        replace(ledger.rules, earn_rate=Decimal("2")), changed_by="admin-1", reason="double"
    )
    late = ledger.record(purchase(1, before_the_change))
    on_time = ledger.record(purchase(2, utcnow()))
    assert late.effect["points"] == 100 and late.effect["rule_version"] == 1
    assert on_time.effect["points"] == 200 and on_time.effect["rule_version"] == 2


def test_a_rule_change_takes_effect_from_its_effective_from(ledger: Ledger) -> None:
    soon = utcnow() + timedelta(seconds=120)
    ledger.change_rules(
        replace(ledger.rules, earn_rate=Decimal("3")),
        changed_by="admin-1",
        reason="triple from soon",
        effective_from=soon,
    )
    assert ledger.record(purchase(1, soon - timedelta(seconds=60))).effect["points"] == 100
    assert ledger.record(purchase(2, soon + timedelta(seconds=60))).effect["points"] == 300


def test_a_rule_change_cannot_start_in_the_past(ledger: Ledger) -> None:
    with pytest.raises(errors.InvalidRules, match="in the past"):
        ledger.change_rules(
            replace(ledger.rules, earn_rate=Decimal("2")),
            changed_by="admin-1",
            reason="backdated",
            effective_from=utcnow() - timedelta(hours=1),
        )
    assert ledger.refresh_rules().earn_rate == Decimal("1")
