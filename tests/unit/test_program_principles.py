"""SPEC §9 (seed 004): enrolment, paying with points, checkout holds, donations and
opening balances, told as small stories on the customer account (no store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.ledger.domain import errors
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.lots import AVAILABLE, DEBT, HELD, PENDING
from services.ledger.domain.rules import ProgramRules

RULES = ProgramRules().with_version(1)
T0 = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def enrol(account: CustomerAccount, event_id: str = "e-1", when: datetime = T0) -> dict[str, Any]:
    return account.enrol(
        event_id=event_id,
        occurred_at=when,
        store_id=None,
        channel="app",
        birthday="--04-17",
        rules=RULES,
    )


def buy(
    account: CustomerAccount, amount: str, event_id: str, tender: str | None = None
) -> dict[str, Any]:
    return account.record_purchase(
        event_id=event_id,
        occurred_at=T0,
        store_id="s-1",
        receipt_id=f"r-{event_id}",
        amount=Decimal(amount),
        currency="EUR",
        rules=RULES,
        points_tender=None if tender is None else Decimal(tender),
        tender_currency=None if tender is None else "EUR",
    )


def hold(
    account: CustomerAccount, points: int, event_id: str, when: datetime = T0, seconds: int = 0
) -> dict[str, Any]:
    return account.hold(
        event_id=event_id,
        occurred_at=when,
        store_id=None,
        points=points,
        reward_id="mug",
        hold_seconds=seconds or None,
        rules=RULES,
    )


def postings(account: CustomerAccount) -> list[tuple[str, int]]:
    """Every posting leg of the account's events so far (kept by the test: collecting
    the events empties the account's list)."""
    kept = account.__dict__.setdefault("_kept_legs", [])
    for e in account.collect_events():
        kept += [(str(name), int(points)) for name, points in getattr(e, "postings", ())]
    return list(kept)


def customer_postings(account: CustomerAccount) -> int:
    """The customer's legs of every posting: available + pending + held - debt."""
    return sum(p for name, p in postings(account) if name in (AVAILABLE, PENDING, HELD, DEBT))


def all_postings_sum(account: CustomerAccount) -> int:
    return sum(p for _, p in postings(account))


# ---- enrolment -------------------------------------------------------------------------
def test_enrolment_gives_the_welcome_points_available_at_once() -> None:
    account = CustomerAccount("anna")
    effect = enrol(account)
    assert effect["welcome_points"] == RULES.welcome_points == 100
    assert account.available == 100 and account.pending == 0
    assert account.lots["e-1"].source == "welcome"
    assert account.birthday == "--04-17"  # what a birthday campaign reads


def test_a_second_enrolment_is_refused_as_already_enrolled() -> None:
    account = CustomerAccount("anna")
    enrol(account)
    with pytest.raises(errors.AlreadyEnrolled) as refused:
        enrol(account, "e-2", at(60))
    assert refused.value.slug == "already-enrolled"
    assert account.available == 100


def test_no_enrolment_is_needed_to_earn_and_enrolling_later_still_welcomes() -> None:
    account = CustomerAccount("bruno")
    assert buy(account, "30.00", "p-1")["points"] == 30
    enrol(account, "e-1", at(5))
    assert (account.pending, account.available) == (30, 100)


# ---- paying with points ----------------------------------------------------------------
def test_the_part_paid_with_points_earns_nothing() -> None:
    account = CustomerAccount("anna")
    effect = buy(account, "100.00", "p-1", tender="20.00")
    assert effect["points"] == 80 and effect["earned_on"] == "80.00"
    assert account.pending_events[-1].points_tender == "20.00"


def test_a_refund_of_a_purchase_paid_partly_with_points_reverses_what_it_earned() -> None:
    account = CustomerAccount("anna")
    buy(account, "100.00", "p-1", tender="20.00")
    half = account.record_refund(
        event_id="rf-1",
        occurred_at=at(10),
        store_id="s-1",
        original_event_id="p-1",
        amount=Decimal("50.00"),
        currency="EUR",
        rules=RULES,
    )
    assert half["points_reversed"] == 40  # half of the 80 earned
    rest = account.record_refund(
        event_id="rf-2",
        occurred_at=at(20),
        store_id="s-1",
        original_event_id="p-1",
        amount=Decimal("50.00"),
        currency="EUR",
        rules=RULES,
    )
    assert rest["points_reversed"] == 40 and account.pending == 0


def test_a_points_tender_above_the_amount_is_refused() -> None:
    account = CustomerAccount("anna")
    with pytest.raises(errors.PointsTenderExceedsAmount):
        buy(account, "10.00", "p-1", tender="10.01")
    assert buy(account, "10.00", "p-2", tender="10.00")["points"] == 0


# ---- checkout holds --------------------------------------------------------------------
def test_a_hold_sets_points_aside_so_they_are_not_available() -> None:
    account = CustomerAccount("anna")
    enrol(account)
    effect = hold(account, 60, "h-1")
    assert (account.available, account.held) == (40, 60)
    assert effect["expires_at"] == "2026-03-03T10:15:00+00:00"  # hold_seconds 900
    with pytest.raises(errors.InsufficientPoints):
        account.redeem(event_id="r-1", occurred_at=at(1), store_id=None, points=41, reward_id="x")


def test_a_partial_capture_redeems_part_and_releases_the_rest() -> None:
    account = CustomerAccount("anna")
    enrol(account)
    hold(account, 60, "h-1")
    effect = account.capture_hold(
        event_id="c-1", occurred_at=at(2), store_id=None, original_event_id="h-1", points=45
    )
    assert (effect["points"], effect["released"]) == (45, 15)
    assert (account.available, account.held) == (55, 0)
    with pytest.raises(errors.HoldNotOpen):
        account.void_hold(event_id="v-1", occurred_at=at(3), store_id=None, original_event_id="h-1")


