"""The approvals queue (SPEC §10): what waits for a second person, and the decision.

A decision goes through the ledger's own methods, exactly as the admin API calls them
(services/ledger/api/admin.py, erasure.py): the signed-in name is `approved_by`, and for adjustments
the session's key id is the approver's key, so the maker-checker rule (another name,
and another key where the request was made with one) is the API's, applied by the
account itself.

An admin also asks for a manual adjustment from the customer page (as the API's
`POST /v1/admin/adjustments` does).

Campaigns waiting for approval are read from the write side (`Ledger.load_campaigns`:
they are the campaigns' own aggregates, not a projection) and decided with
`approve_campaign` / `reject_campaign`, the signed-in name and key as the approver.

Not there yet (no stored events today): parked events; the page says so where they go.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from services.console.queries import WaitingRequest, waiting_requests
from services.console.sessions import Session
from services.console.web import check_csrf, redirect, render, signed_in
from services.http.dependencies import LedgerDep, QueriesDep
from services.ledger.application import erasure
from services.ledger.application.ledger import Outcome
from services.ledger.domain.clock import utcnow
from services.ledger.domain.errors import LedgerError
from services.projections.queries import ProjectionBehind

router = APIRouter()
Admin = Annotated[Session, Depends(signed_in())]
Note = Annotated[str, Form(max_length=2000)]


@router.get("/approvals")
async def approvals(
    request: Request, session: Admin, queries: QueriesDep, ledger: LedgerDep
) -> Response:

    def read() -> list[WaitingRequest]:
        try:  # the person's own last decision is in the list they see next
            queries.wait_for(session.min_position)
        except ProjectionBehind:
            session.say("note", "The projections are a moment behind; reload shortly.")
        return waiting_requests(queries)

    waiting = await run_in_threadpool(read)
    campaigns = [
        c.summary()
        for c in await run_in_threadpool(ledger.load_campaigns)
        if c.status == "awaiting_approval"
    ]
    return render(request, "approvals.html", session, waiting=waiting, campaigns=campaigns)


@router.post("/approvals/campaigns/{campaign_id}/{decision}")
async def decide_campaign(
    request: Request,
    campaign_id: str,
    decision: str,
    session: Admin,
    ledger: LedgerDep,
    csrf_token: Annotated[str, Form()] = "",
    note: Note = "",
) -> Response:
    """A campaign's second person (SPEC §9): the signed-in name and key decide."""
    check_csrf(session, csrf_token)
    assert session.principal is not None
    key_id = session.principal.key_id
    if decision not in ("approve", "reject"):
        return render(
            request,
            "error.html",
            session,
            404,
            title="No such decision",
            message="A decision is approve or reject.",
        )

    def decide() -> Any:
        if decision == "approve":
            return ledger.approve_campaign(
                campaign_id, approved_by=session.name, approver_key=key_id, now=utcnow()
            )
        return ledger.reject_campaign(
            campaign_id,
            rejected_by=session.name,
            note=note or None,
            now=utcnow(),
            rejected_with_key=key_id,
        )

    try:
        campaign = await run_in_threadpool(decide)
    except LedgerError as error:
        session.say("error", f"Campaign {campaign_id}: refused. {error.detail}")
    else:
        session.say(
            "ok", f"Campaign {campaign_id} {decision}d by {session.name}: {campaign.status}."
        )
    return redirect("/approvals")


async def _decide(session: Session, what: str, call: Callable[[], Outcome]) -> Response:
    try:
        outcome = await run_in_threadpool(call)
    except LedgerError as error:
        session.say("error", f"{what}: refused. {error.detail}")
    else:
        session.min_position = max(session.min_position, outcome.position or 0)
        session.say("ok", f"{what}: {outcome.effect.get('status', 'done')}.")
    return redirect("/approvals")


@router.post("/approvals/goodwill/{event_id}/{decision}")
async def decide_goodwill(
    request: Request,
    event_id: str,
    decision: str,
    session: Admin,
    ledger: LedgerDep,
    csrf_token: Annotated[str, Form()] = "",
    note: Note = "",
) -> Response:
    check_csrf(session, csrf_token)
    key_id = session.principal.key_id if session.principal else None
    if decision == "approve":
        return await _decide(
            session,
            f"Goodwill {event_id} approved by {session.name}",
            lambda: ledger.approve_goodwill(
                event_id, approved_by=session.name, decided_at=utcnow(), approver_key=key_id
            ),
        )
    if decision == "reject":
        return await _decide(
            session,
            f"Goodwill {event_id} rejected by {session.name}",
            lambda: ledger.reject_goodwill(
                event_id,
                rejected_by=session.name,
                note=note or None,
                decided_at=utcnow(),
                rejected_with_key=key_id,
            ),
        )
    return render(
        request,
        "error.html",
        session,
        404,
        title="No such decision",
        message="A decision is approve or reject.",
    )


