"""Erasure with four eyes (SPEC §11): `POST /v1/admin/customers/{id}/erase` asks, a second
admin approves (`.../erase/approve`) or rejects (`.../erase/reject`). The request is listed
by `GET /v1/admin/approvals` (kind `erasure`) like goodwill and adjustments."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from services.http.auth import AdminKey
from services.http.dependencies import LedgerDep
from services.http.guard import GuardedRoute
from services.ledger.api.admin import DecisionOut, PathId, _decision
from services.ledger.application import erasure
from services.ledger.domain.clock import utcnow

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=GuardedRoute)


class ErasureIn(BaseModel):
    requested_by: str = Field(min_length=1, max_length=128, description="who asks")
    reason: str = Field(
        min_length=1,
        max_length=500,
        description="why, by reference (e.g. the ticket of the customer's request); "
        "never personal data itself: it is kept after the erasure",
    )


class ErasureDecisionIn(BaseModel):
    approved_by: str = Field(
        min_length=1, max_length=128, description="who decides (not the requester)"
    )


@router.post("/customers/{customer_id}/erase", response_model=DecisionOut, status_code=202)
async def request_erasure(
    customer_id: PathId, body: ErasureIn, ledger: LedgerDep, admin: AdminKey
) -> DecisionOut:
    """Ask to erase the customer's personal data; a second admin must approve it."""
    outcome = await run_in_threadpool(
        lambda: erasure.request_erasure(
            ledger,
            customer_id,
            requested_by=body.requested_by,
            reason=body.reason,
            occurred_at=utcnow(),
            requested_with_key=admin.key_id,
        )
    )
    return _decision(outcome, f"erasure of {customer_id} requested", admin, body.requested_by)


@router.post("/customers/{customer_id}/erase/approve", response_model=DecisionOut)
async def approve_erasure(
    customer_id: PathId, body: ErasureDecisionIn, ledger: LedgerDep, admin: AdminKey
) -> DecisionOut:
    """Approve a waiting erasure (another person, another key): the customer's key is
    deleted and `CustomerErased` recorded; points, lots and postings stay."""
    outcome = await run_in_threadpool(
        lambda: erasure.approve_erasure(
            ledger,
            customer_id,
            approved_by=body.approved_by,
            decided_at=utcnow(),
            approver_key=admin.key_id,
        )
    )
    return _decision(outcome, f"erasure of {customer_id} approved", admin, body.approved_by)


@router.post("/customers/{customer_id}/erase/reject", response_model=DecisionOut)
async def reject_erasure(
    customer_id: PathId, body: ErasureDecisionIn, ledger: LedgerDep, admin: AdminKey
) -> DecisionOut:
    """Reject a waiting erasure; nothing is erased."""
    outcome = await run_in_threadpool(
        lambda: erasure.reject_erasure(
            ledger,
            customer_id,
            rejected_by=body.approved_by,
            decided_at=utcnow(),
            rejected_with_key=admin.key_id,
        )
    )
    return _decision(outcome, f"erasure of {customer_id} rejected", admin, body.approved_by)
