"""The customer account's rules (SPEC §2, §3), told as small stories on the aggregate.

No store: each test builds a `CustomerAccount`, runs commands with explicit times and
rules, and reads the account's balances and the events it triggered. Only the referral
reward goes through `Ledger.tick` (it pays one account when another's lot matures).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.infrastructure.store import StoreURL
from services.ledger.application.ledger import Ledger
from services.ledger.domain import errors
from services.ledger.domain.account import CustomerAccount, register_referral
from services.ledger.domain.rules import ProgramRules
from services.ledger.domain.tiers import tier_at

RULES = ProgramRules().with_version(1)
T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
RETURN_WINDOW = timedelta(days=RULES.return_window_days)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


# ---- a small vocabulary for the stories ------------------------------------------------
def buy(
    account: CustomerAccount,
    amount: str,
    when: datetime,
    event_id: str,
    *,
    rules: ProgramRules = RULES,
    currency: str = "EUR",
) -> dict[str, Any]:
    return account.record_purchase(
        event_id=event_id,
        occurred_at=when,
        store_id="store-1",
        receipt_id=f"receipt-{event_id}",
        amount=Decimal(amount),
        currency=currency,
        rules=rules,
    )


def refund(
    account: CustomerAccount,
    purchase: str,
    amount: str,
    when: datetime,
    event_id: str,
    *,
    rules: ProgramRules = RULES,
    currency: str = "EUR",
) -> dict[str, Any]:
    return account.record_refund(
        event_id=event_id,
        occurred_at=when,
        store_id="store-1",
        original_event_id=purchase,
        amount=Decimal(amount),
        currency=currency,
        rules=rules,
    )


def redeem(account: CustomerAccount, points: int, when: datetime, event_id: str) -> dict[str, Any]:
    return account.redeem(
        event_id=event_id, occurred_at=when, store_id="store-1", points=points, reward_id="mug"
    )


def review(
    account: CustomerAccount, when: datetime, event_id: str, rating: int = 9
) -> dict[str, Any]:
    return account.record_review(
        event_id=event_id,
        occurred_at=when,
        store_id="store-1",
        rating=rating,
        touchpoint="sales",
        comment=None,
        receipt_id=None,
        rules=RULES,
    )


def goodwill(
    account: CustomerAccount,
    when: datetime,
    event_id: str,
    *,
    points: int | None = None,
    amount: str | None = None,
    currency: str = "EUR",
    issued_by: str = "agent-ann",
) -> dict[str, Any]:
    return account.record_goodwill(
        event_id=event_id,
        occurred_at=when,
        store_id="store-1",
        points=points,
        amount=None if amount is None else Decimal(amount),
        currency=None if amount is None else currency,
        reason_code="late-delivery",
        incident_id=None,
        issued_by=issued_by,
        rules=RULES,
    )


def balances(account: CustomerAccount) -> tuple[int, int, int]:
    """(available, pending, debt)."""
    return account.available, account.pending, account.debt


def customer_postings(account: CustomerAccount) -> int:
    """What the account's stored postings say the customer holds (SPEC §4)."""
    return sum(
        int(amount)
        for e in account.pending_events
        for name, amount in getattr(e, "postings", [])
        if str(name).startswith("customer:")
    )


def state(account: CustomerAccount) -> Any:
    """Everything a refused command must leave untouched."""
    return copy.deepcopy(
        {k: v for k, v in vars(account).items() if k not in ("_pending_events", "_modified_on")}
    ), len(account.pending_events)


def matured_customer(amount: str = "100.00", event_id: str = "p1") -> CustomerAccount:
    account = CustomerAccount("alice")
    buy(account, amount, T0, event_id)
    account.sweep(T0 + RETURN_WINDOW)
    return account


@pytest.fixture
def alice() -> CustomerAccount:
    return CustomerAccount("alice")


