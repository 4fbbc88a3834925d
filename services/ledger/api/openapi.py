"""The OpenAPI document says what the service does (issue 13.2).

FastAPI's own document knows the routes' models but not the refusals: it declares a 422
`HTTPValidationError` while the service answers RFC 9457 problem documents, and no key.
`install(app)` rewrites it once, from the routes themselves:
- a bearer security scheme, required by every operation whose route asks for a role
  (`require(...)`, read by `GuardedRoute`), with 401 and 403 declared there;
- every error response as `application/problem+json` with the one `Problem` model: 401/403
  for a key, 422 for parameters or a body, 400/413/415 for a body, and what each route
  declares itself (404, 409, 503);
- readable `operationId`s: the route functions' names (`balance`, `post_event`);
- self-contained: the POS contract's JSON Schemas (`schemas/pos/`, also served at
  `/schemas/pos/<file>`) are bundled in as `#/components/schemas/pos.<file>`, so Swagger UI,
  ReDoc, schemathesis and code generators resolve nothing remote (each file's `$id` is its
  canonical `https://loyalty-ledger.dev/...` name, which no one can fetch offline).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from services.http.guard import GuardedRoute
from services.http.problems import MEDIA_TYPE, FieldProblem, Problem
from services.ledger.adapters.contract import schema_dir

SCHEME = "bearerAuth"
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_DESCRIPTIONS = {
    400: "The body is not JSON",
    401: "No API key, or not a valid one",
    403: "This key's role may not do this (or the second person is the first)",
    404: "Not found",
    409: "In conflict with what is recorded",
    413: "The body is too large",
    415: "The body is not application/json",
    422: "The request is not valid, or a rule refuses it",
    503: "Not ready; retry after Retry-After seconds",
}
_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    503: {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
}
# Admin commands are refused by the ledger for an unknown customer or event (404) and for
# a decision already taken or an id already used (409).
_ADMIN_REFUSALS = (404, 409)


def install(app: FastAPI) -> None:
    """Serve the refined document at /openapi.json (and to Swagger UI at /docs)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None or not app.openapi_schema.get("x-refined"):
            app.openapi_schema = None
            document = plain()
            refine(document, app)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def refine(document: dict[str, Any], app: FastAPI) -> None:
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    _bundle_pos_schemas(document)
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    problem.pop("$defs", None)
    schemas["Problem"] = problem
    schemas["FieldProblem"] = FieldProblem.model_json_schema()
    components["securitySchemes"] = {
        SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key: `Authorization: Bearer <key>`. Roles: pos, service, "
            "auditor, admin (admin may do everything).",
        }
    }
    routes = _api_routes(app)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            route = routes.get((path, method))
            if route is not None:
                _refine_operation(path, operation, route)
    document["x-refined"] = True


def _api_routes(app: FastAPI) -> dict[tuple[str, str], APIRoute]:
    """Every API route by (path as the document writes it, method). FastAPI 0.16x keeps
    included routers as such; `iter_route_contexts` walks them with their prefixes."""
    found: dict[tuple[str, str], APIRoute] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = context.path_format
        if isinstance(route, APIRoute) and path is not None:
            for method in context.methods or route.methods or ():
                found[(path, method.lower())] = route
    return found


def _refine_operation(path: str, operation: dict[str, Any], route: APIRoute) -> None:
    operation["operationId"] = route.name
    roles = route.required_roles if isinstance(route, GuardedRoute) else None
    responses: dict[str, Any] = operation.setdefault("responses", {})
    codes = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
    if roles:
        operation["security"] = [{SCHEME: []}]
        shown = " or ".join(sorted(roles))
        operation["description"] = (operation.get("description") or "").rstrip() + (
            f"\n\nNeeds a key with the role {shown}."
        )
        codes |= {401, 403, 503}  # 503: the store did not answer, or writers kept racing
    if operation.get("parameters") or operation.get("requestBody"):
        codes.add(422)
    if operation.get("requestBody"):
        codes |= {400, 413, 415}
    if path.startswith("/v1/admin/") and route.name not in ("tick", "get_rules", "put_rules"):
        codes |= set(_ADMIN_REFUSALS)
    if path == "/readyz":
        codes.add(503)
    for code in sorted(codes):
        declared = responses.get(str(code), {})
        answer: dict[str, Any] = {
            "description": declared.get("description") or _DESCRIPTIONS.get(code, "Refused"),
            "content": {MEDIA_TYPE: {"schema": _PROBLEM_REF}},
        }
        if code in _HEADERS:
            answer["headers"] = _HEADERS[code]
        responses[str(code)] = answer
    _only_declared_success_media(responses)


def _only_declared_success_media(responses: dict[str, Any]) -> None:
    """FastAPI adds `application/json` to a 2xx whose route answers another media type
    (JSON Lines, JSON Schema): keep only the declared one there."""
    for code, answer in responses.items():
        content = answer.get("content") or {}
        if code.startswith("2") and len(content) > 1 and "application/json" in content:
            content.pop("application/json")


# ---- the POS contract, bundled --------------------------------------------------------

SERVED = "/schemas/pos/"


def pos_component(name: str) -> str:
    """`purchase.v1.json` -> `pos.purchase.v1`, its name under components/schemas."""
    return "pos." + name.removesuffix(".json")


def _pointer(ref: str, here: str) -> str:
    if ref.startswith("#/components/"):
        return ref
    target, _, fragment = ref.partition("#")
    name = target.removeprefix(SERVED) or here
    return f"#/components/schemas/{pos_component(name)}" + fragment


def _rewrite(node: Any, here: str) -> Any:
    """A schema file's tree with its references made document-local; its `$id` and
    `$schema` dropped (an `$id` would make `#/components/...` resolve against it)."""
    if isinstance(node, dict):
        return {
            key: _pointer(value, here)
            if key == "$ref" and isinstance(value, str)
            else _rewrite(value, here)
            for key, value in node.items()
            if key not in ("$id", "$schema")
        }
    if isinstance(node, list):
        return [_rewrite(item, here) for item in node]
    return node


def _bundle_pos_schemas(document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for path in sorted((schema_dir() / "pos").glob("*.json")):
        schemas[pos_component(path.name)] = _rewrite(json.loads(path.read_text()), path.name)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(SERVED):
                return {**node, "$ref": _pointer(ref, "")}
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    document["paths"] = walk(document.get("paths", {}))
