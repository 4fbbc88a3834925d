"""The read side's answers as the OpenAPI document shows them (SPEC §6): one model per
route of `routes.py`, each field described for the POS developer reading it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from services.projections.lot_pages import DEFAULT_LOTS


class LotOut(BaseModel):
    lot_id: str
    source: str = Field(
        description="purchase, review, goodwill, referral, adjustment, welcome or import"
    )
    status: str = Field(description="pending or available")
    points: int
    remaining: int
    earned_at: str
    matures_at: str | None
    expires_at: str
    rule_version: int


class ExpiringOut(BaseModel):
    expires_at: str
    points: int = Field(description="available points that expire then")


class HoldOut(BaseModel):
    hold_id: str = Field(description="the redemption_hold's event_id")
    points: int
    reward_id: str
    held_at: str
    expires_at: str = Field(description="released by the sweep then, unless captured or voided")
    status: str = Field(description="open")
    captured: int


class BalanceOut(BaseModel):
    customer_id: str
    available: int = Field(description="points that can be spent now (held points excluded)")
    pending: int
    debt: int = Field(description="points owed (spent, then refunded)")
    held: int = Field(description="points set aside by open checkout holds (SPEC §9)")
    lifetime_earned: int = Field(description="points credited net of reversals")
    redeemed: int
    expired: int
    lots: list[LotOut] = Field(
        description=f"one page of the lots still holding points, soonest expiring first "
        f"(`lots_limit`, default {DEFAULT_LOTS})"
    )
    lots_count: int = Field(description="all the lots still holding points")
    expiring_next: ExpiringOut | None = Field(
        description="the soonest expiry of available points; null without any"
    )
    next_lots: str | None = Field(
        description="`lots_after` for the next page of lots; null at the end"
    )
    holds: list[HoldOut] = Field(description="the open checkout holds")
    position: int


class TierOut(BaseModel):
    tier: str
    multiplier: str
    rolling_spend: str = Field(description="net spend in the rolling window (decimal string)")
    next_tier: str | None
    missing_spend: str | None = Field(description="spend still missing for the next tier")
    why: str
    position: int


class SegmentOut(BaseModel):
    segment: str = Field(description="visitor, buyer, client or advocate (seed 001)")
    why: str
    position: int


class TrustOut(BaseModel):
    deposit: int = Field(description="Sewell's trust deposit: +1 per good job, -10 per mistake")
    status: str = Field(description="new, forgiving (> 0) or at_risk (<= 0)")
    good_jobs: int
    mistakes: int
    flagged: bool = Field(description="a trust tester: more than 3 goodwill grants in 90 days")
    position: int


class LtvOut(BaseModel):
    ltv: str = Field(description="m x a x t (decimal string)")
    realised: str = Field(description="net purchases to date")
    m: str = Field(description="average purchase value in the last 12 months")
    a: int = Field(description="purchases in the last 12 months")
    t: int = Field(description="expected lifetime in years")
    currency: str
    position: int


class TimelineItemOut(BaseModel):
    position: int
    type: str = Field(description="the stored event's class, e.g. PurchaseRecorded")
    event_id: str | None = Field(description="the POS event (or adjustment) behind it")
    occurred_at: str | None
    recorded_at: str
    effect: dict[str, Any]


class TimelineOut(BaseModel):
    customer_id: str
    items: list[TimelineItemOut]
    next: int | None = Field(description="after_position of the next page; null at the end")
    position: int


class NpsOut(BaseModel):
    nps: float | None = Field(description="%promoters - %detractors; null without responses")
    promoters: int
    passives: int
    detractors: int
    responses: int
    position: int


class LiabilityOut(BaseModel):
    outstanding_points: int = Field(description="pending + available + held - debt, all customers")
    pending: int
    available: int
    debt: int
    held: int = Field(description="points set aside by open checkout holds")
    goodwill_points_by_month: dict[str, int]
    donated_points_by_charity: dict[str, int] = Field(
        description="points customers gave each charity (SPEC §9)"
    )
    position: int