# ---- purchases -----------------------------------------------------------------------
def test_purchase_earns_floor_of_amount_times_rate_times_tier_multiplier(
    alice: CustomerAccount,
) -> None:
    assert buy(alice, "99.99", T0, "p1")["points"] == 99
    double = ProgramRules(earn_rate=Decimal("2")).with_version(2)
    effect = buy(alice, "10.49", day(1), "p2", rules=double)
    assert effect["points"] == 20
    assert effect["rule_version"] == 2
    assert (effect["tier"], effect["multiplier"]) == ("bronze", "1.0")
    assert alice.pending == 119


def test_purchase_points_stay_pending_for_the_return_window_then_mature(
    alice: CustomerAccount,
) -> None:
    effect = buy(alice, "40.00", T0, "p1")
    assert effect["status"] == "pending"
    assert effect["matures_at"] == (T0 + RETURN_WINDOW).isoformat()
    assert balances(alice) == (0, 40, 0)

    assert alice.sweep(T0 + RETURN_WINDOW - timedelta(seconds=1)) == []
    assert balances(alice) == (0, 40, 0)

    [matured] = alice.sweep(T0 + RETURN_WINDOW)
    assert matured["action"] == "matured" and matured["points"] == 40
    assert balances(alice) == (40, 0, 0)
    assert isinstance(alice.pending_events[-1], CustomerAccount.PointsMatured)


def test_pending_points_cannot_be_redeemed(alice: CustomerAccount) -> None:
    buy(alice, "40.00", T0, "p1")
    with pytest.raises(errors.InsufficientPoints):
        redeem(alice, 1, day(1), "x1")


def test_same_receipt_is_not_recorded_twice(alice: CustomerAccount) -> None:
    buy(alice, "40.00", T0, "p1")
    with pytest.raises(errors.DuplicateReceipt) as refused:
        alice.record_purchase(
            event_id="p2",
            occurred_at=day(1),
            store_id=None,
            receipt_id="receipt-p1",
            amount=Decimal("40.00"),
            currency="EUR",
            rules=RULES,
        )
    assert refused.value.field == "receipt_id"


def test_other_currency_is_refused(alice: CustomerAccount) -> None:
    buy(alice, "40.00", T0, "p1")
    before = state(alice)
    with pytest.raises(errors.CurrencyMismatch) as refused:
        buy(alice, "40.00", day(1), "p2", currency="USD")
    assert refused.value.field == "amount.currency"
    assert "EUR" in refused.value.detail and "USD" in refused.value.detail
    with pytest.raises(errors.CurrencyMismatch):
        refund(alice, "p1", "10.00", day(2), "f1", currency="GBP")
    with pytest.raises(errors.CurrencyMismatch):
        goodwill(alice, day(3), "g1", amount="5.00", currency="USD")
    assert state(alice) == before


# ---- tiers -------------------------------------------------------------------------------
def test_tier_multiplier_applies_from_the_purchase_after_reaching_silver_then_gold(
    alice: CustomerAccount,
) -> None:
    first = buy(alice, "1000.00", T0, "p1")
    assert (first["points"], first["tier"]) == (1000, "bronze")

    silver = buy(alice, "100.00", day(1), "p2")
    assert (silver["points"], silver["tier"], silver["multiplier"]) == (125, "silver", "1.25")
    assert buy(alice, "10.50", day(2), "p3")["points"] == 13  # floor(13.125)

    buy(alice, "3889.50", day(3), "p4")  # rolling spend now exactly 5,000
    gold = buy(alice, "10.00", day(4), "p5")
    assert (gold["points"], gold["tier"], gold["multiplier"]) == (15, "gold", "1.5")


def test_a_refund_lowers_the_spend_that_decides_the_tier(alice: CustomerAccount) -> None:
    buy(alice, "1000.00", T0, "p1")
    refund(alice, "p1", "1.00", day(1), "f1")
    assert buy(alice, "100.00", day(2), "p2")["tier"] == "bronze"


