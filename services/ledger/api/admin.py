"""Admin commands: maker-checker decisions, manual adjustments, the sweep, rule changes."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from services.http.auth import AdminKey, Principal
from services.http.dependencies import ContainerDep, LedgerDep
from services.http.guard import GuardedRoute
from services.http.params import ID_MAX_LENGTH, ID_PATTERN, LedgerTime
from services.http.problems import invalid_request
from services.http.responses import OrjsonResponse
from services.ledger.api.approvals import check_goodwill_known
from services.ledger.application.outcomes import Outcome, RuleChange
from services.ledger.domain.clock import TICK_CLOCK_SKEW, not_ahead_of, utcnow
from services.ledger.domain.errors import InvalidRules
from services.ledger.domain.rules import ProgramRules

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=GuardedRoute)


PathId = Annotated[str, Path(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH)]


class DecisionIn(BaseModel):
    approved_by: str = Field(
        min_length=1, max_length=128, description="who decides (not the requester)"
    )
    note: str | None = Field(default=None, max_length=2000)


class DecisionOut(BaseModel):
    customer_id: str
    position: int
    effect: dict[str, Any]


class AdjustmentIn(BaseModel):
    customer_id: str = Field(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH)
    adjustment_id: str = Field(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH)
    points: int = Field(
        description="positive credits, negative debits", ge=-10_000_000, le=10_000_000
    )
    reason: str = Field(min_length=1, max_length=500)
    requested_by: str = Field(min_length=1, max_length=128)


class TickIn(BaseModel):
    now: LedgerTime | None = Field(
        default=None,
        description="defaults to the ledger clock; at most "
        f"{int(TICK_CLOCK_SKEW.total_seconds() // 60)} minutes ahead of it",
    )


class TickOut(BaseModel):
    now: str
    recorded: list[dict[str, Any]]
    position: int


class RulesIn(BaseModel):
    rules: dict[str, Any] = Field(description="the full rule set, as GET /v1/admin/rules shows it")
    changed_by: str = Field(min_length=1, max_length=128)
    reason: str = Field(min_length=1, max_length=500)
    effective_from: LedgerTime | None = Field(
        None, description="events from this moment on earn by these rules (default now)"
    )


class RulesOut(BaseModel):
    version: int
    rules: dict[str, Any]


def _decision(outcome: Outcome, what: str, admin: Principal, person: str) -> DecisionOut:
    assert outcome.customer_id is not None and outcome.position is not None
    _record(what, admin, person, position=outcome.position, customer_id=outcome.customer_id)
    return DecisionOut(
        customer_id=outcome.customer_id, position=outcome.position, effect=dict(outcome.effect)
    )


def _record(what: str, admin: Principal, person: str, **details: Any) -> None:
    """Which key made an admin decision, by name (never the key), beside the person named
    in the body. The stored events carry it for adjustments (`requested_with_key`); for
    the other decisions the ledger's commands take no key yet, so the log holds it."""
    shown = " ".join(f"{k}={v}" for k, v in details.items())
    log.info("admin %s by %r with key %r %s", what, person, admin.key_id, shown)


@router.post("/goodwill/{event_id}/approve", response_model=DecisionOut)
async def approve_goodwill(
    event_id: PathId, body: DecisionIn, ledger: LedgerDep, admin: AdminKey
) -> DecisionOut:
    """Approve a goodwill grant waiting above the small-money limit (maker-checker)."""
    await run_in_threadpool(check_goodwill_known, ledger, event_id)
    outcome = await run_in_threadpool(
        lambda: ledger.approve_goodwill(
            event_id, approved_by=body.approved_by, decided_at=utcnow(), approver_key=admin.key_id
        )
    )
    return _decision(outcome, f"goodwill {event_id} approved", admin, body.approved_by)


@router.post("/goodwill/{event_id}/reject", response_model=DecisionOut)
async def reject_goodwill(
    event_id: PathId, body: DecisionIn, ledger: LedgerDep, admin: AdminKey
) -> DecisionOut:
    """Reject a goodwill grant that is waiting for approval."""
    await run_in_threadpool(check_goodwill_known, ledger, event_id)
    outcome = await run_in_threadpool(
        lambda: ledger.reject_goodwill(
            event_id,
            rejected_by=body.approved_by,
            note=body.note,
            decided_at=utcnow(),
            rejected_with_key=admin.key_id,
        )
    )
    return _decision(outcome, f"goodwill {event_id} rejected", admin, body.approved_by)


@router.post("/adjustments", response_model=DecisionOut, status_code=201)
async def adjust(body: AdjustmentIn, ledger: LedgerDep, admin: AdminKey) -> DecisionOut:
    """Adjust a customer's points by hand; above the limit it waits for a second admin."""
    outcome = await run_in_threadpool(
        lambda: ledger.adjust(
            customer_id=body.customer_id,
            adjustment_id=body.adjustment_id,
            points=body.points,
            reason=body.reason,
            requested_by=body.requested_by,
            occurred_at=utcnow(),
            requested_with_key=admin.key_id,
        )
    )
    return _decision(
        outcome, f"adjustment {body.adjustment_id} requested", admin, body.requested_by
    )


