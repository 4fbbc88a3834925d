"""`tier_at` (SPEC §4), the one ladder both sides use, against its definition.

The definition, computed the slow way: the qualifying tier at a moment is the step of
the net spend with occurred_at in (moment - window, moment]; the tier held at t is the
highest qualifying tier at any moment of [t - grace, t]. The qualifying tier only changes
where an entry enters the window (its time) or leaves it (its time + window), so those
moments and the start of the grace period are the only ones to look at.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.domain.rules import ProgramRules, TierStep
from services.ledger.domain.tiers import tier_at

RULES = ProgramRules()
START = datetime(2025, 1, 1, tzinfo=UTC)


def step_for(spend: Decimal) -> TierStep:
    ladder = RULES.tier_ladder
    return [ladder[0], *(s for s in ladder if spend >= s.threshold)][-1]


def qualifying_at(entries: list[tuple[datetime, Decimal]], moment: datetime) -> TierStep:
    window = timedelta(days=RULES.tier_window_days)
    return step_for(sum((a for w, a in entries if moment - window < w <= moment), Decimal(0)))


def held_at(entries: list[tuple[datetime, Decimal]], at: datetime) -> TierStep:
    window = timedelta(days=RULES.tier_window_days)
    grace_start = at - timedelta(days=RULES.tier_grace_days)
    moments = {grace_start} | {
        m for w, _ in entries for m in (w, w + window) if grace_start < m <= at
    }
    ranks = {s.name: i for i, s in enumerate(RULES.tier_ladder)}
    return max((qualifying_at(entries, m) for m in moments), key=lambda s: ranks[s.name])


entry = st.tuples(
    st.integers(min_value=0, max_value=900),  # day
    st.integers(min_value=-80_000, max_value=300_000),  # net cents (a refund can exceed)
)


@settings(max_examples=300, deadline=None)
@given(st.lists(entry, max_size=40), st.integers(min_value=0, max_value=1000))
def test_tier_at_is_the_highest_qualifying_tier_over_the_grace_period(
    raw: list[tuple[int, int]], at_day: int
) -> None:
    entries = [(START + timedelta(days=d), Decimal(c) / 100) for d, c in raw]
    at = START + timedelta(days=at_day, hours=12)
    standing = tier_at(entries, at, RULES)
    assert standing.step == held_at(entries, at)
    assert standing.qualifying == qualifying_at(entries, at)
    window = timedelta(days=RULES.tier_window_days)
    assert standing.rolling_spend == sum(
        (a for w, a in entries if at - window < w <= at), Decimal(0)
    )
    assert standing.held_by_grace == (standing.step != standing.qualifying)