def test_grace_period_before_downgrade(alice: CustomerAccount) -> None:
    buy(alice, "1000.00", T0, "p1")
    # A year later the spend has left the rolling window, but silver holds for 30 days.
    in_grace = buy(alice, "100.00", day(365) + timedelta(hours=1), "p2")
    assert (in_grace["tier"], in_grace["points"]) == ("silver", 125)
    standing = tier_at(alice.spend_entries(), day(380), RULES)
    assert standing.held_by_grace and standing.qualifying.name == "bronze"

    after_grace = buy(alice, "100.00", day(396), "p3")
    assert (after_grace["tier"], after_grace["points"]) == ("bronze", 100)


# ---- refunds -------------------------------------------------------------------------------
def test_refund_reverses_in_proportion_under_the_rule_version_that_granted_them(
    alice: CustomerAccount,
) -> None:
    assert buy(alice, "99.99", T0, "p1")["points"] == 99
    generous = ProgramRules(earn_rate=Decimal("3")).with_version(2)

    third = refund(alice, "p1", "33.33", day(1), "f1", rules=generous)
    assert third["points_reversed"] == 33  # floor(99 x 33.33 / 99.99), not 3x
    assert third["rule_version"] == 1
    last = refund(alice, "p1", "66.66", day(2), "f2", rules=generous)
    assert last["points_reversed"] == 66  # cumulative: a full refund reverses exactly all
    assert balances(alice) == (0, 0, 0)
    assert alice.purchases["p1"].points_reversed == 99


def test_refund_takes_from_pending_first_then_available(alice: CustomerAccount) -> None:
    buy(alice, "100.00", T0, "p1")
    review(alice, day(1), "r1")  # 50 available points from another lot
    assert balances(alice) == (50, 100, 0)

    early = refund(alice, "p1", "30.00", day(2), "f1")
    assert early["takes"] == [["p1", "pending", 30]]
    assert balances(alice) == (50, 70, 0)

    alice.sweep(T0 + RETURN_WINDOW)
    assert balances(alice) == (120, 0, 0)
    late = refund(alice, "p1", "20.00", day(20), "f2")
    assert late["takes"] == [["p1", "available", 20]]
    assert balances(alice) == (100, 0, 0)
    assert customer_postings(alice) == alice.available + alice.pending - alice.debt


def test_refund_after_redemption_creates_debt() -> None:
    alice = matured_customer("100.00")
    redeem(alice, 100, day(20), "x1")
    effect = refund(alice, "p1", "100.00", day(21), "f1")
    assert effect["points_reversed"] == 100
    assert effect["debt_added"] == 100
    assert balances(alice) == (0, 0, 100)
    assert customer_postings(alice) == -100


def test_refund_of_spent_points_claws_back_other_available_lots_before_debt() -> None:
    alice = matured_customer("100.00")
    redeem(alice, 100, day(20), "x1")
    review(alice, day(21), "r1")  # 50 available
    effect = refund(alice, "p1", "100.00", day(22), "f1")
    assert effect["takes"] == [["r1", "clawback", 50]]
    assert effect["debt_added"] == 50
    assert balances(alice) == (0, 0, 50)


def test_refund_after_partial_redemption_takes_the_rest_of_the_lot_once() -> None:
    alice = matured_customer("100.00")
    redeem(alice, 60, day(20), "x1")
    effect = refund(alice, "p1", "100.00", day(21), "f1")
    assert effect["takes"] == [["p1", "available", 40]]
    assert effect["debt_added"] == 60
    assert balances(alice) == (0, 0, 60)


def test_refund_of_more_than_was_bought_is_refused(alice: CustomerAccount) -> None:
    buy(alice, "100.00", T0, "p1")
    refund(alice, "p1", "60.00", day(1), "f1")
    before = state(alice)
    with pytest.raises(errors.RefundExceedsPurchase) as refused:
        refund(alice, "p1", "40.01", day(2), "f2")
    assert refused.value.field == "amount.value"
    assert "40.00" in refused.value.detail
    assert state(alice) == before
    refund(alice, "p1", "40.00", day(3), "f3")  # exactly what is left is fine


def test_refund_of_an_unknown_purchase_is_refused(alice: CustomerAccount) -> None:
    buy(alice, "100.00", T0, "p1")
    with pytest.raises(errors.UnknownOriginalEvent) as refused:
        refund(alice, "p-nope", "1.00", day(1), "f1")
    assert refused.value.field == "original_event_id"


