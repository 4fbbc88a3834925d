"""The auditors' HTTP routes (SPEC §5, §6): history, hash-chain verification, export."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from services.audit.export import MEDIA_TYPE, export_lines
from services.audit.verify import Anchor, verify
from services.http.auth import AuditorKey
from services.http.dependencies import AuditDep
from services.http.guard import GuardedRoute
from services.http.params import ID_MAX_LENGTH, ID_PATTERN, MAX_POSITION

router = APIRouter(prefix="/v1/audit", tags=["audit"], route_class=GuardedRoute)


class AuditEventOut(BaseModel):
    position: int
    type: str = Field(description="the event's class name, e.g. PurchaseRecorded")
    aggregate: str = Field(description="account, intake or program")
    originator_id: str
    originator_version: int
    customer_id: str | None
    occurred_at: str | None = Field(description="POS time (or the decision's time)")
    recorded_at: str | None = Field(description="ledger clock")
    rule_version: int | None = Field(description="the program rules behind a credit")
    fields: dict[str, Any]
    link: str | None = Field(description="hash-chain link; null until chained (seconds)")


class AuditEventsOut(BaseModel):
    items: list[AuditEventOut]
    next: int | None = Field(description="from_position of the next page; null at the end")


class AnchorIn(BaseModel):
    position: int = Field(ge=1, le=MAX_POSITION)
    link: str = Field(pattern=r"^[0-9a-f]{64}$")


class VerifyIn(BaseModel):
    anchor: AnchorIn | None = Field(
        default=None, description="a head published earlier, to check the chain still reaches"
    )


class HeadOut(BaseModel):
    position: int
    link: str


class VerifyOut(BaseModel):
    ok: bool
    checked: int
    first_broken_position: int | None
    reason: str | None
    head: HeadOut | None = Field(description="publish it elsewhere to anchor the chain")
    unchained: int = Field(description="stored events after the head, not chained yet")


@router.get(
    "/events",
    response_model=AuditEventsOut,
    responses={404: {"description": "The ledger never saw this customer"}},
)
async def history(
    audit: AuditDep,
    _: AuditorKey,
    customer_id: Annotated[str | None, Query(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH)] = None,
    from_position: Annotated[
        int, Query(ge=0, le=MAX_POSITION, description="inclusive; pass the previous page's `next`")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The stored events in store order, globally or one customer's, with hash links."""
    page = await run_in_threadpool(
        audit.history.page, customer_id=customer_id, from_position=from_position, limit=limit
    )
    return {"items": page.items, "next": page.next}


@router.post("/verify", response_model=VerifyOut)
async def verify_chain(
    audit: AuditDep, _: AuditorKey, body: VerifyIn | None = None
) -> dict[str, object]:
    """Recompute the hash chain; name the first broken position."""
    anchor = Anchor(body.anchor.position, body.anchor.link) if body and body.anchor else None
    result = await run_in_threadpool(verify, audit.recorder, audit.chain, anchor=anchor)
    return result.as_dict()


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {MEDIA_TYPE: {}}, "description": "JSON Lines, one per event"}},
)
async def export(
    audit: AuditDep,
    _: AuditorKey,
    from_position: Annotated[int, Query(ge=0, le=MAX_POSITION, description="inclusive")] = 0,
    to_position: Annotated[
        int | None, Query(ge=0, le=MAX_POSITION, description="inclusive")
    ] = None,
) -> StreamingResponse:
    """Stored events as JSON Lines, byte-exact, for `loyalty audit import`."""
    lines = export_lines(
        audit.recorder, audit.chain, from_position=from_position, to_position=to_position
    )
    return StreamingResponse(lines, media_type=MEDIA_TYPE)


ROUTERS: list[APIRouter] = [router]
