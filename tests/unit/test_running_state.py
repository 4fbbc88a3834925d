"""The account's running state equals what the slow way computes from its events (issue 14).

The account keeps totals and indexes (`domain/account/running.py`) so that a decision
does not scan the customer's history. Hypothesis writes histories of purchases (some
dated before earlier ones), refunds, redemptions and their cancellations, credits and
debits, reviews, goodwill and sweeps; after every step each running answer is compared
with the computation it replaced, run over every lot and purchase: the totals, what is
spendable and how a debit is allocated at several moments, what a sweep finds due, and the
tier under several rule sets. An account rebuilt from the same events holds the same
running state.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ledger.domain import errors
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.account.running import SpendIndex
from services.ledger.domain.lots import allocate
from services.ledger.domain.rules import ProgramRules, TierStep
from services.ledger.domain.tiers import tier_at

START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
RULES = ProgramRules()
# The tier under other windows, grace periods and ladders than the default one.
OTHER_RULES = [
    RULES,
    ProgramRules(tier_window_days=30, tier_grace_days=10),
    ProgramRules(tier_window_days=7, tier_grace_days=0),
    ProgramRules(
        tier_window_days=60,
        tier_grace_days=45,
        tier_ladder=(
            TierStep("one", Decimal("0"), Decimal("1")),
            TierStep("two", Decimal("50"), Decimal("2")),
            TierStep("three", Decimal("120.50"), Decimal("3")),
            TierStep("four", Decimal("900"), Decimal("4")),
        ),
    ),
]
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

pick = st.integers(min_value=0, max_value=50)
STEPS = st.one_of(
    st.tuples(st.just("purchase"), st.integers(min_value=1, max_value=150_000)),
    st.tuples(st.just("purchase"), st.integers(min_value=1, max_value=150_000)),
    st.tuples(st.just("sweep"), st.sampled_from([0, 1, 14, 15, 40, 200, 380])),
    st.tuples(st.just("sweep"), st.sampled_from([0, 1, 14, 15, 40, 200, 380])),
    st.tuples(st.just("redeem"), st.integers(min_value=1, max_value=600)),
    st.tuples(st.just("refund"), pick, st.integers(min_value=1, max_value=200_00)),
    st.tuples(st.just("cancel"), pick),
    st.tuples(st.just("adjust"), st.integers(min_value=-900, max_value=900)),
    st.tuples(st.just("review"), st.just(0)),
    st.tuples(st.just("goodwill"), st.sampled_from([10, 300, 2500])),
)
timed = st.tuples(
    STEPS,
    st.integers(min_value=0, max_value=24 * 20),  # hours since the previous step
    st.sampled_from([0, 0, 0, 3, 24 * 40]),  # hours late (dated before the clock)
)


class History:
    def __init__(self) -> None:
        self.account = CustomerAccount("ana")
        self.events: list[Any] = list(self.account.collect_events())
        self.clock = START
        self.purchases: list[str] = []
        self.redemptions: list[str] = []
        self.n = 0

    def run(self, step: tuple[Any, ...], hours: int, late: int) -> None:
        self.n += 1
        self.clock += timedelta(hours=hours)
        when = self.clock - timedelta(hours=late)
        a, eid, kind = self.account, f"e{self.n}", step[0]
        try:
            if kind == "purchase":
                a.record_purchase(
                    event_id=eid,
                    occurred_at=when,
                    store_id=None,
                    receipt_id=f"r{self.n}",
                    amount=Decimal(step[1]) / 100,
                    currency="EUR",
                    rules=RULES,
                )
                self.purchases.append(eid)
            elif kind == "sweep":
                a.sweep(self.clock + timedelta(days=step[1]))
            elif kind == "redeem":
                a.redeem(
                    event_id=eid, occurred_at=when, store_id=None, points=step[1], reward_id="x"
                )
                self.redemptions.append(eid)
            elif kind == "refund" and self.purchases:
                original = self.purchases[step[1] % len(self.purchases)]
                a.record_refund(
                    event_id=eid,
                    occurred_at=when,
                    store_id=None,
                    original_event_id=original,
                    amount=Decimal(step[2]) / 100,
                    currency="EUR",
                    rules=RULES,
                )
            elif kind == "cancel" and self.redemptions:
                a.cancel_redemption(
                    event_id=eid,
                    occurred_at=when,
                    store_id=None,
                    original_event_id=self.redemptions[step[1] % len(self.redemptions)],
                )
            elif kind == "adjust":
                a.adjust(
                    adjustment_id=eid,
                    occurred_at=when,
                    points=step[1],
                    reason="r",
                    requested_by="admin",
                    rules=RULES,
                )
            elif kind == "review":
                a.record_review(
                    event_id=eid,
                    occurred_at=when,
                    store_id=None,
                    rating=5,
                    touchpoint="app",
                    comment=None,
                    receipt_id=None,
                    rules=RULES,
                )
            elif kind == "goodwill":
                a.record_goodwill(
                    event_id=eid,
                    occurred_at=when,
                    store_id=None,
                    points=step[1],
                    amount=None,
                    currency=None,
                    reason_code="late",
                    incident_id=None,
                    issued_by="store",
                    rules=RULES,
                )
        except errors.LedgerError:
            pass  # refused: the state is untouched (test_account_rules shows it)
        self.events += a.collect_events()


def check_running_state(history: History) -> None:
    a = history.account
    assert a.available == a._slow_available()
    assert a.pending == a._slow_pending()
    clock = history.clock
    moments = [clock + timedelta(days=d) for d in (-60, -1, 0, 13, 200, 366, 400)]
    moments += [lot.expires_at for lot in list(a.lots.values())[-3:]]
    for moment in moments:
        slow = sum(lot.spendable_at(moment) for lot in a.lots.values())
        assert a.books.spendable_at(moment, a.lots) == slow
        for points in (1, 75, slow, slow + 1):
            exclude = history.purchases[-1] if history.purchases else None
            assert a._allocate(points, moment) == allocate(a.lots, points, moment)
            assert a._allocate(points, moment, exclude=exclude) == allocate(
                a.lots, points, moment, exclude=exclude
            )
        assert a.due(moment) == a._slow_due(moment)
        for rules in OTHER_RULES:
            assert a.tier_step_at(moment, rules) == tier_at(a.spend_entries(), moment, rules).step


@SETTINGS
@given(st.lists(timed, min_size=5, max_size=40))
def test_running_state_equals_the_slow_way_after_every_event(steps: list[Any]) -> None:
    history = History()
    for step, hours, late in steps:
        history.run(step, hours, late)
        check_running_state(history)
    # Derived in the handlers, so a replay of the stored events rebuilds it exactly.
    replayed = None
    for e in history.events:
        replayed = e.mutate(replayed)
    assert isinstance(replayed, CustomerAccount)
    assert (replayed.books, replayed.spend) == (history.account.books, history.account.spend)
    assert replayed.lots == history.account.lots


def test_spend_windows_with_many_purchases_out_of_time_order() -> None:
    """Beyond the late buffer's size, merged into the sums, refunds before and after."""
    rng = random.Random(14)
    index = SpendIndex()
    entries: dict[str, list[Any]] = {}
    clock = START
    held_by_grace = 0
    for n in range(1500):
        purchase_id = f"p{n}"
        # Bursts and quiet spells (tiers rise and fall); one in five dated up to a year
        # before the latest.
        clock += timedelta(hours=rng.choice([1, 6, 24, 24 * 10, 24 * 50]))
        when = clock - timedelta(hours=rng.randint(0, 24 * 365) if n % 5 == 0 else 0)
        amount = Decimal(rng.randint(1, rng.choice([2_000, 40_000, 200_000]))) / 100
        index.add(purchase_id, when, amount)
        entries[purchase_id] = [when, amount]
        if n % 7 == 3:
            refunded = rng.choice(list(entries))
            cut = min(entries[refunded][1], Decimal(rng.randint(1, 5000)) / 100)
            index.change(refunded, -cut)
            entries[refunded][1] -= cut
        if n % 50 == 0:
            slow = [(w, a) for w, a in entries.values()]
            for _ in range(5):
                at = clock - timedelta(hours=rng.randint(-48, 24 * 400))
                for rules in OTHER_RULES:
                    standing = tier_at(slow, at, rules)
                    assert index.tier_step(at, rules) == standing.step
                    held_by_grace += standing.held_by_grace
                start = at - timedelta(days=30)
                assert index.spend(start, at) == sum(
                    (a for w, a in slow if start < w <= at), Decimal("0")
                )
    assert index.negative == 0
    assert held_by_grace > 10  # the grace period's peak was looked for, and found


def test_the_grace_period_holds_its_highest_tier_not_the_first_above_today() -> None:
    """Three at the grace period's start, four five days later, one today: four is held."""
    rules = OTHER_RULES[3]  # window 60 days, grace 45; one, two 50, three 120.50, four 900
    history = History()
    account = history.account
    for event_id, day, amount in (("a", 0, "860.00"), ("b", 55, "45.00")):
        account.record_purchase(
            event_id=event_id,
            occurred_at=START + timedelta(days=day),
            store_id=None,
            receipt_id=event_id,
            amount=Decimal(amount),
            currency="EUR",
            rules=rules,
        )
    today = START + timedelta(days=95)
    standing = tier_at(account.spend_entries(), today, rules)
    assert (standing.qualifying.name, standing.step.name) == ("one", "four")
    assert account.tier_step_at(today, rules).name == "four"