def test_refund_of_expired_points_is_not_debt() -> None:
    alice = matured_customer("100.00")
    [expired] = alice.sweep(day(400))
    assert expired["action"] == "expired" and expired["points"] == 100
    effect = refund(alice, "p1", "50.00", day(401), "f1")
    assert effect["takes"] == [["p1", "expired", 50]]
    assert balances(alice) == (0, 0, 0)


# ---- debt ------------------------------------------------------------------------------------
def test_debt_is_repaid_from_the_next_credits() -> None:
    alice = matured_customer("100.00")
    redeem(alice, 100, day(20), "x1")
    refund(alice, "p1", "100.00", day(21), "f1")
    assert alice.debt == 100

    buy(alice, "30.00", day(23), "p2")  # pending points do not repay anything yet
    assert balances(alice) == (0, 30, 100)
    rewarded = review(alice, day(24), "r1")
    assert (rewarded["points"], alice.pending_events[-1].debt_repaid) == (50, 50)
    assert balances(alice) == (0, 30, 50)  # the review's 50 went to the debt

    [matured] = alice.sweep(day(23) + RETURN_WINDOW)
    assert matured["debt_repaid"] == 30
    assert balances(alice) == (0, 0, 20)
    goodwill(alice, day(40), "g1", points=100)
    assert balances(alice) == (80, 0, 0)
    assert customer_postings(alice) == 80


# ---- referrals ---------------------------------------------------------------------------
def test_self_referral_is_refused(alice: CustomerAccount) -> None:
    with pytest.raises(errors.SelfReferral) as refused:
        register_referral(alice, alice, event_id="ref1", occurred_at=T0, store_id=None, rules=RULES)
    assert refused.value.field == "referrer_id"
    assert alice.pending_events[-1].__class__ is CustomerAccount.Opened


def test_second_referral_of_same_referee_is_refused() -> None:
    bob, alice, carol = (CustomerAccount(c) for c in ("bob", "alice", "carol"))
    register_referral(bob, alice, event_id="ref1", occurred_at=T0, store_id=None, rules=RULES)
    assert bob.referred_by == "alice"
    for referrer in (carol, alice):
        with pytest.raises(errors.AlreadyReferred):
            register_referral(
                bob, referrer, event_id="ref2", occurred_at=day(1), store_id=None, rules=RULES
            )
    assert bob.referred_by == "alice" and carol.referrals_made == []


def test_a_customer_who_already_bought_cannot_be_referred() -> None:
    bob, alice = CustomerAccount("bob"), CustomerAccount("alice")
    buy(bob, "10.00", T0, "p1")
    with pytest.raises(errors.RefereeNotNew):
        register_referral(
            bob, alice, event_id="ref1", occurred_at=day(1), store_id=None, rules=RULES
        )


def test_referral_cap_per_period() -> None:
    alice = CustomerAccount("alice")
    cap, period = RULES.referral_cap_per_period, RULES.referral_cap_period_days

    def refer(n: int, when: datetime) -> dict[str, Any]:
        referee = CustomerAccount(f"new-{n}")
        return register_referral(
            referee, alice, event_id=f"ref{n}", occurred_at=when, store_id=None, rules=RULES
        )

    for n in range(cap):
        refer(n, day(n))
    with pytest.raises(errors.ReferralCapReached) as refused:
        refer(cap, day(cap))
    assert refused.value.field == "referrer_id"
    # Once the first referral has left the period, there is room for one more.
    assert refer(cap + 1, day(period) + timedelta(seconds=1))["referrer_id"] == "alice"
    with pytest.raises(errors.ReferralCapReached):
        refer(cap + 2, day(period) + timedelta(seconds=2))


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    env = StoreURL.parse(f"sqlite:///{tmp_path / 'ledger.db'}").eventsourcing_env()
    ledger = Ledger(env=env, rules=ProgramRules().with_version(0))
    yield ledger
    ledger.close()


