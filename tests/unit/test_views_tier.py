"""The tier projection (SPEC §4): the spend ladder over rolling 12 months, a downgrade only
after the grace period, the reason in words and numbers, and what is missing."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.domain.tiers import tier_at
from services.projections.views.answers import tier_answer
from services.projections.views.common import parse
from tests.unit.view_events import RULES, Event, day, fold, purchase, refund, review


def test_spend_over_a_threshold_upgrades_at_once_and_says_what_is_missing() -> None:
    view, changes = fold([purchase("p1", day(0), "600"), purchase("p2", day(10), "600.50")])
    answer = tier_answer(view, day(10), RULES)
    assert answer["tier"] == "silver"
    assert answer["multiplier"] == "1.25"
    assert answer["rolling_spend"] == "1200.50"
    assert (answer["next_tier"], answer["missing_spend"]) == ("gold", "3799.50")
    assert "1200.50 EUR" in answer["why"] and "1000.00 EUR" in answer["why"]
    assert "3799.50 EUR more for gold" in answer["why"]
    assert [c for c in changes if c[0] == "TierChanged"] == [
        ("TierChanged", None),
        ("TierChanged", "bronze"),
    ]


def test_a_downgrade_waits_for_the_grace_period() -> None:
    big = purchase("p1", day(0), "1200")
    # The purchase leaves the 365-day window at day 365; silver holds 30 days more.
    view, _ = fold([big, review("r1", day(370), 8)])
    held = tier_answer(view, day(370), RULES)
    assert held["tier"] == "silver"
    assert held["rolling_spend"] == "0.00"
    assert "grace period" in held["why"] and "qualifies for bronze only" in held["why"]
    assert tier_answer(view, day(395), RULES)["tier"] == "bronze"
    _, before = fold([big, review("r1", day(370), 8)])
    view, changes = fold([big, review("r1", day(370), 8), review("r2", day(396), 8)])
    assert view.watch is not None and view.watch.tier == "bronze"
    assert ("TierChanged", "silver") not in before
    assert ("TierChanged", "silver") in changes[len(before) :]


def test_a_refund_takes_the_spend_back_as_if_it_was_never_spent() -> None:
    # Spend is net of refunds at every moment (as the write side counts it): the customer
    # never qualified for silver, so there is no grace period to hold it.
    view, changes = fold(
        [purchase("p1", day(0), "1200"), refund("f1", day(5), "p1", "300.00", 300)]
    )
    answer = tier_answer(view, day(5), RULES)
    assert (answer["tier"], answer["rolling_spend"]) == ("bronze", "900.00")
    assert changes[-1] == ("TierChanged", "silver")


def test_the_top_tier_has_nothing_missing() -> None:
    view, _ = fold([purchase("p1", day(0), "5000")])
    answer = tier_answer(view, day(0), RULES)
    assert (answer["tier"], answer["next_tier"], answer["missing_spend"]) == ("gold", None, None)
    assert answer["why"].endswith("the top tier")


# ---- the watch's incremental tier is the ladder's answer at every event -------------------
steps = st.lists(
    st.tuples(
        st.sampled_from(["buy", "buy", "buy", "refund", "wait", "late"]),
        st.integers(min_value=0, max_value=90),  # days forward
        st.integers(min_value=1, max_value=3000),  # amount
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_the_watched_tier_equals_tier_at_after_every_event(
    script: list[tuple[str, int, int]],
) -> None:
    events: list[Event] = []
    now = day(0)
    bought: list[tuple[str, int]] = []
    for n, (action, forward, amount) in enumerate(script):
        now += timedelta(days=forward)
        if action == "refund" and bought:
            event_id, left = bought[-1]
            back = min(left, amount)
            bought[-1] = (event_id, left - back)
            events.append(refund(f"f{n}", now, event_id, f"{back}.00", 0))
        elif action == "wait":
            events.append(review(f"r{n}", now, 8))
        else:
            when = now - timedelta(days=forward // 2) if action == "late" else now
            events.append(purchase(f"p{n}", when, f"{amount}.00", 0))
            bought.append((f"p{n}", amount))
        view, _ = fold(events)
        assert view.watch is not None and view.clock is not None
        expected = tier_at(view.spend_entries(), parse(view.clock), RULES)
        assert view.watch.tier == expected.step.name
        standing = view.watch.tier_standing(RULES)
        assert standing is not None
        assert (standing.step, standing.rolling_spend) == (expected.step, expected.rolling_spend)
