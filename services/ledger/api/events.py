"""POS intake over HTTP: one event, or a batch recorded in one transaction (SPEC §6)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from services.http.auth import PosKey
from services.http.guard import GuardedRoute, max_body
from services.http.problems import MEDIA_TYPE, Problem, problem
from services.http.responses import OrjsonResponse
from services.ledger.adapters.contract import MAX_EVENT_BYTES, parse_command, validate_item
from services.ledger.api.refusals import contract_violation_document, ledger_error_document
from services.ledger.application.intake import Intake, Invalid
from services.ledger.application.outcomes import Outcome
from services.ledger.domain.effects import as_json
from services.metrics import BATCH_SECONDS, EVENTS

router = APIRouter(prefix="/v1", tags=["events"], route_class=GuardedRoute)

MAX_BATCH = 1000
MAX_BATCH_BYTES = 32 * 1024 * 1024
# A POS waiting on a write would rather wait than be told to send it again: a batch here
# keeps trying for this long while other writers win the race (four writers on one
# campaign's budget, two cores, once lost twelve tries in a row). The Kafka consumer asks
# for none: its own loop retries, and keeps polling so its group keeps it.
WRITE_PATIENCE_SECONDS = 20.0

# The body is the POS contract itself, served at the path its `$id` names
# (services/ledger/api/schemas.py): https://loyalty-ledger.dev/schemas/pos/event.v1.json.
EVENT_SCHEMA_REF = "/schemas/pos/event.v1.json"
_EVENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": EVENT_SCHEMA_REF}}},
    }
}
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["events"],
                    "properties": {
                        "events": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_BATCH,
                            "items": {"$ref": EVENT_SCHEMA_REF},
                        }
                    },
                    "additionalProperties": False,
                }
            }
        },
    }
}


class EventOut(BaseModel):
    event_id: str
    status: str = Field(
        description="accepted; duplicate for a repeat; parked for a follow-up whose original "
        "is not known yet (SPEC §8)"
    )
    position: int = Field(description="the store position of the event's record")
    effect: dict[str, Any] = Field(description="what it did: points, lot, tier ...")


class BatchResultOut(BaseModel):
    event_id: str | None = Field(description="null when the item had no readable event_id")
    status: str = Field(description="accepted, duplicate, parked or rejected")
    position: int | None = None
    effect: dict[str, Any] | None = None
    problem: Problem | None = Field(default=None, description="why it was rejected")


class BatchOut(BaseModel):
    results: list[BatchResultOut] = Field(description="one per event, in the batch's order")


def outcome_body(outcome: Outcome) -> dict[str, Any]:
    if outcome.status == "rejected":
        assert outcome.error is not None
        return {
            "event_id": outcome.event_id,
            "status": "rejected",
            "problem": ledger_error_document(outcome.error),
        }
    return {
        "event_id": outcome.event_id,
        "status": outcome.status,
        "position": outcome.position,
        "effect": as_json(outcome.effect),
    }


@router.post(
    "/events",
    status_code=201,
    openapi_extra=_EVENT_BODY,
    responses={
        201: {"description": "Recorded: `accepted`", "model": EventOut},
        200: {
            "description": "A repeat of a recorded event: `duplicate`, original position",
            "model": EventOut,
        },
        202: {
            "description": "A follow-up whose original is not known yet: `parked`, applied "
            "when the original arrives, refused (`unknown-original-event`) after `park_days`; "
            "a repeat answers `parked` again while it waits",
            "model": EventOut,
        },
        409: {"description": "Same event_id, other content", "content": {MEDIA_TYPE: {}}},
        422: {"description": "Invalid, or refused by a rule", "content": {MEDIA_TYPE: {}}},
    },
)
@max_body(MAX_EVENT_BYTES)
async def post_event(request: Request, _: PosKey) -> OrjsonResponse:
    """Record one POS event, exactly once."""
    raw = await request.body()
    intake = Intake(request.app.state.container.ledger, patience=WRITE_PATIENCE_SECONDS)
    [outcome] = await run_in_threadpool(intake.submit, [raw], parse_command)
    if isinstance(outcome, Invalid):
        EVENTS.labels("http", "invalid").inc()
        raise outcome.violation
    EVENTS.labels("http", outcome.status).inc()
    if outcome.status == "rejected":
        assert outcome.error is not None
        raise outcome.error
    status = {"accepted": 201, "parked": 202}.get(outcome.status, 200)
    return OrjsonResponse(outcome_body(outcome), status_code=status)


@router.post(
    "/events:batch",
    openapi_extra=_BATCH_BODY,
    responses={200: {"description": "One result per event", "model": BatchOut}},
)
@max_body(MAX_BATCH_BYTES)
async def post_batch(request: Request, _: PosKey) -> OrjsonResponse:
    """Record up to 1,000 POS events; all accepted ones commit in one transaction."""
    raw = await request.body()
    if len(raw) > MAX_BATCH_BYTES:
        return problem(
            413, "payload-too-large", "The batch is too large", f"at most {MAX_BATCH_BYTES} bytes"
        )
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return problem(400, "malformed-json", "The body is not JSON", str(error))
    events = body.get("events") if isinstance(body, dict) else None
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_BATCH:
        return problem(
            422,
            "invalid-batch",
            "A batch is {'events': [...]} with 1 to 1,000 events",
            f"got {type(events).__name__ if events is not None else 'no events'}"
            + (f" of {len(events)}" if isinstance(events, list) else ""),
            errors=[{"field": "events", "message": "expected an array of 1 to 1,000 events"}],
        )
    unknown = sorted(set(body) - {"events"}) if isinstance(body, dict) else []
    if unknown:
        return problem(
            422,
            "invalid-batch",
            "A batch is {'events': [...]} and nothing else",
            f"unknown field(s) {', '.join(map(repr, unknown))} in the batch",
            errors=[{"field": name, "message": "unknown field in a batch"} for name in unknown],
        )
    intake = Intake(request.app.state.container.ledger, patience=WRITE_PATIENCE_SECONDS)
    results = await run_in_threadpool(
        intake.submit, events, validate_item, None, BATCH_SECONDS.labels("http").observe
    )
    bodies: list[dict[str, Any]] = []
    for event, result in zip(events, results, strict=True):
        if isinstance(result, Invalid):
            bodies.append(
                {
                    "event_id": event.get("event_id") if isinstance(event, dict) else None,
                    "status": "rejected",
                    "problem": contract_violation_document(result.violation),
                }
            )
            EVENTS.labels("http", "invalid").inc()
        else:
            bodies.append(outcome_body(result))
            EVENTS.labels("http", result.status).inc()
    return OrjsonResponse({"results": bodies})
