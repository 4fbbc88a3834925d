"""Campaigns over HTTP (SPEC §9): create, list, read, approve, reject, end, dry-run.

An admin creates a campaign (201 `awaiting_approval`); another admin (another name and
another key: the account's second-person rule) approves it (`active`) or rejects it;
ending it stops it for purchases that occur from then on. A condition the ledger cannot
check is a 422 `invalid-condition` whose `errors[0].message` starts with its position.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from services.http.auth import AdminKey
from services.http.dependencies import LedgerDep
from services.http.guard import GuardedRoute
from services.http.params import ID_MAX_LENGTH, ID_PATTERN, LedgerTime
from services.ledger.api.admin import log
from services.ledger.domain.campaigns.campaign import Campaign, InvalidCampaign, Terms
from services.ledger.domain.clock import utcnow

router = APIRouter(prefix="/v1/admin", tags=["campaigns"], route_class=GuardedRoute)

CampaignId = Annotated[str, Path(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH)]
MAX_POINTS = 1_000_000_000


class CampaignTermsIn(BaseModel):
    campaign_id: str = Field(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH)
    name: str = Field(min_length=1, max_length=200)
    condition: str = Field(
        min_length=1,
        max_length=2000,
        description="an expression over the purchase and the customer, e.g. "
        '`weekday in ["saturday", "sunday"] and customer.tier == "Gold"`',
    )
    effect: dict[str, Any] = Field(
        description='`{"kind": "multiplier", "factor": "2"}`, `{"kind": "bonus", "points": '
        '100}`, `{"kind": "category_multiplier", "category": "...", "factor": "3"}` or '
        '`{"kind": "stamp", "stamps_needed": 5, "reward_points": 500}`'
    )
    starts_at: LedgerTime
    ends_at: LedgerTime
    budget_points: int | None = Field(default=None, ge=1, le=MAX_POINTS)
    per_customer_cap: int | None = Field(default=None, ge=1, le=MAX_POINTS)
    announced: bool = Field(
        default=True,
        description="false: a surprise bonus (seed 004 §6), not announced to customers",
    )

    def terms(self) -> Terms:
        return Terms(
            campaign_id=self.campaign_id,
            name=self.name,
            condition=self.condition,
            effect=self.effect,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            budget_points=self.budget_points,
            per_customer_cap=self.per_customer_cap,
            announced=self.announced,
        )


class CampaignIn(CampaignTermsIn):
    created_by: str = Field(min_length=1, max_length=128)


class CampaignOut(BaseModel):
    campaign_id: str
    name: str
    status: str = Field(description="awaiting_approval, active, rejected or ended")
    condition: str
    effect: dict[str, Any]
    starts_at: str
    ends_at: str
    ended_at: str | None
    budget_points: int | None
    per_customer_cap: int | None
    announced: bool
    created_by: str
    created_at: str
    decided_by: str | None
    decided_at: str | None
    budget_used: int = Field(description="points granted under the campaign so far")
    budget_left: int | None
    customers: int = Field(description="customers who earned under it")
    events_matched: int = Field(description="purchases that earned under it")
    version: int


class CampaignsOut(BaseModel):
    campaigns: list[CampaignOut]


class CampaignDecisionIn(BaseModel):
    approved_by: str = Field(
        min_length=1, max_length=128, description="who decides (not the creator)"
    )
    note: str | None = Field(default=None, max_length=2000)


class CampaignEndIn(BaseModel):
    ended_by: str = Field(min_length=1, max_length=128)


class SimulationIn(BaseModel):
    campaign: CampaignTermsIn = Field(description="the campaign to try (nothing is stored)")
    from_: LedgerTime = Field(alias="from", description="purchases that occurred from ...")
    to: LedgerTime = Field(description="... until before this time")


class SimulationOut(BaseModel):
    from_: str = Field(alias="from")
    to: str
    points: int = Field(description="the points it would have granted")
    customers: int
    events_matched: int = Field(description="purchases that would have earned under it")
    events_read: int = Field(description="purchases in the range")
    budget_exhausted_at: str | None = Field(
        description="occurred_at of the purchase that used the last of the budget"
    )
    position: int = Field(description="the store position the dry run read up to")


def _out(campaign: Campaign) -> CampaignOut:
    return CampaignOut(**campaign.summary())


@router.post("/campaigns", response_model=CampaignOut, status_code=201)
async def create_campaign(body: CampaignIn, ledger: LedgerDep, admin: AdminKey) -> CampaignOut:
    """Create a campaign; it waits for another admin's approval."""
    campaign = await run_in_threadpool(
        lambda: ledger.create_campaign(
            body.terms(), created_by=body.created_by, created_with_key=admin.key_id, now=utcnow()
        )
    )
    log.info(
        "admin campaign %s created by %r with key %r",
        body.campaign_id,
        body.created_by,
        admin.key_id,
    )
    return _out(campaign)


