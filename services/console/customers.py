"""The customer search and the customer page (SPEC §10), as of a chosen date.

The page shows what the read API answers (balance with lots, tier with its why and the
spend missing, segment, trust, LTV, the timeline with the why of every event), from the
same functions; `as_of` is a day in the program's time zone: the state at its end.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from services.console.formatting import TIME_ZONE
from services.console.queries import customer_page, search, timeline_window
from services.console.sessions import Session
from services.console.web import render, signed_in
from services.http.dependencies import QueriesDep
from services.ledger.domain.clock import iso
from services.ledger.domain.errors import UnknownCustomer
from services.projections.queries import ProjectionBehind

router = APIRouter()
Reader = Annotated[Session, Depends(signed_in("service", "auditor"))]
TIMELINE_PAGE = 50
LOTS_SHOWN = 25


@router.get("/customers")
async def customers(
    request: Request,
    session: Reader,
    queries: QueriesDep,
    q: Annotated[str, Query(max_length=128)] = "",
) -> Response:
    text = q.strip()
    found = await run_in_threadpool(search, queries, text) if text else None
    return render(request, "customers.html", session, q=text, found=found)


def end_of_day(text: str) -> datetime | None:
    """'2026-03-31' -> the last instant of that day in the program's time zone."""
    if not text:
        return None
    return datetime.combine(date.fromisoformat(text), time.max, TIME_ZONE)


@router.get("/customers/{customer_id}")
async def customer(
    request: Request,
    customer_id: str,
    session: Reader,
    queries: QueriesDep,
    as_of: Annotated[str, Query(max_length=10)] = "",
    before: Annotated[int | None, Query(ge=1)] = None,
    lots: Annotated[str, Query(max_length=3)] = "",
) -> Response:
    try:
        cut = end_of_day(as_of)
    except ValueError:
        return render(
            request,
            "customer.html",
            session,
            422,
            customer_id=customer_id,
            as_of=as_of,
            error=f"{as_of!r} is not a date (YYYY-MM-DD)",
        )

    def read() -> dict[str, Any]:
        try:  # this person's own last decision or adjustment is on the page
            queries.wait_for(session.min_position)
        except ProjectionBehind:
            session.say("note", "The projections are a moment behind; reload shortly.")
        page = customer_page(queries, customer_id, cut)
        window = timeline_window(
            queries, customer_id, wanted=TIMELINE_PAGE, before_position=before, as_of=cut
        )
        items = queries.timeline(
            customer_id, limit=window.limit, after_position=window.after_position
        )["items"]
        if cut is not None:
            items = [i for i in items if (i["occurred_at"] or i["recorded_at"]) <= iso(cut)]
        if before is not None:
            items = [i for i in items if i["position"] < before]
        return {"page": page, "items": list(reversed(items)), "older": window.older}

    try:
        found = await run_in_threadpool(read)
    except UnknownCustomer as error:
        return render(
            request,
            "customer.html",
            session,
            404,
            customer_id=customer_id,
            as_of=as_of,
            error=error.detail,
        )
    except ProjectionBehind as error:
        return render(
            request,
            "customer.html",
            session,
            503,
            customer_id=customer_id,
            as_of=as_of,
            error=error.detail,
        )
    all_lots = found["page"].balance["lots"]  # type: ignore[attr-defined]
    shown = all_lots if lots == "all" else all_lots[:LOTS_SHOWN]
    return render(
        request,
        "customer.html",
        session,
        customer_id=customer_id,
        as_of=as_of,
        before=before,
        lots=shown,
        lots_hidden=len(all_lots) - len(shown),
        adjustment_id=f"console-{secrets.token_hex(8)}",  # one per form: a resend is a repeat
        **found,
    )