@router.post("/adjustments/{customer_id}/{adjustment_id}/approve", response_model=DecisionOut)
async def approve_adjustment(
    customer_id: PathId,
    adjustment_id: PathId,
    body: DecisionIn,
    ledger: LedgerDep,
    admin: AdminKey,
) -> DecisionOut:
    """Approve a manual adjustment waiting above the limit (maker-checker)."""
    outcome = await run_in_threadpool(
        lambda: ledger.approve_adjustment(
            customer_id=customer_id,
            adjustment_id=adjustment_id,
            approved_by=body.approved_by,
            decided_at=utcnow(),
            approver_key=admin.key_id,
        )
    )
    return _decision(outcome, f"adjustment {adjustment_id} approved", admin, body.approved_by)


@router.post("/adjustments/{customer_id}/{adjustment_id}/reject", response_model=DecisionOut)
async def reject_adjustment(
    customer_id: PathId,
    adjustment_id: PathId,
    body: DecisionIn,
    ledger: LedgerDep,
    admin: AdminKey,
) -> DecisionOut:
    """Reject a manual adjustment that is waiting for approval."""
    outcome = await run_in_threadpool(
        lambda: ledger.reject_adjustment(
            customer_id=customer_id,
            adjustment_id=adjustment_id,
            rejected_by=body.approved_by,
            note=body.note,
            decided_at=utcnow(),
            rejected_with_key=admin.key_id,
        )
    )
    return _decision(outcome, f"adjustment {adjustment_id} rejected", admin, body.approved_by)


@router.post("/tick", response_model=TickOut)
async def tick(container: ContainerDep, admin: AdminKey, body: TickIn | None = None) -> Any:
    """Record the maturations and expiries due by `now`; a second run records nothing new."""
    clock = utcnow()
    now: datetime = body.now if body and body.now else clock
    why = not_ahead_of(now, clock)
    if why is not None:
        return invalid_request("now", why)
    result = await run_in_threadpool(container.tick, now)
    _record("tick", admin, "-", now=result.now, recorded=len(result.recorded))
    return TickOut(now=result.now, recorded=result.recorded, position=result.position)


@router.get("/rules", response_model=RulesOut)
async def get_rules(ledger: LedgerDep, _: AdminKey) -> RulesOut:
    """The program's rules in force, with their version."""
    rules: ProgramRules = ledger.refresh_rules()
    return RulesOut(version=rules.version, rules=rules.to_document())


class RuleChangeOut(BaseModel):
    request_id: str
    status: str = Field(description="awaiting_approval, or approved")
    loosened: list[str] = Field(description="the controls the change loosens")
    version: int = Field(description="the version in force")


@router.put(
    "/rules",
    response_model=RulesOut,
    responses={202: {"model": RuleChangeOut, "description": "waits for a second admin"}},
)
async def put_rules(body: RulesIn, ledger: LedgerDep, admin: AdminKey) -> Any:
    """Record a new version of the rules (itself an event); the same rules change nothing.
    A change that loosens a control (approval or small-money limits, the trust tester)
    waits for a second admin: 202 with the request to approve."""
    try:
        rules = ProgramRules.from_document(body.rules)
    except (TypeError, ValueError, KeyError) as error:
        raise InvalidRules(f"the rule set is not usable: {error}", field="rules") from error
    change: RuleChange = await run_in_threadpool(
        lambda: ledger.change_rules(
            rules,
            changed_by=body.changed_by,
            reason=body.reason,
            requested_with_key=admin.key_id,
            effective_from=body.effective_from,
        )
    )
    if change.request_id is not None:
        _record("rule change requested", admin, body.changed_by, request=change.request_id)
        waiting = RuleChangeOut(
            request_id=change.request_id,
            status="awaiting_approval",
            loosened=change.loosened,
            version=change.rules.version,
        )
        return OrjsonResponse(waiting.model_dump(), status_code=202)
    _record("rules changed", admin, body.changed_by, version=change.rules.version)
    return RulesOut(version=change.rules.version, rules=change.rules.to_document())


@router.get("/rules/requests")
async def rule_change_requests(ledger: LedgerDep, _: AdminKey) -> dict[str, Any]:
    """Rule changes waiting for a second admin."""
    return {"requests": await run_in_threadpool(ledger.pending_rule_changes)}


@router.post("/rules/requests/{request_id}/approve", response_model=RulesOut)
async def approve_rule_change(
    request_id: PathId, body: DecisionIn, ledger: LedgerDep, admin: AdminKey
) -> RulesOut:
    """Approve a waiting rule change as a second admin (not its requester, another key)."""
    rules: ProgramRules = await run_in_threadpool(
        lambda: ledger.approve_rule_change(
            request_id, approved_by=body.approved_by, approver_key=admin.key_id
        )
    )
    _record("rule change approved", admin, body.approved_by, request=request_id)
    return RulesOut(version=rules.version, rules=rules.to_document())


@router.post("/rules/requests/{request_id}/reject", status_code=204, response_class=Response)
async def reject_rule_change(
    request_id: PathId, body: DecisionIn, ledger: LedgerDep, admin: AdminKey
) -> Response:
    """Reject a waiting rule change; the rules in force stay."""
    await run_in_threadpool(
        lambda: ledger.reject_rule_change(
            request_id, rejected_by=body.approved_by, note=body.note, rejected_with_key=admin.key_id
        )
    )
    _record("rule change rejected", admin, body.approved_by, request=request_id)
    return Response(status_code=204)