@router.get("/campaigns", response_model=CampaignsOut)
async def list_campaigns(ledger: LedgerDep, _: AdminKey) -> CampaignsOut:
    """Every campaign, in the order they were created, with its budget used."""
    campaigns = await run_in_threadpool(ledger.load_campaigns)
    return CampaignsOut(campaigns=[_out(c) for c in campaigns])


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut)
async def get_campaign(campaign_id: CampaignId, ledger: LedgerDep, _: AdminKey) -> CampaignOut:
    """One campaign, with how much of its budget is used."""
    return _out(await run_in_threadpool(ledger.campaign, campaign_id))


@router.post("/campaigns/{campaign_id}/approve", response_model=CampaignOut)
async def approve_campaign(
    campaign_id: CampaignId, body: CampaignDecisionIn, ledger: LedgerDep, admin: AdminKey
) -> CampaignOut:
    """Approve a campaign as a second admin (not its creator, another key): it is active."""
    campaign = await run_in_threadpool(
        lambda: ledger.approve_campaign(
            campaign_id, approved_by=body.approved_by, approver_key=admin.key_id, now=utcnow()
        )
    )
    log.info(
        "admin campaign %s approved by %r with key %r", campaign_id, body.approved_by, admin.key_id
    )
    return _out(campaign)


@router.post("/campaigns/{campaign_id}/reject", response_model=CampaignOut)
async def reject_campaign(
    campaign_id: CampaignId, body: CampaignDecisionIn, ledger: LedgerDep, admin: AdminKey
) -> CampaignOut:
    """Reject a campaign that waits for approval; it never earns."""
    campaign = await run_in_threadpool(
        lambda: ledger.reject_campaign(
            campaign_id,
            rejected_by=body.approved_by,
            note=body.note,
            now=utcnow(),
            rejected_with_key=admin.key_id,
        )
    )
    log.info(
        "admin campaign %s rejected by %r with key %r", campaign_id, body.approved_by, admin.key_id
    )
    return _out(campaign)


@router.post("/campaigns/{campaign_id}/end", response_model=CampaignOut)
async def end_campaign(
    campaign_id: CampaignId, body: CampaignEndIn, ledger: LedgerDep, admin: AdminKey
) -> CampaignOut:
    """End an active campaign: purchases that occur from now on earn nothing under it."""
    campaign = await run_in_threadpool(
        lambda: ledger.end_campaign(
            campaign_id, ended_by=body.ended_by, now=utcnow(), ended_with_key=admin.key_id
        )
    )
    log.info("admin campaign %s ended by %r with key %r", campaign_id, body.ended_by, admin.key_id)
    return _out(campaign)


@router.post("/campaigns:simulate", response_model=SimulationOut, response_model_by_alias=True)
async def simulate_campaign(body: SimulationIn, ledger: LedgerDep, _: AdminKey) -> Any:
    """Dry run: what a campaign would have granted over a past range of the stored
    history. Nothing is stored."""
    start: datetime = body.from_
    if body.to <= start:
        raise InvalidCampaign("to must be after from", field="to")
    terms = body.campaign.terms()
    result = await run_in_threadpool(lambda: ledger.simulate_campaign(terms, start, body.to))
    return result.document(start, body.to)
