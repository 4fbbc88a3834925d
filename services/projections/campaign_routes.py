"""A customer's campaigns (SPEC §9): what each campaign gave them, and their stamp cards'
progress (the "gift in parts" of seed 004 §9), from the read side like every customer read."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from services.http.auth import ServiceKey
from services.http.guard import GuardedRoute
from services.projections.routes import (
    _PROBLEMS,
    AsOf,
    AsOfPosition,
    CustomerId,
    MinPosition,
    Queries,
    _customer_read,
)

router = APIRouter(prefix="/v1/customers", tags=["customers"], route_class=GuardedRoute)


class CampaignCreditOut(BaseModel):
    campaign_id: str
    points: int = Field(description="the points this campaign gave the customer, all purchases")
    stamps: int | None = Field(
        description="a stamp card's stamps towards its next reward (null: not a stamp card)"
    )


class CustomerCampaignsOut(BaseModel):
    customer_id: str
    campaigns: list[CampaignCreditOut] = Field(description="the campaigns they earned under")
    position: int


@router.get("/{customer_id}/campaigns", response_model=CustomerCampaignsOut, responses=_PROBLEMS)
async def customer_campaigns(
    customer_id: CustomerId,
    request: Request,
    queries: Queries,
    _: ServiceKey,
    as_of: AsOf = None,
    as_of_position: AsOfPosition = None,
    min_position: MinPosition = None,
) -> Any:
    """What each campaign gave the customer, and their stamp cards' progress."""
    return await _customer_read(
        request, queries.campaigns, customer_id, as_of, as_of_position, min_position
    )
