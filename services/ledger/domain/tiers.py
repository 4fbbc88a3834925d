"""Tier ladder over rolling spend, with a grace period before any downgrade (SPEC §4).

`qualifying tier` at a moment s: the highest step whose threshold is at most the net
spend with occurred_at in (s - window, s]. The tier held at t is the highest qualifying
tier at any moment of [t - grace, t]: an upgrade shows at once, a downgrade only once the
customer has qualified for less during a whole grace period. Both the write side (the
earn multiplier) and the tier projection use this one function.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import accumulate

from services.ledger.domain.rules import ProgramRules, TierStep


@dataclass(frozen=True)
class TierStanding:
    step: TierStep
    rolling_spend: Decimal
    qualifying: TierStep
    next_step: TierStep | None
    held_by_grace: bool

    @property
    def missing_spend(self) -> Decimal:
        if self.next_step is None:
            return Decimal("0")
        return max(Decimal("0"), self.next_step.threshold - self.rolling_spend)


def _step_for(spend: Decimal, ladder: tuple[TierStep, ...]) -> TierStep:
    chosen = ladder[0]
    for step in ladder:
        if spend >= step.threshold:
            chosen = step
    return chosen


def _when(entry: tuple[datetime, Decimal]) -> datetime:
    return entry[0]


def rolling_spend(
    entries: Iterable[tuple[datetime, Decimal]], at: datetime, window_days: int
) -> Decimal:
    start = at - timedelta(days=window_days)
    return sum((amount for when, amount in entries if start < when <= at), Decimal("0"))


def tier_at(
    entries: list[tuple[datetime, Decimal]], at: datetime, rules: ProgramRules
) -> TierStanding:
    """The tier held at `at`, given (occurred_at, net amount) spend entries."""
    ladder = rules.tier_ladder
    window = timedelta(days=rules.tier_window_days)
    grace_start = at - timedelta(days=rules.tier_grace_days)
    oldest = grace_start - window
    relevant = [(w, a) for w, a in entries if oldest < w <= at]
    start = at - window
    spend_now = sum((a for w, a in relevant if start < w), Decimal("0"))
    qualifying = _step_for(spend_now, ladder)
    rank = {s.name: i for i, s in enumerate(ladder)}
    held = qualifying
    # No window in the grace period holds more than every positive entry in it: when even
    # that qualifies for no more than now, the grace period holds nothing higher.
    ceiling = sum((a for _, a in relevant if a > 0), Decimal("0"))
    if rank[_step_for(ceiling, ladder).name] > rank[held.name]:
        relevant.sort(key=_when)
        # The qualifying tier only changes where an entry enters the window (its time) or
        # leaves it (its time + window); the ladder is ascending, so the highest tier held
        # is the step of the highest spend at those moments. Net spend entries are not
        # negative (a refund never exceeds its purchase), and then leaving only lowers the
        # spend: the entries' own times suffice. The spend at a moment is a difference of
        # prefix sums over the entries sorted by time.
        times = [w for w, _ in relevant]
        prefix = [Decimal("0"), *accumulate(a for _, a in relevant)]
        moments = [grace_start, *(w for w in times if grace_start < w)]
        if any(a < 0 for _, a in relevant):
            moments += [w + window for w in times if grace_start < w + window <= at]
        peak = max(
            prefix[bisect_right(times, m)] - prefix[bisect_right(times, m - window)]
            for m in moments
        )
        step = _step_for(peak, ladder)
        if rank[step.name] > rank[held.name]:
            held = step
    index = rank[held.name]
    next_step = ladder[index + 1] if index + 1 < len(ladder) else None
    return TierStanding(
        step=held,
        rolling_spend=spend_now,
        qualifying=qualifying,
        next_step=next_step,
        held_by_grace=held.name != qualifying.name,
    )