def test_a_capture_takes_no_more_than_the_hold_and_not_after_it_expired() -> None:
    account = CustomerAccount("anna")
    enrol(account)
    hold(account, 60, "h-1")
    with pytest.raises(errors.CaptureExceedsHold):
        account.capture_hold(
            event_id="c-1", occurred_at=at(1), store_id=None, original_event_id="h-1", points=61
        )
    with pytest.raises(errors.HoldNotOpen):
        account.capture_hold(
            event_id="c-2", occurred_at=at(15), store_id=None, original_event_id="h-1", points=None
        )
    with pytest.raises(errors.BeforeOriginal):
        account.void_hold(
            event_id="v-1", occurred_at=at(-1), store_id=None, original_event_id="h-1"
        )
    with pytest.raises(errors.UnknownOriginalEvent):
        account.void_hold(event_id="v-2", occurred_at=at(1), store_id=None, original_event_id="x")


def test_a_void_gives_everything_back() -> None:
    account = CustomerAccount("anna")
    enrol(account)
    hold(account, 60, "h-1")
    account.void_hold(event_id="v-1", occurred_at=at(1), store_id=None, original_event_id="h-1")
    assert (account.available, account.held) == (100, 0)


def test_the_sweep_releases_an_expired_hold_once() -> None:
    account = CustomerAccount("anna")
    enrol(account)
    hold(account, 60, "h-1", seconds=120)
    assert account.sweep(at(1)) == []
    released = account.sweep(at(3))
    assert [(e["action"], e["reason"], e["points"]) for e in released] == [
        ("hold_released", "expired", 60)
    ]
    assert (account.available, account.held) == (100, 0)
    assert account.sweep(at(4)) == []


def test_points_released_after_their_lot_expired_expire_at_the_same_sweep() -> None:
    account = CustomerAccount("anna")
    enrol(account)  # expires 12 months after T0
    expiry = account.lots["e-1"].expires_at
    hold(account, 100, "h-1", when=expiry - timedelta(seconds=10), seconds=60)
    effects = account.sweep(expiry + timedelta(minutes=5))
    assert [e["action"] for e in effects] == ["hold_released", "expired"]
    assert (account.available, account.held) == (0, 0)


def test_a_refund_while_points_are_held_makes_debt_not_a_negative_available() -> None:
    account = CustomerAccount("anna")
    buy(account, "50.00", "p-1")
    account.sweep(T0 + timedelta(days=15))  # matured: 50 available
    hold(account, 50, "h-1", when=T0 + timedelta(days=16))
    account.record_refund(
        event_id="rf-1",
        occurred_at=T0 + timedelta(days=16, minutes=1),
        store_id="s-1",
        original_event_id="p-1",
        amount=Decimal("50.00"),
        currency="EUR",
        rules=RULES,
    )
    assert (account.available, account.held, account.debt) == (0, 50, 50)
    account.void_hold(
        event_id="v-1",
        occurred_at=T0 + timedelta(days=16, minutes=2),
        store_id=None,
        original_event_id="h-1",
    )
    assert (account.available, account.held, account.debt) == (0, 0, 0)
    assert all_postings_sum(account) == 0


# ---- donations -------------------------------------------------------------------------
def test_a_donation_moves_available_points_to_the_charity() -> None:
    account = CustomerAccount("anna")
    enrol(account)
    effect = account.donate(
        event_id="d-1", occurred_at=at(1), store_id=None, points=30, charity_id="red-cross"
    )
    assert effect["points"] == 30 and account.available == 70
    assert account.pending_events[-1].postings == [
        [AVAILABLE, -30],
        ["charity:red-cross", 30],
    ]
    with pytest.raises(errors.InsufficientPoints):
        account.donate(
            event_id="d-2", occurred_at=at(2), store_id=None, points=71, charity_id="red-cross"
        )


# ---- opening balances ------------------------------------------------------------------
def test_an_opening_balance_keeps_its_dates_and_expires_on_them() -> None:
    account = CustomerAccount("anna")
    earned, expires = T0 - timedelta(days=300), T0 + timedelta(days=65)
    account.import_opening_balance(
        import_id="old-1", points=700, earned_at=earned, expires_at=expires, now=T0, rules=RULES
    )
    lot = account.lots["import/old-1"]
    assert (lot.earned_at, lot.expires_at, account.available) == (earned, expires, 700)
    assert [e["action"] for e in account.sweep(expires)] == ["expired"]
    assert account.available == 0


def test_an_opening_balance_already_expired_is_refused() -> None:
    account = CustomerAccount("anna")
    with pytest.raises(errors.OpeningBalanceExpired):
        account.import_opening_balance(
            import_id="old-1",
            points=700,
            earned_at=T0 - timedelta(days=400),
            expires_at=T0 - timedelta(days=1),
            now=T0,
            rules=RULES,
        )


def test_postings_sum_to_zero_and_match_the_customer_balance_across_the_new_events() -> None:
    account = CustomerAccount("anna")
    enrol(account)
    buy(account, "100.00", "p-1", tender="20.00")
    hold(account, 40, "h-1")
    account.capture_hold(
        event_id="c-1", occurred_at=at(1), store_id=None, original_event_id="h-1", points=10
    )
    hold(account, 20, "h-2", when=at(2))
    account.donate(event_id="d-1", occurred_at=at(3), store_id=None, points=5, charity_id="c")
    assert all_postings_sum(account) == 0
    assert customer_postings(account) == (
        account.available + account.pending + account.held - account.debt
    )
