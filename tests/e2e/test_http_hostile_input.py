"""Hostile and out-of-range input over HTTP (issue 15): every one is a problem document
naming what is wrong (4xx), never a 500, and none of it changes the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.bootstrap import Container
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