def pos_event(kind: str, customer: str, event_id: str, when: datetime, **fields: Any) -> dict:
    return {
        "event_id": event_id,
        "type": kind,
        "customer_id": customer,
        "occurred_at": when.isoformat(),
        "schema_version": 1,
        **fields,
    }


def test_referrer_rewarded_when_referees_first_purchase_matures(ledger: Ledger) -> None:
    def purchase(event_id: str, amount: str, when: datetime) -> dict:
        money = {"value": amount, "currency": "EUR"}
        return pos_event("purchase", "bob", event_id, when, receipt_id=event_id, amount=money)

    outcomes = ledger.record_batch(
        [
            pos_event("referral", "bob", "ref1", T0, referrer_id="alice"),
            purchase("p1", "20.00", day(1)),
            purchase("p2", "30.00", day(2)),
        ]
    )
    assert [o.status for o in outcomes] == ["accepted"] * 3
    assert ledger.account("alice").available == 0

    assert ledger.tick(day(14), ["alice", "bob"]).recorded == []
    first = ledger.tick(day(15), ["alice", "bob"]).recorded
    assert [(r["customer_id"], r["action"]) for r in first] == [
        ("bob", "matured"),
        ("alice", "referral_rewarded"),
    ]
    assert ledger.account("alice").available == RULES.referral_reward_points
    assert ledger.account("bob").available == 20

    # The second purchase maturing rewards nobody again.
    second = ledger.tick(day(17), ["alice", "bob"]).recorded
    assert [(r["customer_id"], r["action"]) for r in second] == [("bob", "matured")]
    position = ledger.position()
    assert ledger.tick(day(17), ["alice", "bob"]).recorded == []
    assert ledger.position() == position
    assert ledger.account("alice").available == RULES.referral_reward_points


def test_a_referral_reward_already_due_expires_in_the_same_tick(ledger: Ledger) -> None:
    # A late POS feed: the referral and the first purchase arrive over a year late.
    money = {"value": "20.00", "currency": "EUR"}
    ledger.record_batch(
        [
            pos_event("referral", "bob", "ref1", T0, referrer_id="alice"),
            pos_event("purchase", "bob", "p1", day(1), receipt_id="r1", amount=money),
        ]
    )
    first = ledger.tick(day(400), ["alice", "bob"]).recorded
    assert ("alice", "referral_rewarded") in [(r["customer_id"], r["action"]) for r in first]
    assert ledger.account("alice").available == 0  # the reward expired after 12 months
    assert ledger.tick(day(400), ["alice", "bob"]).recorded == []


def test_no_referral_reward_for_a_fully_refunded_first_purchase(ledger: Ledger) -> None:
    money = {"value": "20.00", "currency": "EUR"}
    ledger.record_batch(
        [
            pos_event("referral", "bob", "ref1", T0, referrer_id="alice"),
            pos_event("purchase", "bob", "p1", day(1), receipt_id="r1", amount=money),
            pos_event("refund", "bob", "f1", day(2), original_event_id="p1", amount=money),
        ]
    )
    ledger.tick(day(20), ["alice", "bob"])
    assert ledger.account("alice").available == 0
    ledger.record(pos_event("purchase", "bob", "p2", day(21), receipt_id="r2", amount=money))
    ledger.tick(day(40), ["alice", "bob"])
    assert ledger.account("alice").available == RULES.referral_reward_points


# ---- reviews --------------------------------------------------------------------------------
def test_review_reward_capped_at_one_per_purchase(alice: CustomerAccount) -> None:
    assert review(alice, T0, "r0")["points"] == 0  # no purchase yet
    buy(alice, "10.00", day(1), "p1")
    assert review(alice, day(2), "r1")["points"] == RULES.review_reward_points
    capped = review(alice, day(3), "r2")
    assert capped["points"] == 0 and capped["no_reward_reason"]
    buy(alice, "10.00", day(4), "p2")
    assert review(alice, day(5), "r3")["points"] == RULES.review_reward_points
    assert alice.available == 2 * RULES.review_reward_points
    # A review without a reward is still recorded (it feeds NPS and the trust deposit).
    recorded = [e for e in alice.pending_events if isinstance(e, CustomerAccount.ReviewRecorded)]
    assert [e.event_id for e in recorded] == ["r0", "r1", "r2", "r3"]


