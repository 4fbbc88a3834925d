"""The read side's running spend windows (`SpendWindows`) equal a re-sum from scratch,
whatever order the purchases, refunds and clock moves come in: a late purchase is summed
into the windows it falls in, not re-summed with all the others (issue 14)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.projections.views.windows import Purchase, SpendWindows

START = datetime(2025, 1, 1, tzinfo=UTC)

action = st.one_of(
    st.tuples(st.just("purchase"), st.integers(0, 900), st.integers(1, 50_000)),
    st.tuples(st.just("refund"), st.integers(0, 10_000), st.integers(1, 50_000)),
    st.tuples(st.just("advance"), st.integers(0, 60), st.sampled_from([30, 365])),
)


def sums(windows: SpendWindows) -> tuple[object, ...]:
    return (
        windows.tier_lo,
        windows.tier_sum,
        windows.year_lo,
        windows.year_sum,
        windows.year_count,
        windows.sold,
        windows.realised,
        [p.event_id for p in windows.items],
        windows.whens,
    )


@given(st.lists(action, max_size=60))
def test_the_running_windows_equal_a_resum(actions: list[tuple[str, int, int]]) -> None:
    windows = SpendWindows()
    clock = START
    tier_days = 365
    purchases: list[Purchase] = []
    for n, (kind, a, b) in enumerate(actions):
        if kind == "purchase":
            when = START + timedelta(days=a)
            if when > clock:  # the fold's clock is at or after every moment folded
                clock = when
                windows.advance(clock, tier_days)
            cents = Decimal(b) / 100
            purchase = Purchase(f"p{n}", when.isoformat(), None, cents)
            purchases.append(purchase)
            windows.add(purchase)
        elif kind == "refund" and purchases:
            purchase = purchases[a % len(purchases)]
            amount = min(purchase.net, Decimal(b) / 100)
            if amount > 0:
                windows.refund(purchase, amount)
        elif kind == "advance":
            clock += timedelta(days=a)
            tier_days = b
            windows.advance(clock, tier_days)
        resummed = copy.copy(windows)
        resummed.items, resummed.whens = list(windows.items), list(windows.whens)
        resummed.resum()
        assert sums(windows) == sums(resummed)
        assert windows.whens == sorted(windows.whens)
