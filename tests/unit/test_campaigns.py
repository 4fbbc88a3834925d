"""Campaigns (SPEC §9): data with maker-checker, conditions checked at creation, effects
on the purchase's lot, budgets and caps, in force by the purchase's occurred_at."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.ledger.application.ledger import Ledger
from services.ledger.domain import errors
from services.ledger.domain.campaigns.campaign import Terms
from services.ledger.domain.campaigns.conditions import InvalidCondition, compile_condition
from services.ledger.domain.campaigns.effects import InvalidEffect
from services.ledger.domain.clock import iso, utcnow
from services.ledger.domain.rules import ProgramRules

START = datetime(2026, 1, 2, tzinfo=UTC)  # a Friday
END = START + timedelta(days=7)


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, rules=ProgramRules())
    try:
        yield app
    finally:
        app.close()


def terms(campaign_id: str = "double", **changes: Any) -> Terms:
    fields: dict[str, Any] = {
        "campaign_id": campaign_id,
        "name": "Double points weekend",
        "condition": 'weekday in ["saturday", "sunday"]',
        "effect": {"kind": "multiplier", "factor": "2"},
        "starts_at": START,
        "ends_at": END,
        "budget_points": None,
        "per_customer_cap": None,
        "announced": True,
    }
    return Terms(**{**fields, **changes})


def active(ledger: Ledger, **changes: Any) -> str:
    t = terms(**changes)
    ledger.create_campaign(
        t, created_by="maria", created_with_key="k1", now=START - timedelta(days=1)
    )
    ledger.approve_campaign(
        t.campaign_id, approved_by="oskar", approver_key="k2", now=START - timedelta(hours=1)
    )
    return t.campaign_id


def purchase(
    n: int, when: datetime, value: str = "100.00", customer: str = "anna", **more: Any
) -> dict[str, Any]:
    return {
        "event_id": f"ev-{n}",
        "type": "purchase",
        "customer_id": customer,
        "occurred_at": iso(when),
        "store_id": "s-1",
        "schema_version": 1,
        "receipt_id": f"r-{n}",
        "amount": {"value": value, "currency": "EUR"},
        **more,
    }


SATURDAY = START + timedelta(days=1, hours=10)
MONDAY = START + timedelta(days=3, hours=10)


def test_a_campaign_waits_for_a_second_person_before_it_earns(ledger: Ledger) -> None:
    t = terms()
    created = ledger.create_campaign(t, created_by="maria", created_with_key="k1", now=START)
    assert created.status == "awaiting_approval"
    assert ledger.record(purchase(1, SATURDAY)).effect["points"] == 100
    with pytest.raises(errors.MakerChecker):
        ledger.approve_campaign("double", approved_by="maria", approver_key="k2", now=START)
    with pytest.raises(errors.MakerChecker):
        ledger.approve_campaign("double", approved_by="oskar", approver_key="k1", now=START)
    assert (
        ledger.approve_campaign("double", approved_by="oskar", approver_key="k2", now=START).status
        == "active"
    )
    with pytest.raises(errors.LedgerError) as second:
        ledger.approve_campaign("double", approved_by="olga", approver_key="k3", now=START)
    assert second.value.status == 409


def test_double_points_on_the_weekend_only(ledger: Ledger) -> None:
    active(ledger)
    weekend = ledger.record(purchase(1, SATURDAY))
    assert weekend.effect["points"] == 200
    assert weekend.effect["campaigns"] == [
        {"campaign_id": "double", "points": 100, "kind": "multiplier"}
    ]
    weekday = ledger.record(purchase(2, MONDAY))
    assert weekday.effect["points"] == 100 and weekday.effect["campaigns"] == []
    account = ledger.account("anna")
    assert account.lots["ev-1"].points == 200 and account.pending == 300


def test_a_refund_reverses_the_campaign_points_with_the_lot(ledger: Ledger) -> None:
    active(ledger)
    ledger.record(purchase(1, SATURDAY))
    refund = {
        **purchase(2, SATURDAY + timedelta(hours=1)),
        "type": "refund",
        "original_event_id": "ev-1",
        "amount": {"value": "50.00", "currency": "EUR"},
    }
    del refund["receipt_id"]
    outcome = ledger.record(refund)
    assert outcome.effect["points_reversed"] == 100  # half of 100 + 100 campaign points
    assert ledger.account("anna").pending == 100


def test_a_late_purchase_earns_what_it_would_have_on_time(ledger: Ledger) -> None:
    active(ledger)
    ledger.end_campaign("double", ended_by="oskar", now=SATURDAY + timedelta(hours=2))
    on_time = ledger.record(purchase(1, SATURDAY))  # recorded after the end, dated before
    after = ledger.record(purchase(2, SATURDAY + timedelta(hours=3)))
    assert on_time.effect["points"] == 200 and after.effect["points"] == 100


def test_bonus_category_multiplier_and_surprise(ledger: Ledger) -> None:
    active(
        ledger,
        campaign_id="coffee",
        condition="true",
        effect={"kind": "category_multiplier", "category": "coffee", "factor": "3"},
    )
    active(
        ledger,
        campaign_id="surprise",
        condition='customer.segment == "buyer"',
        effect={"kind": "bonus", "points": 50},
        announced=False,
    )
    items = [
        {
            "sku": "c1",
            "qty": 2,
            "unit_price": {"value": "5.00", "currency": "EUR"},
            "category": "coffee",
        },
        {"sku": "b1", "qty": 1, "unit_price": {"value": "10.00", "currency": "EUR"}},
    ]
    first = ledger.record(purchase(1, MONDAY, "20.00", items=items))
    assert first.effect["campaigns"] == [
        {"campaign_id": "coffee", "points": 20, "kind": "category_multiplier"}
    ]
    second = ledger.record(purchase(2, MONDAY + timedelta(hours=1), "20.00", items=items))
    assert second.effect["campaigns"][1] == {
        "campaign_id": "surprise",
        "points": 50,
        "kind": "bonus",
        "surprise": True,
    }


def test_a_stamp_card_gives_its_gift_on_the_last_stamp(ledger: Ledger) -> None:
    active(
        ledger,
        campaign_id="card",
        condition="amount >= 10",
        effect={"kind": "stamp", "stamps_needed": 3, "reward_points": 500},
    )
    grants = [
        ledger.record(purchase(n, MONDAY + timedelta(minutes=n), "10.00")).effect["campaigns"][0]
        for n in range(1, 5)
    ]
    assert [(g["stamps"], g["points"]) for g in grants] == [(1, 0), (2, 0), (0, 500), (1, 0)]


def test_budget_and_cap_are_never_exceeded(ledger: Ledger) -> None:
    cid = active(
        ledger,
        condition="true",
        effect={"kind": "bonus", "points": 40},
        budget_points=100,
        per_customer_cap=60,
    )
    points = [
        ledger.record(purchase(n, MONDAY + timedelta(minutes=n), customer=c)).effect["campaigns"]
        for n, c in enumerate(["anna", "anna", "anna", "ben", "ben", "cleo"], start=1)
    ]
    assert [p[0]["points"] if p else 0 for p in points] == [40, 20, 0, 40, 0, 0]
    assert ledger.campaign(cid).summary()["budget_used"] == 100


def test_a_condition_is_checked_when_the_campaign_is_created(ledger: Ledger) -> None:
    with pytest.raises(InvalidCondition) as unknown:
        ledger.create_campaign(
            terms(condition='amount > 5 and colour == "red"'),
            created_by="m",
            created_with_key=None,
            now=START,
        )
    assert unknown.value.position == 15 and "colour" in unknown.value.detail
    with pytest.raises(InvalidCondition) as typed:
        compile_condition('amount > "ten"')
    assert typed.value.position == 9
    with pytest.raises(InvalidCondition) as clock:
        compile_condition("$now > 0")
    assert clock.value.position == 0
    with pytest.raises(InvalidEffect):
        ledger.create_campaign(
            terms(effect={"kind": "multiplier", "factor": 2}),
            created_by="m",
            created_with_key=None,
            now=START,
        )
    assert ledger.load_campaigns() == []


def test_a_campaign_id_is_created_once(ledger: Ledger) -> None:
    ledger.create_campaign(terms(), created_by="m", created_with_key=None, now=utcnow())
    with pytest.raises(errors.EventIdConflict):
        ledger.create_campaign(terms(), created_by="m", created_with_key=None, now=utcnow())


def test_the_segment_a_condition_sees_is_the_buyer_ladder_before_the_purchase(
    ledger: Ledger,
) -> None:
    active(ledger, condition='customer.segment == "client"', effect={"kind": "bonus", "points": 7})
    earned = [
        ledger.record(purchase(n, MONDAY + timedelta(hours=n))).effect["campaigns"]
        for n in range(1, 6)
    ]
    # visitor, buyer, buyer (2 before), client (3 before), client
    assert [bool(c) for c in earned] == [False, False, False, True, True]
    late = ledger.record(purchase(9, START - timedelta(days=400), customer="anna"))
    assert late.effect.get("campaigns", []) == []  # out of force, whatever the segment


def test_a_condition_that_cannot_be_evaluated_for_a_purchase_does_not_meet_it(
    ledger: Ledger,
) -> None:
    active(ledger, condition='items[1].category == "coffee"', effect={"kind": "bonus", "points": 5})
    active(
        ledger,
        campaign_id="div",
        condition="100 / (amount - 100) > 1",
        effect={"kind": "bonus", "points": 9},
    )
    outcome = ledger.record(purchase(1, MONDAY))  # no items; amount - 100 == 0
    assert outcome.status == "accepted" and outcome.effect["campaigns"] == []


def test_a_comprehension_inside_another_is_refused_where_it_starts() -> None:
    nested = "[a for a in items if [b for b in items if b.sku == a.sku].length > 1].length > 0"
    with pytest.raises(InvalidCondition) as refused:
        compile_condition(nested)
    assert refused.value.position == nested.index("for b")
    side_by_side = (
        '[a for a in items if a.category == "coffee"].length > 0 and '
        '[b for b in items if b.category == "bakery"].length > 0'
    )
    assert compile_condition(side_by_side).text == side_by_side


def test_a_birthday_bonus_opens_the_sealed_birthday_and_stops_at_erasure(ledger: Ledger) -> None:
    """`birthday_today` reads the enrolment's birthday, stored sealed (SPEC §11): the
    customer whose birthday it is gets the bonus, another does not, and once the first is
    erased (the key gone) the birthday is unreadable and earns nothing."""
    active(
        ledger,
        campaign_id="birthday",
        condition="birthday_today",
        effect={"kind": "bonus", "points": 50},
    )
    for customer, birthday in (("anna", SATURDAY.strftime("--%m-%d")), ("ben", "--12-24")):
        enrolment = {
            "event_id": f"enrol-{customer}",
            "type": "enrolment",
            "customer_id": customer,
            "occurred_at": iso(START),
            "schema_version": 1,
            "birthday": birthday,
        }
        assert ledger.record(enrolment).status == "accepted"
    anna = ledger.record(purchase(1, SATURDAY))
    ben = ledger.record(purchase(2, SATURDAY, customer="ben"))
    assert [c["campaign_id"] for c in anna.effect["campaigns"]] == ["birthday"]
    assert ben.effect["campaigns"] == []
    ledger.keys.erase("anna")
    later = ledger.record(purchase(3, SATURDAY + timedelta(hours=1)))
    assert later.effect["campaigns"] == []
