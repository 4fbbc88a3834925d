"""What the change feed watches, kept at the customer's clock event by event (live runner).

A `Watch` keeps the purchases' sliding-window sums (`SpendWindows`) and the standings
last reported: tier, segment, trust status and flag. After each event `refresh` says
which of them changed (`TierChanged`, `SegmentChanged`, `TrustStatusChanged`), at a
cost that does not grow with the customer's history:

- tier: with spend only added at the clock, taken away (refunds) or time passing, the
  tier held is the qualifying one whenever that is not lower than before: every moment
  of the grace period qualified for at most the tier held. A fall, a purchase dated
  before the clock, or new rules take the full ladder (`tiers.tier_at`).
- segment and lifetime value: purchases and spend in the last 12 months, from the sums.
- flag: goodwill grants in the window, by bisection.

A replay does without (`watch=None`): it evaluates the standings once, when it writes.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from services.ledger.domain.rules import ProgramRules, TierStep
from services.ledger.domain.tiers import TierStanding, tier_at
from services.projections.views.common import YEAR, Data, parse
from services.projections.views.standing import (
    LifetimeValue,
    SegmentStanding,
    classify_segment,
    ltv_of,
    qualifying_step,
    segment_name,
)
from services.projections.views.windows import Purchase, SpendWindows

Change = tuple[str, Any]


class WatchedView(Protocol):
    """What a watch reads of the view that holds it (`customer.CustomerView`): named here,
    so that the view can import the watch and the watch need not import the view."""

    clock: str | None
    grant_times: list[datetime]
    promoter_dt: datetime | None
    referrals_rewarded: int

    def trust_status(self) -> str: ...
    def spend_entries(self) -> list[tuple[datetime, Decimal]]: ...


class Watch:
    __slots__ = (
        "earlier",
        "flagged",
        "graced",
        "late",
        "rules_version",
        "segment",
        "status",
        "tier",
        "windows",
    )

    def __init__(self) -> None:
        self.windows = SpendWindows()
        self.earlier: str | None = None  # the clock before the current event
        self.late = False  # a purchase older than the clock: the tier needs a full look
        self.rules_version = -1
        self.tier: str | None = None
        self.graced: TierStanding | None = None  # the full evaluation while grace holds
        self.segment: str | None = None
        self.flagged = False
        self.status = "new"

    # ---- called by the view's fold ------------------------------------------------------------
    def advance(self, view: WatchedView, earlier: str | None, rules: ProgramRules) -> None:
        self.earlier = earlier
        clock = view.clock
        windows = self.windows
        if clock is not None and (
            windows.at is None or clock != earlier or windows.tier_days != rules.tier_window_days
        ):
            windows.advance(parse(clock), rules.tier_window_days)

    def purchased(self, purchase: Purchase) -> None:
        self.windows.add(purchase)
        if self.earlier is not None and purchase.occurred_at < self.earlier:
            self.late = True

    def refunded(self, purchase: Purchase, amount: Any) -> None:
        self.windows.refund(purchase, amount)

    # ---- after each event ---------------------------------------------------------------------
    def refresh(
        self, view: WatchedView, kind: str, data: Data, rules: ProgramRules
    ) -> list[Change]:
        """Each change as (kind, previous value); the previous trust value is `(status,
        flagged)`. A new account starts at the lowest tier, `visitor` and `new`, each a
        change from nothing."""
        changes: list[Change] = []
        new_rules = rules.version != self.rules_version
        self.rules_version = rules.version
        if self.tier is None:
            self.tier = rules.tier_ladder[0].name
            self.segment = "visitor"
            changes += [("TierChanged", None), ("SegmentChanged", None)]
            changes += [("TrustStatusChanged", None)]
        windows = self.windows
        at = windows.at
        if at is None:
            return changes
        qualifying = qualifying_step(windows.tier_sum, rules)
        ranks = _ranks(rules)
        held = qualifying.name
        self.graced = None
        if new_rules or self.late or ranks[held] < ranks.get(self.tier, -1):
            standing = tier_at(view.spend_entries(), at, rules)
            self.late = False
            held = standing.step.name
            if standing.held_by_grace:
                self.graced = standing
        if held != self.tier:
            changes.append(("TierChanged", self.tier))
            self.tier = held
        segment = segment_name(
            windows.year_count,
            windows.sold > 0,
            self.promoter_within(view, at),
            view.referrals_rewarded,
        )
        if segment != self.segment:
            changes.append(("SegmentChanged", self.segment))
            self.segment = segment
        previous = (self.status, self.flagged)
        self.flagged = recent_grants(view, at, rules) > rules.trust_tester_grants
        self.status = view.trust_status()
        if (self.status, self.flagged) != previous:
            changes.append(("TrustStatusChanged", previous))
        return changes

    # ---- the standings at the clock -------------------------------------------------------
    def tier_standing(self, rules: ProgramRules) -> TierStanding | None:
        if self.graced is not None:
            return self.graced
        windows = self.windows
        if windows.at is None:
            return None
        step = qualifying_step(windows.tier_sum, rules)
        return TierStanding(step, windows.tier_sum, step, _next(rules, step.name), False)

    @staticmethod
    def promoter_within(view: WatchedView, at: datetime) -> datetime | None:
        """The latest 9-10 review, if it is within the 12 months up to `at`."""
        promoter = view.promoter_dt
        return promoter if promoter is not None and at - YEAR < promoter <= at else None

    def segment_standing(self, view: WatchedView) -> SegmentStanding:
        windows = self.windows
        at = windows.at
        return classify_segment(
            windows.year_count,
            windows.sold > 0,
            self.promoter_within(view, at) if at is not None else None,
            view.referrals_rewarded,
            at,
        )

    def lifetime_value(self, rules: ProgramRules) -> LifetimeValue:
        windows = self.windows
        return ltv_of(windows.year_sum, windows.year_count, windows.realised, rules)


def recent_grants(view: WatchedView, at: datetime, rules: ProgramRules) -> int:
    """Goodwill grants (by occurred_at, as the write side counts them) in the window."""
    if not view.grant_times:
        return 0
    since = at - timedelta(days=rules.trust_tester_window_days)
    return len(view.grant_times) - bisect_right(view.grant_times, since)


_RANKS: dict[int, tuple[tuple[TierStep, ...], dict[str, int]]] = {}


def _ranks(rules: ProgramRules) -> dict[str, int]:
    """Each tier's rank on the ladder (cached per ladder object: it is on the hot path)."""
    ladder = rules.tier_ladder
    found = _RANKS.get(id(ladder))
    if found is None or found[0] is not ladder:
        found = _RANKS[id(ladder)] = (ladder, {step.name: i for i, step in enumerate(ladder)})
    return found[1]


def _next(rules: ProgramRules, name: str) -> TierStep | None:
    ladder = rules.tier_ladder
    index = _ranks(rules).get(name, -1)
    return ladder[index + 1] if 0 <= index < len(ladder) - 1 else None
