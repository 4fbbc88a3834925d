"""Hostile and out-of-range input over HTTP (issue 15): every one is a problem document
naming what is wrong (4xx), never a 500, and none of it changes the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from services.bootstrap import Container
from services.ledger.adapters.contract import MAX_EVENT_BYTES
from services.ledger.api.events import MAX_BATCH_BYTES
from tests.e2e.test_http_events import (
    ADMIN,
    POS,
    Unchanged,
    assert_problem,
    auth,
    open_app,
    purchase,
)
from tests.e2e.test_read_api import AUDITOR as READ_AUDITOR
from tests.e2e.test_read_api import Api, api  # noqa: F401  (a fixture)

AUDITOR, SERVICE = auth("auditor"), auth("service")
HUGE = 2**63  # one past the largest position a store can hold
HUGER = 2**64 + 5
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def app(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[Container, TestClient]]:
    # Server errors come back as 500s here, so that a test sees them as a client would.
    yield from open_app(sqlite_url, tmp_path, raise_server_exceptions=False)


# ---- 15.5: the sweep's `now` is bounded by the ledger clock ----------------------------------
def test_a_tick_dated_far_ahead_of_the_ledger_clock_is_refused_and_expires_nothing(
    app: tuple[Container, TestClient],
) -> None:
    container, client = app
    assert client.post("/v1/events", json=purchase("p-1"), headers=POS).status_code == 201
    with Unchanged(container):
        answer = client.post("/v1/admin/tick", json={"now": "9999-12-31T23:59:59Z"}, headers=ADMIN)
        assert_problem(answer, 422, "invalid-request", field="now")
        ahead = (datetime.now(UTC) + timedelta(days=2)).isoformat()
        answer = client.post("/v1/admin/tick", json={"now": ahead}, headers=ADMIN)
        body = assert_problem(answer, 422, "invalid-request", field="now")
        assert "ledger clock" in body["detail"]


def test_a_tick_a_little_ahead_of_the_clock_or_in_the_past_is_accepted(
    app: tuple[Container, TestClient],
) -> None:
    _, client = app
    for now in (datetime.now(UTC) + timedelta(minutes=1), datetime(2026, 3, 2, tzinfo=UTC)):
        answer = client.post("/v1/admin/tick", json={"now": now.isoformat()}, headers=ADMIN)
        assert answer.status_code == 200, answer.text


# ---- 15.8: positions and times out of range --------------------------------------------------
@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/v1/audit/events", {"from_position": HUGE}, "from_position"),
        ("/v1/audit/export", {"from_position": HUGE}, "from_position"),
        ("/v1/audit/export", {"to_position": HUGER}, "to_position"),
    ],
)
def test_a_position_beyond_64_bits_is_a_422_naming_the_field(
    app: tuple[Container, TestClient], path: str, query: dict[str, int], field: str
) -> None:
    _, client = app
    assert_problem(client.get(path, params=query, headers=AUDITOR), 422, "invalid-request", field)


def test_an_anchor_beyond_64_bits_is_a_422(app: tuple[Container, TestClient]) -> None:
    _, client = app
    anchor = {"position": HUGE, "link": "0" * 64}
    answer = client.post("/v1/audit/verify", json={"anchor": anchor}, headers=AUDITOR)
    assert_problem(answer, 422, "invalid-request", "anchor.position")


@pytest.mark.parametrize(
    "when",
    [
        "0001-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59-23:59",
        "9999-12-31T00:00:00Z",
        "1900-01-01T00:00:00Z",
    ],
)
def test_a_tick_at_a_time_the_ledger_cannot_hold_is_a_422(
    app: tuple[Container, TestClient], when: str
) -> None:
    container, client = app
    with Unchanged(container):
        answer = client.post("/v1/admin/tick", json={"now": when}, headers=ADMIN)
        assert_problem(answer, 422, "invalid-request", "now")


# The read side, on the scripted history of test_read_api.py (its `api` fixture).


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/v1/customers/anna/balance", {"as_of_position": HUGE}, "as_of_position"),
        ("/v1/customers/anna/balance", {"min_position": HUGER}, "min_position"),
        ("/v1/customers/anna/timeline", {"after_position": HUGE}, "after_position"),
        ("/v1/customers/anna/tier", {"as_of": "0001-01-01T00:00:00+23:59"}, "as_of"),
        ("/v1/customers/anna/ltv", {"as_of": "9999-12-31T23:59:59-23:59"}, "as_of"),
        ("/v1/programs/default/liability", {"as_of": "9999-12-31T23:59:59-23:59"}, "as_of"),
        ("/v1/programs/default/nps", {"from": "0001-01-01T00:00:00+23:59"}, "from"),
        ("/v1/programs/default/nps", {"to": "9999-12-31T23:59:59-23:59"}, "to"),
    ],
)
def test_read_parameters_out_of_range_are_422_naming_the_field(
    api: Api,  # noqa: F811
    path: str,
    query: dict[str, object],
    field: str,
) -> None:
    api.client.app.state.container.projections.queries.read_wait_seconds = 0.1  # type: ignore[attr-defined]
    answer = api.client.get(path, params=query, headers=READ_AUDITOR)
    assert_problem(answer, 422, "invalid-request", field)


# ---- 15.9: the input contract ----------------------------------------------------------------
JSON_BODY_ROUTES = [
    ("POST", "/v1/events", POS),
    ("POST", "/v1/events:batch", POS),
    ("POST", "/v1/admin/tick", ADMIN),
    ("POST", "/v1/admin/adjustments", ADMIN),
    ("POST", "/v1/admin/goodwill/g-1/approve", ADMIN),
    ("PUT", "/v1/admin/rules", ADMIN),
    ("POST", "/v1/audit/verify", AUDITOR),
]


@pytest.mark.parametrize(("method", "path", "headers"), JSON_BODY_ROUTES)
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/problem+json", None],
)
def test_a_json_body_sent_as_anything_but_application_json_is_415(
    app: tuple[Container, TestClient],
    method: str,
    path: str,
    headers: dict[str, str],
    content_type: str | None,
) -> None:
    container, client = app
    body = orjson.dumps(purchase("p-ct") if "events" in path else {})
    sent = {**headers, **({"Content-Type": content_type} if content_type else {})}
    with Unchanged(container):
        answer = client.request(method, path, content=body, headers=sent)
        assert_problem(answer, 415, "unsupported-media-type")


def test_application_json_with_a_utf8_charset_is_accepted(
    app: tuple[Container, TestClient],
) -> None:
    _, client = app
    headers = {**POS, "Content-Type": "application/json; charset=utf-8"}
    answer = client.post("/v1/events", content=orjson.dumps(purchase("p-cs")), headers=headers)
    assert answer.status_code == 201, answer.text


def _with_duplicate_customer(doc: dict[str, object]) -> bytes:
    text = orjson.dumps(doc).decode()
    return text.replace('"customer_id":', '"customer_id":"mallory","customer_id":', 1).encode()


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events:batch"])
def test_duplicate_json_keys_are_refused_naming_the_key(
    app: tuple[Container, TestClient], path: str
) -> None:
    container, client = app
    doc = purchase("p-dup")
    raw = _with_duplicate_customer(doc if path == "/v1/events" else {"events": [doc]})
    with Unchanged(container):
        answer = client.post(path, content=raw, headers={**POS, **JSON})
        assert_problem(answer, 422, "duplicate-key", field="customer_id")


def test_duplicate_keys_in_an_admin_body_are_refused(app: tuple[Container, TestClient]) -> None:
    _, client = app
    raw = b'{"now": "2026-03-02T00:00:00Z", "now": "2026-03-03T00:00:00Z"}'
    answer = client.post("/v1/admin/tick", content=raw, headers={**ADMIN, **JSON})
    assert_problem(answer, 422, "duplicate-key", field="now")


@pytest.mark.parametrize("event_id", [".", ".."])
def test_an_id_that_a_path_cannot_carry_is_refused(
    app: tuple[Container, TestClient], event_id: str
) -> None:
    container, client = app
    with Unchanged(container):
        for field, doc in (
            ("event_id", purchase(event_id)),
            ("customer_id", {**purchase("p-dots"), "customer_id": event_id}),
            ("store_id", {**purchase("p-dots"), "store_id": event_id}),
        ):
            answer = client.post("/v1/events", json=doc, headers=POS)
            assert_problem(answer, 422, "invalid-event", field=field)
        adjustment = {
            "customer_id": event_id,
            "adjustment_id": "a-1",
            "points": 5,
            "reason": "r",
            "requested_by": "x",
        }
        answer = client.post("/v1/admin/adjustments", json=adjustment, headers=ADMIN)
        assert_problem(answer, 422, "invalid-request", field="customer_id")


def test_schema_version_one_point_zero_is_refused(app: tuple[Container, TestClient]) -> None:
    container, client = app
    raw = orjson.dumps(purchase("p-sv")).replace(b'"schema_version":1', b'"schema_version":1.0')
    with Unchanged(container):
        answer = client.post("/v1/events", content=raw, headers={**POS, **JSON})
        assert_problem(answer, 422, "invalid-event", field="schema_version")
        batch = b'{"events": [' + raw + b"]}"
        answer = client.post("/v1/events:batch", content=batch, headers={**POS, **JSON})
        assert answer.status_code == 200, answer.text
        [result] = answer.json()["results"]
        assert result["status"] == "rejected"
        assert "schema_version" in [e["field"] for e in result["problem"]["errors"]]


def test_unknown_top_level_batch_fields_are_refused(app: tuple[Container, TestClient]) -> None:
    container, client = app
    with Unchanged(container):
        body = {"events": [purchase("p-bf")], "atomic": True}
        answer = client.post("/v1/events:batch", json=body, headers=POS)
        assert_problem(answer, 422, "invalid-batch", field="atomic")


@pytest.mark.parametrize(("method", "path", "headers"), JSON_BODY_ROUTES)
def test_the_key_is_checked_before_the_body_is_read(
    app: tuple[Container, TestClient], method: str, path: str, headers: dict[str, str]
) -> None:
    _, client = app
    for garbage in (b"{not json", b"[" * 100_000):
        answer = client.request(method, path, content=garbage, headers=JSON)
        assert_problem(answer, 401, "unauthenticated")
    wrong_role = SERVICE if headers is not SERVICE else POS
    answer = client.request(method, path, content=b"{not json", headers={**wrong_role, **JSON})
    assert_problem(answer, 403, "forbidden")


@pytest.mark.parametrize(("method", "path", "headers"), JSON_BODY_ROUTES)
def test_a_body_larger_than_the_route_takes_is_413_before_it_is_read(
    app: tuple[Container, TestClient], method: str, path: str, headers: dict[str, str]
) -> None:
    container, client = app
    limit = (
        MAX_BATCH_BYTES
        if path.endswith(":batch")
        else MAX_EVENT_BYTES
        if "events" in path
        else 1024 * 1024
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        sent = 0
        while sent <= limit:
            sent += 64 * 1024
            yield b" " * (64 * 1024)

    with Unchanged(container):
        answer = client.request(method, path, content=chunks(), headers={**headers, **JSON})
        assert_problem(answer, 413, "payload-too-large")
        declared = {**headers, **JSON, "Content-Length": str(limit + 1)}
        answer = client.request(method, path, content=b"{}", headers=declared)
        assert_problem(answer, 413, "payload-too-large")