# ---- goodwill (SPEC §3: small money, trust testers, maker-checker) -------------------------
def test_small_money_goodwill_granted_at_once(alice: CustomerAccount) -> None:
    by_money = goodwill(alice, T0, "g1", amount="25.00")
    assert (by_money["status"], by_money["points"]) == ("granted", 2500)
    by_points = goodwill(alice, day(1), "g2", points=2500)
    assert by_points["status"] == "granted" and by_points["approved_by"] is None
    assert balances(alice) == (5000, 0, 0)


def test_goodwill_above_limit_waits_for_approval(alice: CustomerAccount) -> None:
    waiting = goodwill(alice, T0, "g1", amount="25.01")
    assert waiting == {
        "status": "awaiting_approval",
        "points": 2501,
        "waits_because": "above-small-money-limit",
    }
    assert goodwill(alice, T0, "g2", points=2501)["status"] == "awaiting_approval"
    assert balances(alice) == (0, 0, 0)

    granted = alice.approve_goodwill(
        event_id="g1", approved_by="supervisor-sam", decided_at=day(1), rules=RULES
    )
    assert granted["status"] == "granted" and granted["approved_by"] == "supervisor-sam"
    assert alice.available == 2501
    alice.reject_goodwill(event_id="g2", rejected_by="supervisor-sam", note=None, decided_at=day(1))
    for decided in ("g1", "g2", "g-unknown"):  # nothing is waiting under these ids
        with pytest.raises(errors.NotPending):
            alice.approve_goodwill(
                event_id=decided, approved_by="supervisor-sam", decided_at=day(2), rules=RULES
            )
    assert alice.available == 2501


def test_approver_must_not_be_issuer(alice: CustomerAccount) -> None:
    goodwill(alice, T0, "g1", points=5000, issued_by="agent-ann")
    before = state(alice)
    with pytest.raises(errors.MakerChecker) as refused:
        alice.approve_goodwill(
            event_id="g1", approved_by="agent-ann", decided_at=day(1), rules=RULES
        )
    assert refused.value.field == "approved_by"
    assert state(alice) == before
    alice.approve_goodwill(
        event_id="g1", approved_by="supervisor-sam", decided_at=day(1), rules=RULES
    )
    assert alice.available == 5000


def test_more_than_three_grants_in_90_days_flags_and_stops_auto_approval(
    alice: CustomerAccount,
) -> None:
    for n in range(RULES.trust_tester_grants + 1):  # the 4th is still granted ...
        assert goodwill(alice, day(10 * n), f"g{n}", points=100)["status"] == "granted"
    assert alice.is_trust_tester(day(30), RULES)
    # ... but then the customer is flagged: even the smallest goodwill waits.
    flagged = goodwill(alice, day(40), "g-flagged", points=1)
    assert flagged == {
        "status": "awaiting_approval",
        "points": 1,
        "waits_because": "trust-tester-flagged",
    }
    assert alice.available == 400
    # Once the first grants have left the 90-day window, small money flows again.
    assert not alice.is_trust_tester(day(95), RULES)
    assert goodwill(alice, day(95), "g-later", points=100)["status"] == "granted"


# ---- redemptions ------------------------------------------------------------------------------
def test_redemption_takes_soonest_expiring_lots_first(alice: CustomerAccount) -> None:
    buy(alice, "100.00", T0, "p1")  # expires T0 + 12 months
    review(alice, day(1), "r1")  # 50, expires a day later
    buy(alice, "80.00", day(5), "p2")  # expires 5 days later
    alice.sweep(day(5) + RETURN_WINDOW)
    assert alice.available == 230

    effect = redeem(alice, 170, day(30), "x1")
    assert effect["allocation"] == [["p1", 100], ["r1", 50], ["p2", 20]]
    assert effect["available_after"] == 60
    assert [alice.lots[lot].remaining for lot in ("p1", "r1", "p2")] == [0, 0, 60]


