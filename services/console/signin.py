"""Sign-in with an API key, sign-out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from services.console.sessions import Session
from services.console.web import check_csrf, redirect, render, sessions_of
from services.http.dependencies import ApiKeysDep

router = APIRouter()
HOME = {"auditor": "/audit", "admin": "/approvals"}  # others: the customer search


@router.get("/")
async def home(request: Request) -> Response:
    session = sessions_of(request).get(request)
    if session is None or session.role is None:
        return redirect("/sign-in")
    return redirect(HOME.get(session.role, "/customers"))


@router.get("/sign-in")
async def sign_in_page(request: Request) -> Response:
    sessions = sessions_of(request)
    session = sessions.get(request)
    if session is not None and session.role is not None:
        return redirect(HOME.get(session.role, "/customers"))
    if session is None:  # an anonymous session only to carry the sign-in form's token
        session = Session()
        response = render(request, "sign_in.html", session)
        sessions.start(response, request, session)
        return response
    return render(request, "sign_in.html", session)


@router.post("/sign-in")
async def sign_in(
    request: Request,
    api_keys: ApiKeysDep,
    key: Annotated[str, Form()] = "",
    name: Annotated[str, Form(max_length=128)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    sessions = sessions_of(request)
    anonymous = sessions.get(request)
    check_csrf(anonymous, csrf_token)
    assert anonymous is not None
    principal = api_keys.authenticate(key.strip())
    name = name.strip()
    error, status = None, 200
    if principal is None:
        error, status = "That key is not one of this service's API keys.", 401
    elif principal.role == "pos":
        error, status = "A pos key writes events; it cannot open the console.", 403
    elif not name:
        error, status = "Say who you are: your name signs your decisions.", 422
    if error is not None:
        return render(request, "sign_in.html", anonymous, status, error=error, name=name)
    sessions.end(request, Response())  # the anonymous id is dropped: a new id signs in
    session = Session(principal=principal, name=name)
    assert principal is not None
    response = redirect(HOME.get(principal.role, "/customers"))
    sessions.start(response, request, session)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    sessions = sessions_of(request)
    session = sessions.get(request)
    if session is not None:
        check_csrf(session, csrf_token)
    response = redirect("/sign-in")
    sessions.end(request, response)
    return response
