"""The staff and auditor console (SPEC §10), served by `loyalty serve` at `/console/`.

Server-rendered pages (Jinja2) over the read side's and the audit part's own functions;
charts drawn on the server as SVG (pygal); a cookie session signed in with an API key
(services/console/sessions.py). No script, style sheet or font comes from elsewhere.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from services.console import approvals, audit, customers, program, signin
from services.console.sessions import Sessions
from services.console.web import HERE, PREFIX, install_handlers


def mount(app: FastAPI) -> None:
    """Add the console's pages under /console to `app`."""
    app.state.console_sessions = Sessions()
    app.state.console_audit = audit.AuditRuns()
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    for part in (signin, customers, approvals, program, audit):
        router.include_router(part.router)
    app.include_router(router)
    app.mount(PREFIX + "/static", StaticFiles(directory=HERE / "static"), name="console-static")
    install_handlers(app)