@router.post("/approvals/adjustments/{customer_id}/{adjustment_id}/{decision}")
async def decide_adjustment(
    request: Request,
    customer_id: str,
    adjustment_id: str,
    decision: str,
    session: Admin,
    ledger: LedgerDep,
    csrf_token: Annotated[str, Form()] = "",
    note: Note = "",
) -> Response:
    check_csrf(session, csrf_token)
    assert session.principal is not None
    key_id = session.principal.key_id
    if decision == "approve":
        return await _decide(
            session,
            f"Adjustment {adjustment_id} of {customer_id} approved by {session.name}",
            lambda: ledger.approve_adjustment(
                customer_id=customer_id,
                adjustment_id=adjustment_id,
                approved_by=session.name,
                decided_at=utcnow(),
                approver_key=key_id,
            ),
        )
    if decision == "reject":
        return await _decide(
            session,
            f"Adjustment {adjustment_id} of {customer_id} rejected by {session.name}",
            lambda: ledger.reject_adjustment(
                customer_id=customer_id,
                adjustment_id=adjustment_id,
                rejected_by=session.name,
                note=note or None,
                decided_at=utcnow(),
                rejected_with_key=key_id,
            ),
        )
    return render(
        request,
        "error.html",
        session,
        404,
        title="No such decision",
        message="A decision is approve or reject.",
    )


@router.post("/approvals/erasure/{customer_id}/{decision}")
async def decide_erasure(
    request: Request,
    customer_id: str,
    decision: str,
    session: Admin,
    ledger: LedgerDep,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """An erasure of a customer's personal data (SPEC §11), decided as the admin API does."""
    check_csrf(session, csrf_token)
    assert session.principal is not None
    key_id = session.principal.key_id
    if decision == "approve":
        return await _decide(
            session,
            f"Erasure of {customer_id} approved by {session.name}",
            lambda: erasure.approve_erasure(
                ledger,
                customer_id,
                approved_by=session.name,
                decided_at=utcnow(),
                approver_key=key_id,
            ),
        )
    if decision == "reject":
        return await _decide(
            session,
            f"Erasure of {customer_id} rejected by {session.name}",
            lambda: erasure.reject_erasure(
                ledger,
                customer_id,
                rejected_by=session.name,
                decided_at=utcnow(),
                rejected_with_key=key_id,
            ),
        )
    return render(
        request,
        "error.html",
        session,
        404,
        title="No such decision",
        message="A decision is approve or reject.",
    )


@router.post("/customers/{customer_id}/adjustments")
async def request_adjustment(
    request: Request,
    customer_id: str,
    session: Admin,
    ledger: LedgerDep,
    csrf_token: Annotated[str, Form()] = "",
    adjustment_id: Annotated[str, Form(max_length=128)] = "",
    points: Annotated[str, Form(max_length=12)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """A manual adjustment, as `POST /v1/admin/adjustments` makes it: by the signed-in
    name and key, so that a second admin must approve it above the limit. The form's
    `adjustment_id` is made when the form is shown: sending it twice records it once."""
    check_csrf(session, csrf_token)
    back = f"/customers/{quote(customer_id, safe='')}"
    try:
        amount = int(points)
    except ValueError:
        amount = 0
    if not amount or abs(amount) > 10_000_000 or not reason.strip() or not adjustment_id:
        session.say(
            "error",
            "An adjustment needs whole points (not 0, at most 10,000,000 either way) and a reason.",
        )
        return redirect(back)
    assert session.principal is not None
    key_id = session.principal.key_id
    try:
        outcome = await run_in_threadpool(
            lambda: ledger.adjust(
                customer_id=customer_id,
                adjustment_id=adjustment_id,
                points=amount,
                reason=reason.strip(),
                requested_by=session.name,
                occurred_at=utcnow(),
                requested_with_key=key_id,
            )
        )
    except LedgerError as error:
        session.say("error", f"Adjustment refused. {error.detail}")
        return redirect(back)
    session.min_position = max(session.min_position, outcome.position or 0)
    if outcome.effect.get("status") == "awaiting_approval":
        session.say(
            "ok",
            f"Adjustment {adjustment_id} of {amount:+,} points waits for a "
            "second admin (Approvals).",
        )
    else:
        session.say("ok", f"Adjustment {adjustment_id} of {amount:+,} points applied.")
    return redirect(back)
