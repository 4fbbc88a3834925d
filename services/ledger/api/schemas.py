"""The public JSON Schemas, served where their `$id`s say they live (issue 13.2).

`https://loyalty-ledger.dev/schemas/pos/event.v1.json` is `GET /schemas/pos/event.v1.json`
on any running service, so a client or a validator can fetch what the OpenAPI document
`$ref`s. The files are the repository's `schemas/` (the contract's own copy), read-only.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from fastapi.responses import Response

from services.http.problems import MEDIA_TYPE as PROBLEM_MEDIA_TYPE
from services.http.problems import problem
from services.ledger.adapters.contract import schema_dir

MEDIA_TYPE = "application/schema+json"

router = APIRouter(prefix="/schemas", tags=["schemas"])


@cache
def schema_bytes(family: str, name: str) -> bytes | None:
    """The file's bytes, if `family/name` is one of the published schemas."""
    folder = schema_dir() / family
    published = {path.name: path for path in folder.glob("*.json")}
    path = published.get(name)
    return path.read_bytes() if path is not None else None


@router.get(
    "/{family}/{name}",
    response_class=Response,
    responses={
        200: {
            "description": "The JSON Schema (draft 2020-12)",
            "content": {MEDIA_TYPE: {"schema": {"type": "object"}}},
        },
        404: {
            "description": "No such schema",
            "content": {PROBLEM_MEDIA_TYPE: {}},
        },
    },
)
async def get_schema(
    family: Literal["pos", "projections"],
    name: Annotated[str, Path(pattern=r"^[A-Za-z_]+\.v[0-9]+\.json$", max_length=64)],
) -> Response:
    """A published JSON Schema, at the path its `$id` names."""
    found = schema_bytes(family, name)
    if found is None:
        return problem(404, "not-found", "Not found", f"no schema {family}/{name} is published")
    return Response(found, media_type=MEDIA_TYPE)