def test_redemption_beyond_available_is_refused_and_changes_nothing(
    alice: CustomerAccount,
) -> None:
    buy(alice, "100.00", T0, "p1")
    review(alice, day(1), "r1")
    before = state(alice)
    with pytest.raises(errors.InsufficientPoints) as refused:
        redeem(alice, 51, day(2), "x1")  # 50 available, 100 still pending
    assert refused.value.field == "points"
    assert "50 available" in refused.value.detail
    assert state(alice) == before
    redeem(alice, 50, day(2), "x2")
    assert balances(alice) == (0, 100, 0)


def test_redemption_cannot_spend_points_that_expired_before_it(alice: CustomerAccount) -> None:
    buy(alice, "10.00", T0, "p1")
    review(alice, day(1), "r1")
    alice.sweep(T0 + RETURN_WINDOW)
    # The sweep has not run yet at day 400, but lots that expired cannot be spent.
    with pytest.raises(errors.InsufficientPoints):
        redeem(alice, 10, day(400), "x1")


def test_redemption_cancel_gives_points_back_to_their_lots(alice: CustomerAccount) -> None:
    buy(alice, "100.00", T0, "p1")
    review(alice, day(1), "r1")
    alice.sweep(T0 + RETURN_WINDOW)
    redeem(alice, 120, day(20), "x1")
    assert balances(alice) == (30, 0, 0)

    effect = alice.cancel_redemption(
        event_id="c1", occurred_at=day(21), store_id=None, original_event_id="x1"
    )
    assert effect["points"] == 120
    assert effect["allocation"] == [["p1", 100], ["r1", 20]]
    assert (alice.lots["p1"].remaining, alice.lots["r1"].remaining) == (100, 50)
    assert balances(alice) == (150, 0, 0)

    with pytest.raises(errors.RedemptionAlreadyCancelled):
        alice.cancel_redemption(
            event_id="c2", occurred_at=day(22), store_id=None, original_event_id="x1"
        )
    with pytest.raises(errors.UnknownOriginalEvent):
        alice.cancel_redemption(
            event_id="c3", occurred_at=day(22), store_id=None, original_event_id="p1"
        )
    assert customer_postings(alice) == 150


def test_redemption_cancel_repays_debt_first() -> None:
    alice = matured_customer("100.00")
    redeem(alice, 100, day(20), "x1")
    refund(alice, "p1", "40.00", day(21), "f1")
    assert balances(alice) == (0, 0, 40)
    effect = alice.cancel_redemption(
        event_id="c1", occurred_at=day(22), store_id=None, original_event_id="x1"
    )
    assert effect["debt_repaid"] == 40
    assert balances(alice) == (60, 0, 0)
    assert customer_postings(alice) == 60


# ---- time: expiry and the sweep ------------------------------------------------------------
def test_expiry_after_12_months() -> None:
    alice = matured_customer("100.00")
    redeem(alice, 30, day(20), "x1")
    expires_at = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    assert alice.sweep(expires_at - timedelta(seconds=1)) == []
    [expired] = alice.sweep(expires_at)
    assert expired == {"action": "expired", "lot_id": "p1", "points": 70}
    assert balances(alice) == (0, 0, 0)
    assert alice.lots["p1"].expired == 70


def test_expiry_clamps_to_the_end_of_a_shorter_month(alice: CustomerAccount) -> None:
    effect = buy(alice, "10.00", datetime(2024, 2, 29, 12, 0, tzinfo=UTC), "p1")
    assert effect["expires_at"] == "2025-02-28T12:00:00+00:00"


def test_a_lot_both_due_to_mature_and_expire_does_both_in_order(alice: CustomerAccount) -> None:
    buy(alice, "10.00", T0, "p1")
    effects = alice.sweep(day(500))
    assert [e["action"] for e in effects] == ["matured", "expired"]
    assert balances(alice) == (0, 0, 0)


