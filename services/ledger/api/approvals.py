"""What waits for a second person (SPEC §8 "Approvals"): one list of the goodwill grants,
manual adjustments, erasures (SPEC §11), rule changes and campaigns that a second admin
must approve or reject.

Goodwill and adjustments come from the read side's timeline (a request without its
decision), read after the projections reached `min_position` when given; rule changes
come from the program itself, campaigns from their own aggregates. The decisions stay where
they were: `/v1/admin/goodwill/..`, `/v1/admin/adjustments/..`,
`/v1/admin/customers/{id}/erase/..`, `/v1/admin/rules/requests/..` and
`/v1/admin/campaigns/{id}/approve|reject`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from eventsourcing.application import AggregateNotFoundError
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from services.http.auth import AdminKey
from services.http.dependencies import ContainerDep
from services.http.guard import GuardedRoute
from services.http.params import MAX_POSITION
from services.ledger.domain import errors
from services.ledger.domain.intake import IntakeRecord

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=GuardedRoute)


class WaitingOut(BaseModel):
    kind: str = Field(description="goodwill, adjustment, erasure, rule_change or campaign")
    request_id: str = Field(
        description="the goodwill's event_id, the adjustment_id, erase-…, rules-…, or the "
        "campaign_id"
    )
    customer_id: str | None = Field(description="none for a rule change or a campaign")
    requested_by: str
    reason: str
    points: int | None = None
    waits_because: str | None = None
    occurred_at: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class ApprovalsOut(BaseModel):
    waiting: list[WaitingOut]
    position: int = Field(description="the read side's position the list reflects")


@router.get(
    "/approvals",
    response_model=ApprovalsOut,
    responses={503: {"description": "the read side has not reached `min_position` in time"}},
)
async def approvals(
    container: ContainerDep,
    _: AdminKey,
    min_position: Annotated[
        int | None,
        Query(ge=0, le=MAX_POSITION, description="read-your-writes: wait for this position"),
    ] = None,
) -> Any:
    """Everything that waits for a second person, oldest first: goodwill, adjustments, rule
    changes and campaigns."""
    from services.projections.queries import ProjectionBehind
    from services.projections.routes import _behind

    try:
        return await run_in_threadpool(lambda: waiting_for_a_second_person(container, min_position))
    except ProjectionBehind as behind:
        return _behind(behind)


def waiting_for_a_second_person(container: Any, min_position: int | None) -> ApprovalsOut:
    from services.console.queries import waiting_requests

    queries = container.projections.queries
    queries.wait_for(min_position)
    position = queries.runner.position()
    waiting = [
        WaitingOut(
            kind=item.kind,
            request_id=item.request_id,
            customer_id=item.customer_id,
            requested_by=item.requested_by,
            reason=item.reason,
            points=item.points,
            waits_because=item.waits_because,
            occurred_at=item.occurred_at,
            details=asdict(item)["details"],
        )
        for item in waiting_requests(queries)
    ]
    for request_id, change in container.ledger.pending_rule_changes().items():
        waiting.append(
            WaitingOut(
                kind="rule_change",
                request_id=request_id,
                customer_id=None,
                requested_by=change["requested_by"],
                reason=change["reason"],
                details={"loosened": change["loosened"], "rules": change["rules"]},
            )
        )
    for campaign in container.ledger.load_campaigns():
        if campaign.status == "awaiting_approval":
            shown = campaign.summary()
            waiting.append(
                WaitingOut(
                    kind="campaign",
                    request_id=shown["campaign_id"],
                    customer_id=None,
                    requested_by=shown["created_by"],
                    reason=shown["name"],
                    points=shown["budget_points"],
                    occurred_at=shown["created_at"],
                    details={
                        k: shown[k]
                        for k in ("condition", "effect", "starts_at", "ends_at", "per_customer_cap")
                    },
                )
            )
    return ApprovalsOut(waiting=waiting, position=position)


def check_goodwill_known(ledger: Any, event_id: str) -> None:
    """A decision on a goodwill the ledger never recorded is 404 (one already decided is
    409, `not-pending`, from the account)."""
    try:
        intake: IntakeRecord = ledger.repository.get(IntakeRecord.create_id(event_id))
    except AggregateNotFoundError:
        raise errors.UnknownApproval(f"no goodwill event {event_id!r} is known") from None
    if intake.type != "goodwill":
        raise errors.UnknownApproval(f"event {event_id!r} is a {intake.type}, not a goodwill")
