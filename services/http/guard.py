"""What every route checks before it reads a byte of the body (issue 15.9).

FastAPI reads and parses a body before it solves the dependencies, so a key checked in a
dependency alone came after a 105 MB upload or a parse error. `GuardedRoute` runs first:
1. the API key (401, 403): the role the route's `require(...)` dependency names;
2. for a body: its size (413, from Content-Length and again while reading) and its
   media type (415: `application/json` only, `charset=utf-8` if any; an empty optional
   body needs none);
3. duplicate keys anywhere in a JSON body (422 `duplicate-key`): JSON parsers keep the
   last, so two `customer_id`s would mean whatever the parser chose.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from services.http.auth import authorise
from services.http.problems import problem

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
JSON_MEDIA_TYPE = "application/json"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

Endpoint = Callable[..., Any]


def max_body(limit: int) -> Callable[[Endpoint], Endpoint]:
    """Decorate an endpoint (under its `@router.post`) to take bodies up to `limit` bytes."""

    def mark(endpoint: Endpoint) -> Endpoint:
        endpoint.max_body_bytes = limit  # type: ignore[attr-defined]
        return endpoint

    return mark


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def duplicate_key(raw: bytes) -> str | None:
    """The first key that appears twice in one object of `raw`, if it is JSON with one.
    Malformed JSON answers None: the route's own parser says what is wrong with it."""
    try:
        json.loads(raw, object_pairs_hook=_unique_pairs)
    except _DuplicateKey as found:
        return found.key
    except (ValueError, RecursionError):
        return None
    return None


def _roles(dependant: Dependant) -> frozenset[str] | None:
    for dependency in dependant.dependencies:
        roles = getattr(dependency.call, "roles", None)
        if roles is not None:
            return frozenset(roles)
        nested = _roles(dependency)
        if nested is not None:
            return nested
    return None


def _media_type_problem(header: str | None) -> Response | None:
    media, _, params = (header or "").partition(";")
    charset = next(
        (
            value.strip().strip('"').lower()
            for name, _, value in (p.partition("=") for p in params.split(";"))
            if name.strip().lower() == "charset"
        ),
        None,
    )
    if media.strip().lower() == JSON_MEDIA_TYPE and charset in (None, "utf-8"):
        return None
    return problem(
        415,
        "unsupported-media-type",
        "The body must be application/json",
        f"send 'Content-Type: {JSON_MEDIA_TYPE}' (UTF-8); got {header or 'no Content-Type'}",
    )


def _too_large(limit: int) -> Response:
    return problem(
        413, "payload-too-large", "The request body is too large", f"at most {limit} bytes"
    )


class GuardedRoute(APIRoute):
    def __init__(self, path: str, endpoint: Endpoint, **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.required_roles = _roles(self.dependant)
        self.max_body_bytes: int = getattr(endpoint, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            if self.required_roles is not None:
                authorise(request, self.required_roles)
            if request.method in _BODY_METHODS:
                refused = await self._read_body(request)
                if refused is not None:
                    return refused
            return await handler(request)

        return guarded

    async def _read_body(self, request: Request) -> Response | None:
        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _too_large(limit)
        if declared == "0" and "transfer-encoding" not in request.headers:
            request._body = b""
            return None
        chunks: list[bytes] = []
        size = 0
        media_checked = False
        async for chunk in request.stream():
            if not chunk:
                continue
            if not media_checked:
                refused = _media_type_problem(request.headers.get("content-type"))
                if refused is not None:
                    return refused
                media_checked = True
            size += len(chunk)
            if size > limit:
                return _too_large(limit)
            chunks.append(chunk)
        body = b"".join(chunks)
        request._body = body
        key = duplicate_key(body) if body else None
        if key is not None:
            return problem(
                422,
                "duplicate-key",
                "A JSON object in the body has the same key twice",
                f"the key {key!r} appears twice in one object; send each key once",
                errors=[{"field": key, "message": "appears twice in one object"}],
            )
        return None
