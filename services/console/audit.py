"""The auditor's page (SPEC §10): verify the hash chain and see the first broken
position, run a replay and read its report, download an export, see the follow-ups
parked until their original arrives (SPEC §8). The same functions as
`loyalty audit verify|replay|export` and the audit API (services/audit/).

The last verification and the last replay are kept in this process with who ran them and
when, so a second auditor reads the report without running it again; one replay runs at
a time (it rebuilds every projection into scratch tables).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from services.audit.export import MEDIA_TYPE, export_lines
from services.audit.verify import VerifyResult, verify
from services.console.sessions import Session
from services.console.web import check_csrf, redirect, render, signed_in
from services.http.dependencies import AuditDep, ContainerDep, LedgerDep
from services.ledger.domain.clock import utcnow

router = APIRouter()
Auditor = Annotated[Session, Depends(signed_in("auditor"))]


@dataclass
class Ran:
    by: str
    at: datetime
    result: Any


@dataclass
class AuditRuns:
    verified: Ran | None = None
    replayed: Ran | None = None
    replay_error: str | None = None
    replaying: threading.Lock = field(default_factory=threading.Lock)


def _runs(request: Request) -> AuditRuns:
    return request.app.state.console_audit  # type: ignore[no-any-return]


PARKED_SHOWN = 100


@router.get("/audit")
async def audit_page(request: Request, session: Auditor, ledger: LedgerDep) -> Response:
    runs = _runs(request)
    position = await run_in_threadpool(ledger.position)
    # SPEC §8: what waits for its original, as GET /v1/admin/parked lists it.
    parked, more, _ = await run_in_threadpool(ledger.parked.page, 0, PARKED_SHOWN)
    return render(
        request,
        "audit.html",
        session,
        runs=runs,
        position=position,
        replay_running=runs.replaying.locked(),
        parked=parked,
        parked_more=more is not None,
    )


@router.post("/audit/verify")
async def verify_chain(
    request: Request, session: Auditor, audit: AuditDep, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    check_csrf(session, csrf_token)
    result: VerifyResult = await run_in_threadpool(verify, audit.recorder, audit.chain)
    _runs(request).verified = Ran(session.name, utcnow(), result)
    return redirect("/audit#verify")


@router.post("/audit/replay")
async def run_replay(
    request: Request,
    session: Auditor,
    container: ContainerDep,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(session, csrf_token)
    runs = _runs(request)
    if not runs.replaying.acquire(blocking=False):
        session.say("note", "A replay is already running; its report will be here.")
        return redirect("/audit#replay")

    def run() -> Any:
        from services.audit.replay import replay  # the read side, loaded only to replay

        return replay(container.ledger.recorder, container.store, shown=100)

    try:
        report = await run_in_threadpool(run)
    except Exception as error:  # shown to the auditor, who needs to know it did not run
        runs.replay_error = f"{type(error).__name__}: {error}"
        session.say("error", f"The replay failed: {runs.replay_error}")
    else:
        runs.replayed, runs.replay_error = Ran(session.name, utcnow(), report), None
    finally:
        runs.replaying.release()
    return redirect("/audit#replay")


@router.get("/audit/export")
async def export(
    request: Request,
    session: Auditor,
    audit: AuditDep,
    from_position: Annotated[str, Query(max_length=20)] = "0",
    to_position: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    """A download: the stored events as JSON Lines, as `GET /v1/audit/export` gives them
    (an empty `to_position`, as the form sends it, is the end)."""
    try:
        start = int(from_position or 0)
        stop = int(to_position) if to_position else None
    except ValueError:
        start = stop = -1
    if start < 0 or (stop is not None and stop < 0):
        return render(
            request,
            "error.html",
            session,
            422,
            title="Not a position",
            message="Positions are whole numbers from 0.",
        )
    lines = export_lines(audit.recorder, audit.chain, from_position=start, to_position=stop)
    name = f"loyalty-events-{start}-{'end' if stop is None else stop}.jsonl"
    return StreamingResponse(
        lines,
        media_type=MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
