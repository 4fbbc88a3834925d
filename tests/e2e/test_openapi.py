"""The OpenAPI document says what the service does (issue 13.2): it passes a real
validator, declares the key and every refusal as a problem document, names operations
readably, and `$ref`s the POS contract at a path the service serves."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import OpenAPIV31SpecValidator

from services.api import create_app
from services.bootstrap import build
from services.http.auth import ApiKeys
from services.ledger.adapters.contract import schema_dir
from services.settings import Settings
from tests.e2e.conftest import ANSWERS

KEYS = {"pos": "pos-key-openapi-00000", "service": "service-key-openapi-0"}
OPEN = {"healthz", "readyz", "get_schema"}  # the operations that take no key
PROBLEM = "application/problem+json"


@pytest.fixture
def client(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    container = build(
        Settings(store=sqlite_url, var_dir=tmp_path / "var"),
        api_keys=ApiKeys.parse(",".join(f"{r}:{k}" for r, k in KEYS.items())),
        with_projections=False,
    )
    try:
        with TestClient(create_app(container)) as client:
            yield client
    finally:
        container.close()


def document(client: TestClient) -> dict[str, Any]:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    return answer.json()  # type: ignore[no-any-return]


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_the_document_has_no_error_for_openapi_spec_validator(client: TestClient) -> None:
    errors = list(OpenAPIV31SpecValidator(document(client)).iter_errors())
    assert errors == []


def test_every_error_is_declared_as_the_one_problem_model(client: TestClient) -> None:
    doc = document(client)
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert "errors" in problem["properties"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, method, operation in operations(doc):
        for status, answer in operation["responses"].items():
            if int(status) >= 400:
                assert answer["content"] == {
                    PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, status)


def test_every_protected_operation_takes_a_bearer_key_and_declares_401_and_403(
    client: TestClient,
) -> None:
    doc = document(client)
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    for path, method, operation in operations(doc):
        if operation["operationId"] in OPEN:
            assert "security" not in operation
            continue
        assert operation["security"] == [{"bearerAuth": []}], (method, path)
        assert {"401", "403"} <= set(operation["responses"]), (method, path)
        assert (
            "401" in operation["responses"]
            and "WWW-Authenticate" in (operation["responses"]["401"]["headers"])
        )
        # and it is so: without a key, 401
        if "{" not in path:
            answer = client.request(method, path)
            assert answer.status_code == 401, (method, path, answer.text)


def test_operation_ids_are_readable_and_unique(client: TestClient) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document(client))]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-z_]*[a-z]", i) for i in ids), ids
    assert {"post_event", "post_batch", "balance", "tick", "verify_chain"} <= set(ids)


def test_the_pos_event_body_is_the_contract_bundled_and_served_where_its_id_says(
    client: TestClient,
) -> None:
    """The document resolves nothing remote (ReDoc and code generators offline): the POS
    contract's files are bundled in as components, the same schemas the service serves
    at /schemas/pos/ under their canonical `$id`s."""
    doc = document(client)
    body = doc["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    ref = body["schema"]["$ref"]
    assert ref == "#/components/schemas/pos.event.v1"
    batch = doc["paths"]["/v1/events:batch"]["post"]["requestBody"]["content"]
    assert batch["application/json"]["schema"]["properties"]["events"]["items"]["$ref"] == ref
    pointers = _refs(doc)
    assert pointers and all(pointer.startswith("#/components/schemas/") for pointer in pointers)
    for pointer in pointers:  # every one resolves inside the document
        node: Any = doc
        for part in pointer.removeprefix("#/").split("/"):
            node = node[part]
    for path in sorted((schema_dir() / "pos").glob("*.json")):
        served = client.get(f"/schemas/pos/{path.name}")
        assert served.status_code == 200
        assert served.headers["content-type"].startswith("application/schema+json")
        assert served.content == path.read_bytes()
        original = json.loads(served.content)
        assert original["$id"] == f"https://loyalty-ledger.dev/schemas/pos/{path.name}"
        bundled = doc["components"]["schemas"]["pos." + path.name.removesuffix(".json")]
        assert "$id" not in bundled
        assert bundled.get("properties", {}).keys() == original.get("properties", {}).keys()
    missing = client.get("/schemas/pos/nothing.v1.json")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(PROBLEM)
    assert client.get("/schemas/pos/..%2Fpos%2Fevent.v1.json").status_code in (404, 422)


def _walk(node: Any) -> Iterator[Any]:
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from _walk(child)


def _refs(doc: dict[str, Any]) -> list[str]:
    return [
        node["$ref"]
        for node in _walk(doc)
        if isinstance(node, dict) and isinstance(node.get("$ref"), str)
    ]


def test_every_answer_the_tests_got_was_declared(client: TestClient) -> None:
    """Runs last (tests/e2e/conftest.py): every (method, path, status, media type) that the
    e2e tests' requests got is declared for that operation in the app's OpenAPI document.
    It sends a few requests of its own, so that it checks something when run alone."""
    client.get("/v1/customers/x/balance")
    client.get("/v1/customers/x/balance", headers={"Authorization": f"Bearer {KEYS['pos']}"})
    client.post("/v1/events", content=b"{", headers={"Authorization": f"Bearer {KEYS['pos']}"})
    client.get("/healthz")
    undeclared = sorted(
        {
            (a.method, a.template, a.status, a.media_type)
            for a in ANSWERS
            if str(a.status) not in a.declared_statuses
            or (a.media_type and a.media_type not in a.declared_media_types)
        }
    )
    assert len(ANSWERS) >= 4
    assert undeclared == []
