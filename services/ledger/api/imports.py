"""Opening balances (SPEC §9), admin only: `POST /v1/admin/opening-balances:batch`.

The same lines as `loyalty import balances FILE.jsonl` (`application/imports.py`): up to
1,000 per request, all accepted ones in one transaction; idempotent by `import_id`.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from services.http.auth import AdminKey
from services.http.dependencies import LedgerDep
from services.http.guard import GuardedRoute
from services.ledger.api.events import BatchResultOut, outcome_body
from services.ledger.application.imports import BATCH_LIMIT, OpeningBalanceIn, record_balances

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=GuardedRoute)


class OpeningBalancesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    balances: list[OpeningBalanceIn] = Field(min_length=1, max_length=BATCH_LIMIT)


class OpeningBalancesOut(BaseModel):
    results: list[BatchResultOut] = Field(
        description="one per line, in order; `event_id` is the line's import_id"
    )


@router.post("/opening-balances:batch", response_model=OpeningBalancesOut)
async def import_opening_balances(
    body: OpeningBalancesIn, ledger: LedgerDep, _: AdminKey
) -> OpeningBalancesOut:
    """Bring customers' points from another programme, as lots with their own dates."""
    outcomes = await run_in_threadpool(record_balances, ledger, body.balances)
    return OpeningBalancesOut(
        results=[BatchResultOut.model_validate(outcome_body(o)) for o in outcomes]
    )
