"""A customer's read-side answers (SPEC §6) from a folded view, evaluated at a moment.

A live read evaluates at `max(now, clock)`; an as-of read folds the events up to the
point asked and evaluates at that time (or at the folded clock for `as_of_position`):
both scan the customer's facts (`*_answer`). The stored rows are the same answers at the
customer's clock (`standings_at_clock`), from the live runner's sums when it keeps them;
the property tests hold the two equal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.ledger.domain.rules import ProgramRules
from services.ledger.domain.tiers import TierStanding, tier_at
from services.projections.views.common import in_minor_units, money, parse
from services.projections.views.customer import CustomerView, Lot
from services.projections.views.standing import (
    LifetimeValue,
    SegmentStanding,
    evaluate_flag,
    evaluate_ltv,
    evaluate_segment,
    initial_tier,
    tier_why,
)


def lot_answer(lot: Lot) -> dict[str, Any]:
    return {
        "lot_id": lot.lot_id,
        "source": lot.source,
        "status": lot.status,
        "points": lot.points,
        "remaining": lot.remaining,
        "earned_at": lot.earned_at,
        "matures_at": lot.matures_at,
        "expires_at": lot.expires_at,
        "rule_version": lot.rule_version,
    }


def open_lots(view: CustomerView) -> list[Lot]:
    """Lots still holding points, in the order a redemption spends them."""
    lots = [lot for lot in view.lots.values() if lot.remaining > 0]
    return sorted(lots, key=lambda lot: (lot.expires_at, lot.earned_at, lot.lot_id))


def balance_answer(view: CustomerView, at: datetime | None = None) -> dict[str, Any]:
    """The balance at `at` (default: as folded). A lot past its expiry at `at` whose expiry
    the sweep has not recorded yet is counted as expired, not available: the write side
    refuses to redeem it, so the read side never shows it as spendable (SPEC §8)."""
    lapsed = 0
    lots = []
    for lot in open_lots(view):
        shown = lot_answer(lot)
        if at is not None and not lot.pending and parse(lot.expires_at) <= at:
            lapsed += lot.remaining
            shown.update(status="expired", remaining=0)
        lots.append(shown)
    return {
        "customer_id": view.customer_id,
        "available": view.available - lapsed,
        "pending": view.pending,
        "debt": view.debt,
        "held": view.held,
        "lifetime_earned": view.lifetime_earned,
        "redeemed": view.redeemed,
        "expired": view.expired + lapsed,
        "lots": [lot for lot in lots if lot["remaining"] > 0],
        "holds": [
            hold.answer()
            for hold in sorted(view.holds.values(), key=lambda h: (h.held_at, h.hold_id))
            if hold.status == "open"
        ],
    }


def campaigns_answer(view: CustomerView) -> dict[str, Any]:
    """SPEC §9: what each campaign gave the customer, and a stamp card's progress."""
    return {
        "customer_id": view.customer_id,
        "campaigns": [
            {"campaign_id": cid, "points": points, "stamps": stamps}
            for cid, (points, stamps) in sorted(view.campaigns.items())
        ],
    }


# ---- tier -------------------------------------------------------------------------------------
def tier_fields(
    standing: TierStanding | None, at: datetime | None, rules: ProgramRules
) -> dict[str, Any]:
    if standing is None or at is None:
        standing = initial_tier(rules)
        why = f"{standing.step.name}: no spend yet"
    else:
        why = tier_why(standing, at, rules)
    nxt = standing.next_step
    return {
        "tier": standing.step.name,
        "multiplier": str(standing.step.multiplier),
        "rolling_spend": money(standing.rolling_spend),
        "next_tier": nxt.name if nxt else None,
        "missing_spend": money(standing.missing_spend) if nxt else None,
        "why": why,
        "held_by_grace": standing.held_by_grace,
    }


def tier_answer(view: CustomerView, at: datetime | None, rules: ProgramRules) -> dict[str, Any]:
    standing = tier_at(view.spend_entries(), at, rules) if at is not None else None
    return tier_fields(standing, at, rules)


# ---- segment ----------------------------------------------------------------------------------
def segment_fields(standing: SegmentStanding) -> dict[str, Any]:
    return {
        "segment": standing.segment,
        "why": standing.why,
        "purchases_12m": standing.purchases_12m,
    }


def segment_answer(view: CustomerView, at: datetime | None) -> dict[str, Any]:
    promoter = parse(view.last_promoter_at) if view.last_promoter_at else None
    return segment_fields(
        evaluate_segment(view.spend_entries(), promoter, view.referrals_rewarded, at)
    )


# ---- trust --------------------------------------------------------------------------------------
def trust_fields(view: CustomerView, flagged: bool) -> dict[str, Any]:
    return {
        "deposit": view.deposit,
        "status": view.trust_status(),
        "good_jobs": view.good_jobs,
        "mistakes": view.mistakes,
        "flagged": flagged,
    }


def trust_answer(view: CustomerView, at: datetime | None, rules: ProgramRules) -> dict[str, Any]:
    return trust_fields(view, evaluate_flag(view.grant_times, at, rules))


# ---- lifetime value -----------------------------------------------------------------------------
def ltv_fields(value: LifetimeValue, rules: ProgramRules) -> dict[str, Any]:
    return {
        # SPEC §8 "Money precision": derived money in the currency's minor unit (ISO 4217).
        "ltv": in_minor_units(value.ltv, rules.currency),
        "realised": money(value.realised),
        "m": in_minor_units(value.m, rules.currency),
        "a": value.a,
        "t": value.t,
        "currency": rules.currency,
    }


def ltv_answer(view: CustomerView, at: datetime | None, rules: ProgramRules) -> dict[str, Any]:
    return ltv_fields(evaluate_ltv(view.spend_entries(), at, rules), rules)


def clock_of(view: CustomerView) -> datetime | None:
    return parse(view.clock) if view.clock else None


Answers = tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]


def standings_at_clock(view: CustomerView, rules: ProgramRules) -> Answers:
    """Tier, segment, trust and LTV at the customer's clock (what the rows hold): from the
    watch's sums when it is current, else by scanning the facts."""
    at = clock_of(view)
    watch = view.watch
    if watch is None or watch.windows.at is None or watch.rules_version != rules.version:
        entries = view.spend_entries()
        promoter = parse(view.last_promoter_at) if view.last_promoter_at else None
        return (
            tier_fields(tier_at(entries, at, rules) if at is not None else None, at, rules),
            segment_fields(evaluate_segment(entries, promoter, view.referrals_rewarded, at)),
            trust_answer(view, at, rules),
            ltv_fields(evaluate_ltv(entries, at, rules), rules),
        )
    return (
        tier_fields(watch.tier_standing(rules), at, rules),
        segment_fields(watch.segment_standing(view)),
        trust_fields(view, watch.flagged),
        ltv_fields(watch.lifetime_value(rules), rules),
    )
