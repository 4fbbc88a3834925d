"""The time-dependent standings of a customer at a moment: tier, segment, trust-tester
flag and lifetime value (SPEC §4).

The `evaluate_*` functions scan the customer's facts for any moment (live and as-of
reads). The fold keeps the same sums over sliding windows as its clock advances and
classifies them with the same functions (`classify_segment`, `ltv_of`, ...); the tier
ladder with its grace period is `tiers.tier_at`, shared with the write side.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from services.ledger.domain.rules import ProgramRules, TierStep
from services.ledger.domain.tiers import TierStanding
from services.projections.views.common import YEAR, ZERO, money


# ---- tier ---------------------------------------------------------------------------------
def qualifying_step(spend: Decimal, rules: ProgramRules) -> TierStep:
    """The highest step whose threshold the spend reaches."""
    chosen = rules.tier_ladder[0]
    for step in rules.tier_ladder:
        if spend >= step.threshold:
            chosen = step
    return chosen


def initial_tier(rules: ProgramRules) -> TierStanding:
    """The standing of a customer without any spend: the lowest tier."""
    ladder = rules.tier_ladder
    return TierStanding(
        step=ladder[0],
        rolling_spend=ZERO,
        qualifying=ladder[0],
        next_step=ladder[1] if len(ladder) > 1 else None,
        held_by_grace=False,
    )


def tier_why(standing: TierStanding, at: datetime, rules: ProgramRules) -> str:
    """The tier in words and numbers: the spend, the thresholds, what is missing."""
    cur = rules.currency
    step = standing.step
    spend = (
        f"rolling spend {money(standing.rolling_spend)} {cur} over the "
        f"{rules.tier_window_days} days up to {at.isoformat()}"
    )
    if standing.held_by_grace:
        text = (
            f"{step.name} (x{step.multiplier}) held by the {rules.tier_grace_days}-day grace "
            f"period: {spend} qualifies for {standing.qualifying.name} only; {step.name} needs "
            f"{money(step.threshold)} {cur} at some moment of the last "
            f"{rules.tier_grace_days} days"
        )
    else:
        text = (
            f"{step.name} (x{step.multiplier}): {spend} reaches the {step.name} threshold "
            f"{money(step.threshold)} {cur}"
        )
    nxt = standing.next_step
    if nxt is None:
        return text + "; the top tier"
    return (
        text + f"; {money(standing.missing_spend)} {cur} more for {nxt.name} "
        f"({money(nxt.threshold)} {cur}, x{nxt.multiplier})"
    )


# ---- segment (seed 001: visitor, buyer, client, advocate) --------------------------------
CLIENT_PURCHASES = 3


@dataclass(frozen=True)
class SegmentStanding:
    segment: str
    purchases_12m: int
    why: str


def segment_name(
    purchases_12m: int, bought: bool, promoter_at: datetime | None, referrals_rewarded: int
) -> str:
    if not bought:
        return "visitor"
    if purchases_12m < CLIENT_PURCHASES:
        return "buyer"
    return "advocate" if referrals_rewarded or promoter_at is not None else "client"


def classify_segment(
    purchases_12m: int,
    bought: bool,
    promoter_at: datetime | None,
    referrals_rewarded: int,
    at: datetime | None,
) -> SegmentStanding:
    """Seed 001's ladder. `purchases_12m`: purchases not wholly refunded in the 12 months up
    to `at`; `promoter_at`: the latest 9-10 review if it is within those 12 months."""
    name = segment_name(purchases_12m, bought, promoter_at, referrals_rewarded)
    if name == "visitor" or at is None:
        return SegmentStanding("visitor", 0, "visitor: known to the ledger, no purchase yet")
    upto = f"the 12 months up to {at.isoformat()}"
    if name == "buyer":
        return SegmentStanding(
            "buyer",
            purchases_12m,
            f"buyer: {purchases_12m} purchase(s) in {upto}; a client makes {CLIENT_PURCHASES}",
        )
    base = f"{purchases_12m} purchases in {upto} (a client makes {CLIENT_PURCHASES})"
    if name == "advocate":
        reasons = []
        if referrals_rewarded:
            reasons.append(f"has {referrals_rewarded} rewarded referral(s) (customers who bought)")
        if promoter_at is not None:
            reasons.append(f"gave a 9-10 review on {promoter_at.isoformat()}")
        return SegmentStanding(
            "advocate", purchases_12m, f"advocate: {base}, and {' and '.join(reasons)}"
        )
    return SegmentStanding(
        "client",
        purchases_12m,
        f"client: {base}; an advocate also has a rewarded referral (a customer they "
        "referred bought, at any time) or gave a 9-10 review within those 12 months",
    )


def evaluate_segment(
    purchases: Iterable[tuple[datetime, Decimal]],
    last_promoter_at: datetime | None,
    referrals_rewarded: int,
    at: datetime | None,
) -> SegmentStanding:
    """`purchases`: (occurred_at, net amount) of every purchase."""
    sold = [when for when, net in purchases if net > 0]
    if at is None:
        return classify_segment(0, bool(sold), None, referrals_rewarded, at)
    since = at - YEAR
    count = sum(1 for when in sold if since < when <= at)
    promoter = last_promoter_at if last_promoter_at and since < last_promoter_at <= at else None
    return classify_segment(count, bool(sold), promoter, referrals_rewarded, at)


# ---- trust testers (SPEC §3, as the write side counts them) -------------------------------
def evaluate_flag(grants: Iterable[datetime], at: datetime | None, rules: ProgramRules) -> bool:
    """More than N goodwill grants (by their occurred_at) in the window up to `at`."""
    if at is None:
        return False
    since = at - timedelta(days=rules.trust_tester_window_days)
    return sum(1 for g in grants if since < g <= at) > rules.trust_tester_grants


# ---- lifetime value (seed 003: LTV = m x a x t) ---------------------------------------------
@dataclass(frozen=True)
class LifetimeValue:
    ltv: Decimal
    realised: Decimal
    m: Decimal
    a: int
    t: int


def lifetime_value(m: Decimal, a: int, t: int) -> Decimal:
    """Seed 003: average purchase value x purchases per period x expected periods."""
    return m * a * t


def ltv_of(spend: Decimal, count: int, realised: Decimal, rules: ProgramRules) -> LifetimeValue:
    """From the period's spend and purchase count: m = spend / a, and m x a = the spend
    exactly, so the product carries no rounding error."""
    t = rules.ltv_lifetime_years
    m = spend / count if count else ZERO
    return LifetimeValue(spend * t, realised, m, count, t)


def evaluate_ltv(
    purchases: Iterable[tuple[datetime, Decimal]], at: datetime | None, rules: ProgramRules
) -> LifetimeValue:
    """The period is the 12 months up to `at`; `t` the expected lifetime in years (config).
    `purchases`: (occurred_at, net amount) of every purchase; realised = their sum."""
    realised = spend = ZERO
    count = 0
    since = at - YEAR if at is not None else None
    for when, net in purchases:
        realised += net
        if net > 0 and since is not None and at is not None and since < when <= at:
            spend += net
            count += 1
    return ltv_of(spend, count, realised, rules)
