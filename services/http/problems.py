"""RFC 9457 problem documents: every refusal the API gives, in one shape."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.http.responses import OrjsonResponse
from services.ledger.domain.errors import PROBLEM_BASE

RETRY_AFTER_SECONDS = 1

MEDIA_TYPE = "application/problem+json"


class FieldProblem(BaseModel):
    field: str = Field(description="the dotted path of the field ('' for the whole body)")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document: every refusal the API gives. Some carry more members
    (a 503 `projection-behind` says `position` and `min_position`)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="a URL naming the kind of problem")
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = Field(
        default=None, description="one entry per field at fault, when there are fields to name"
    )


_HTTP_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "A valid API key is required"),
    403: ("forbidden", "This API key's role may not do this"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "The request body is too large"),
    415: ("unsupported-media-type", "The body must be application/json"),
    503: ("not-ready", "Not ready"),
}


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> OrjsonResponse:
    return OrjsonResponse(
        problem_document(status, slug, title, detail, errors=errors, **extra),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def invalid_request(field: str, message: str) -> OrjsonResponse:
    """422 `invalid-request` naming one field, as the request validation answers."""
    return problem(
        422,
        "invalid-request",
        "The request's parameters are not valid",
        f"{field}: {message}",
        errors=[{"field": field, "message": message}],
    )


def problem_document(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status}
    body["detail"] = detail
    if errors:
        body["errors"] = errors
    body.update(extra)
    return body


def respond(document: dict[str, Any], headers: dict[str, str] | None = None) -> OrjsonResponse:
    return OrjsonResponse(
        document, status_code=document["status"], media_type=MEDIA_TYPE, headers=headers
    )


def install(app: FastAPI) -> None:
    """Every refusal FastAPI and Starlette raise (validation, 401, 404, ...) as a problem
    document; the write side adds its own (`services/ledger/api/refusals.py`)."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> OrjsonResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in e["loc"] if p not in ("query", "body", "path")),
                "message": e["msg"],
            }
            for e in error.errors()
        ]
        return problem(
            422,
            "invalid-request",
            "The request's parameters are not valid",
            "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: HTTPException) -> OrjsonResponse:
        slug, title = _HTTP_SLUGS.get(error.status_code, ("http-error", "HTTP error"))
        return problem(
            error.status_code,
            slug,
            title,
            str(error.detail),
            headers=getattr(error, "headers", None),
        )

    @app.exception_handler(IntegrityError)
    async def _contended(_: Request, __: IntegrityError) -> OrjsonResponse:
        # every retry of the unit of work lost a race with another writer: nothing of this
        # request is stored; the same request, sent again, is judged afresh
        return problem(
            503,
            "write-contention",
            "Other writers kept winning the race for the same records",
            "nothing of this request was stored; send it again",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    @app.exception_handler(OperationalError)
    async def _store_down(_: Request, error: OperationalError) -> OrjsonResponse:
        # InterfaceError is an OperationalError's sibling: both say the store did not answer
        return problem(
            503,
            "store-unavailable",
            "The event store does not answer",
            f"nothing of this request was stored; send it again (the store: {error})",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    app.add_exception_handler(InterfaceError, _store_down)  # type: ignore[arg-type]
