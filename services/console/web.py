"""What every console page shares: the templates, who is signed in, the CSRF check, and
the answers to a missing session (sign in), a wrong role (403) and a forged form (403).

Roles are the API's (SPEC §6, services/http/auth.py): `service` sees customers and
the program's NPS, `auditor` the liability and the audit page, `admin` everything and
decides the approvals.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.console.formatting import FILTERS, TIME_ZONE_NAME
from services.console.sessions import Session, Sessions, csrf_ok

HERE = Path(__file__).parent
PREFIX = "/console"
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(FILTERS)
templates.env.globals.update(prefix=PREFIX, time_zone=TIME_ZONE_NAME)

# Pages in the navigation: (path, label, roles that see it; admin sees all).
NAV = (
    ("/customers", "Customers", ("service", "auditor")),
    ("/approvals", "Approvals", ()),
    ("/program", "Program", ("service", "auditor")),
    ("/audit", "Audit", ("auditor",)),
)
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class NotSignedIn(Exception):
    """No session (or an expired one): 401, or the sign-in page for a page read."""


class WrongRole(Exception):
    def __init__(self, session: Session, roles: tuple[str, ...]) -> None:
        super().__init__(f"role {session.role!r} may not open this")
        self.session = session
        self.roles = roles


class BadCsrf(Exception):
    """A state-changing form without this session's token: refused, nothing changes."""


def sessions_of(request: Request) -> Sessions:
    return request.app.state.console_sessions  # type: ignore[no-any-return]


def signed_in(*roles: str) -> Callable[[Request], Session]:
    """A dependency: the signed-in session, admitted for `roles` (and admin)."""

    def dependency(request: Request) -> Session:
        session = sessions_of(request).get(request)
        if session is None or session.principal is None:
            raise NotSignedIn()
        if not session.may(*roles):
            raise WrongRole(session, roles)
        return session

    return dependency


def check_csrf(session: Session | None, token: str) -> None:
    if not csrf_ok(session, token):
        raise BadCsrf()


def render(
    request: Request,
    template: str,
    session: Session | None,
    status_code: int = 200,
    **context: Any,
) -> Response:
    nav = [
        (PREFIX + path, label)
        for path, label, roles in NAV
        if session is not None and session.may(*roles)
    ]
    response = templates.TemplateResponse(
        request,
        template,
        {
            "session": session,
            "nav": nav,
            "flash": session.take_flash() if session else [],
            "csrf": session.csrf if session else "",
            **context,
        },
        status_code=status_code,
    )
    return secured(response)


def secured(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def redirect(path: str) -> RedirectResponse:
    """After a form post: 303 to a page read (post/redirect/get)."""
    return RedirectResponse(PREFIX + path, status_code=303)


def install_handlers(app: Any) -> None:
    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, _: NotSignedIn) -> Response:
        if request.method == "GET":
            return secured(redirect("/sign-in"))
        response = render(
            request,
            "error.html",
            None,
            401,
            title="Sign in first",
            message="Your session has ended or you have not signed in.",
        )
        response.headers["WWW-Authenticate"] = 'Cookie realm="console"'
        return response

    @app.exception_handler(WrongRole)
    async def _wrong_role(request: Request, error: WrongRole) -> Response:
        needed = " or ".join(sorted({*error.roles, "admin"}))
        return render(
            request,
            "error.html",
            error.session,
            403,
            title="Not for this role",
            message=f"A {error.session.role} key may not open this page; it needs {needed}.",
        )

    @app.exception_handler(BadCsrf)
    async def _bad_csrf(request: Request, _: BadCsrf) -> Response:
        session = sessions_of(request).get(request)
        return render(
            request,
            "error.html",
            session,
            403,
            title="Form refused",
            message="The form's security token is missing or wrong, so nothing was done. "
            "Reload the page and try again.",
        )