def test_tick_twice_records_nothing_new(alice: CustomerAccount) -> None:
    buy(alice, "10.00", T0, "p1")
    review(alice, day(1), "r1")
    first = alice.sweep(day(400))
    assert sorted((e["action"], e["lot_id"]) for e in first) == [
        ("expired", "p1"),
        ("expired", "r1"),
        ("matured", "p1"),
    ]
    events = len(alice.pending_events)
    assert alice.sweep(day(400)) == []
    assert alice.sweep(day(401)) == []
    assert len(alice.pending_events) == events


# ---- manual adjustments (admin, maker-checker above the limit) -------------------------------
def adjust(account: CustomerAccount, points: int, adjustment_id: str, by: str = "admin-ann") -> Any:
    return account.adjust(
        adjustment_id=adjustment_id,
        occurred_at=T0,
        points=points,
        reason="support ticket 42",
        requested_by=by,
        rules=RULES,
    )


def test_manual_adjustment_within_the_limit_applies_at_once(alice: CustomerAccount) -> None:
    limit = RULES.adjustment_approval_limit
    assert adjust(alice, limit, "a1")["status"] == "applied"
    assert adjust(alice, -limit, "a2")["status"] == "applied"
    assert balances(alice) == (0, 0, 0)


def test_manual_adjustment_above_the_limit_needs_a_second_admin(alice: CustomerAccount) -> None:
    assert adjust(alice, 1500, "a1")["status"] == "awaiting_approval"
    assert alice.available == 0
    with pytest.raises(errors.MakerChecker):
        alice.approve_adjustment(
            adjustment_id="a1", approved_by="admin-ann", decided_at=day(1), rules=RULES
        )
    applied = alice.approve_adjustment(
        adjustment_id="a1", approved_by="admin-bob", decided_at=day(1), rules=RULES
    )
    assert applied["status"] == "applied" and applied["approved_by"] == "admin-bob"
    assert alice.available == 1500
    with pytest.raises(errors.NotPending):
        alice.approve_adjustment(
            adjustment_id="a1", approved_by="admin-bob", decided_at=day(2), rules=RULES
        )


def test_rejected_adjustment_changes_no_balance(alice: CustomerAccount) -> None:
    adjust(alice, -5000, "a1")
    alice.reject_adjustment(adjustment_id="a1", rejected_by="admin-bob", note="no", decided_at=T0)
    with pytest.raises(errors.NotPending):
        alice.approve_adjustment(
            adjustment_id="a1", approved_by="admin-bob", decided_at=day(1), rules=RULES
        )
    assert balances(alice) == (0, 0, 0)


def test_negative_adjustment_beyond_available_becomes_debt(alice: CustomerAccount) -> None:
    review(alice, T0, "r0")
    adjust(alice, 300, "a1")
    effect = adjust(alice, -500, "a2")
    assert effect["debt_added"] == 200
    assert balances(alice) == (0, 0, 200)
    assert customer_postings(alice) == -200


# ---- the books ------------------------------------------------------------------------------
def test_every_event_posts_double_entry(alice: CustomerAccount) -> None:
    buy(alice, "100.00", T0, "p1")
    review(alice, day(1), "r1")
    goodwill(alice, day(2), "g1", points=300)
    alice.sweep(T0 + RETURN_WINDOW)
    redeem(alice, 420, day(20), "x1")
    refund(alice, "p1", "50.00", day(21), "f1")
    alice.sweep(day(500))
    for e in alice.pending_events:
        assert sum(int(amount) for _, amount in getattr(e, "postings", [])) == 0, e
    assert customer_postings(alice) == alice.available + alice.pending - alice.debt


def test_a_credit_never_replaces_another_lot(alice: CustomerAccount) -> None:
    # Regression: lots of referral rewards and adjustments were once named "referral:<id>"
    # and "adj:<id>", which are valid POS event_ids, so a new lot could replace an old one.
    buy(alice, "100.00", T0, "adj:a1")
    review(alice, day(1), "referral:bob")
    alice.reward_referral(referee_id="bob", occurred_at=day(2), rules=RULES)
    adjust(alice, 10, "a1")
    assert balances(alice) == (560, 100, 0)
    assert customer_postings(alice) == 660
