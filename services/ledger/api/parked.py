"""What waits for its original (SPEC §8 "Out of order"): `GET /v1/admin/parked`.

Read from the store by the ledger's `ParkedIndex` (the parking and release events on the
accounts), so the list is the write side's own: a follow-up leaves it in the transaction
that applies or refuses it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from services.http.auth import AuditorKey
from services.http.dependencies import LedgerDep
from services.http.guard import GuardedRoute
from services.http.params import MAX_POSITION

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=GuardedRoute)


class ParkedOut(BaseModel):
    position: int = Field(description="the store position of its parking")
    event_id: str
    customer_id: str
    type: str = Field(description="refund or redemption_cancel")
    original_event_id: str = Field(description="the event it waits for")
    occurred_at: str
    park_until: str = Field(
        description="occurred_at + park_days: the sweep refuses it after this "
        "(`unknown-original-event`)"
    )


class ParkedPageOut(BaseModel):
    items: list[ParkedOut] = Field(description="in the order they were parked")
    next: int | None = Field(description="after_position of the next page; null at the end")
    position: int = Field(description="the store position the list reflects")


@router.get("/parked", response_model=ParkedPageOut)
async def parked(
    ledger: LedgerDep,
    _: AuditorKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after_position: Annotated[
        int, Query(ge=0, le=MAX_POSITION, description="the previous page's `next`")
    ] = 0,
) -> Any:
    """The follow-ups parked until their original arrives, oldest first."""
    index = ledger.parked
    items, next_, position = await run_in_threadpool(index.page, after_position, limit)
    return ParkedPageOut(
        items=[ParkedOut(**i.to_json()) for i in items], next=next_, position=position
    )
