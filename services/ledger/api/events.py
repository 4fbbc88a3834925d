"""POS intake over HTTP: one event, or a batch recorded in one transaction (SPEC §6)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from services.http.auth import PosKey
from services.http.guard import GuardedRoute, max_body
from services.http.problems import MEDIA_TYPE, Problem, problem
from services.http.responses import OrjsonResponse
from services.ledger.adapters.contract import (
    MAX_DEPTH,
    MAX_EVENT_BYTES,
    ContractViolation,
    FieldError,
    depth,
    parse_event,
    too_deep,
    validate_event,
)
from services.ledger.api.refusals import contract_violation_document, ledger_error_document
from services.ledger.application.ledger import Outcome
from services.metrics import BATCH_SECONDS, EVENTS

router = APIRouter(prefix="/v1", tags=["events"], route_class=GuardedRoute)

MAX_BATCH = 1000
MAX_BATCH_BYTES = 32 * 1024 * 1024

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


def _whole_schema_version(document: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema's `const: 1` also matches 1.0; the contract's version is the integer 1.
    (Checked here for HTTP; the Kafka path needs the same in contract.py.)"""
    if type(document.get("schema_version")) is float:
        raise ContractViolation.invalid(
            [
                FieldError(
                    "schema_version",
                    "must be 1 written without a decimal point; got "
                    f"{document['schema_version']!r}",
                )
            ]
        )
    return document


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
        "effect": outcome.effect,
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
    try:
        document = _whole_schema_version(parse_event(raw))
    except ContractViolation:
        EVENTS.labels("http", "invalid").inc()
        raise
    ledger = request.app.state.container.ledger
    outcome: Outcome = await run_in_threadpool(ledger.record, document)
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
    results: list[dict[str, Any] | None] = [None] * len(events)
    valid: list[tuple[int, dict[str, Any]]] = []
    for index, event in enumerate(events):
        try:
            if depth(event) > MAX_DEPTH:  # orjson.dumps would give up too (past 254)
                raise too_deep()
            if len(orjson.dumps(event)) > MAX_EVENT_BYTES:
                raise ContractViolation.too_large(MAX_EVENT_BYTES)
            valid.append((index, _whole_schema_version(validate_event(event))))
        except ContractViolation as violation:
            event_id = event.get("event_id") if isinstance(event, dict) else None
            results[index] = {
                "event_id": event_id,
                "status": "rejected",
                "problem": contract_violation_document(violation),
            }
            EVENTS.labels("http", "invalid").inc()
    if valid:
        ledger = request.app.state.container.ledger
        started = time.perf_counter()
        outcomes: list[Outcome] = await run_in_threadpool(
            ledger.record_batch, [doc for _, doc in valid]
        )
        BATCH_SECONDS.labels("http").observe(time.perf_counter() - started)
        for (index, _doc), outcome in zip(valid, outcomes, strict=True):
            results[index] = outcome_body(outcome)
            EVENTS.labels("http", outcome.status).inc()
    return OrjsonResponse({"results": results})
