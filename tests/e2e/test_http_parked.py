"""Out of order over HTTP (SPEC §8): a refund before its purchase answers 202 `parked`,
is listed by `GET /v1/admin/parked` (admin and auditor, paginated), and is applied when
the purchase arrives; a repeat answers `parked` while it waits, then `duplicate`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api import create_app
from services.bootstrap import build
from services.http.auth import ApiKeys
from services.ledger.domain.clock import iso, utcnow
from services.settings import Settings

KEYS = {
    "pos": "pos-parked-key-000000",
    "admin": "admin-parked-key-0000",
    "auditor": "audit-parked-key-0000",
    "service": "serv-parked-key-00000",
}
AS = {role: {"Authorization": f"Bearer {key}"} for role, key in KEYS.items()}
WHEN = utcnow().replace(microsecond=0) - timedelta(days=1)


def event(kind: str, event_id: str, hours: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": kind,
        "customer_id": "lina",
        "occurred_at": iso(WHEN + timedelta(hours=hours)),
        "store_id": "riga-1",
        "schema_version": 1,
        **fields,
    }


def purchase(event_id: str) -> dict[str, Any]:
    return event(
        "purchase",
        event_id,
        0,
        receipt_id=f"r-{event_id}",
        amount={"value": "80.00", "currency": "EUR"},
    )


def refund(event_id: str, original: str) -> dict[str, Any]:
    return event(
        "refund",
        event_id,
        2,
        original_event_id=original,
        amount={"value": "20.00", "currency": "EUR"},
    )


@pytest.fixture
def client(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(store=sqlite_url, var_dir=tmp_path / "var", projections_in_process=True)
    container = build(
        settings, api_keys=ApiKeys.parse(",".join(f"{r}:{k}" for r, k in KEYS.items()))
    )
    try:
        with TestClient(create_app(container)) as test_client:
            yield test_client
    finally:
        container.close()


def test_a_refund_before_its_purchase_is_parked_listed_and_applied(client: TestClient) -> None:
    answer = client.post("/v1/events", json=refund("ref-1", "buy-1"), headers=AS["pos"])
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "parked" and body["effect"] == {"original_event_id": "buy-1"}
    again = client.post("/v1/events", json=refund("ref-1", "buy-1"), headers=AS["pos"])
    assert again.status_code == 202 and again.json()["status"] == "parked"

    for role in ("admin", "auditor"):
        listed = client.get("/v1/admin/parked", headers=AS[role])
        assert listed.status_code == 200, listed.text
        assert listed.json()["position"] >= body["position"]
        (item,) = listed.json()["items"]
        assert item["event_id"] == "ref-1" and item["original_event_id"] == "buy-1"
        assert item["type"] == "refund" and item["customer_id"] == "lina"
    assert client.get("/v1/admin/parked", headers=AS["service"]).status_code == 403
    assert client.get("/v1/admin/parked").status_code == 401

    bought = client.post("/v1/events", json=purchase("buy-1"), headers=AS["pos"])
    assert bought.status_code == 201, bought.text
    assert bought.json()["effect"]["applied_follow_ups"] == ["ref-1"]
    assert client.get("/v1/admin/parked", headers=AS["admin"]).json()["items"] == []
    repeat = client.post("/v1/events", json=refund("ref-1", "buy-1"), headers=AS["pos"])
    assert repeat.status_code == 200 and repeat.json()["status"] == "duplicate"
    assert repeat.json()["effect"]["points_reversed"] == 20


def test_the_parked_list_is_paginated(client: TestClient) -> None:
    batch = [refund(f"ref-{n}", f"buy-{n}") for n in range(5)]
    answer = client.post("/v1/events:batch", json={"events": batch}, headers=AS["pos"])
    assert [r["status"] for r in answer.json()["results"]] == ["parked"] * 5
    seen: list[str] = []
    after = 0
    while True:
        page = client.get(
            "/v1/admin/parked", params={"limit": 2, "after_position": after}, headers=AS["admin"]
        ).json()
        seen += [i["event_id"] for i in page["items"]]
        if page["next"] is None:
            break
        after = page["next"]
    assert seen == [f"ref-{n}" for n in range(5)]
    assert (
        client.get("/v1/admin/parked", params={"limit": 0}, headers=AS["admin"]).status_code == 422
    )


def test_the_sweep_refuses_what_waited_too_long_and_a_repeat_gets_that(
    client: TestClient,
) -> None:
    """The sweep of `serve` (the container's, with the read side's candidates) finds it:
    POST /v1/admin/tick takes no `now` ahead of the clock, so the sweep is called."""
    answer = client.post("/v1/events", json=refund("ref-x", "buy-x"), headers=AS["pos"])
    assert answer.status_code == 202
    container = client.app.state.container  # type: ignore[attr-defined]
    swept = container.tick(utcnow() + timedelta(days=10))
    assert {"customer_id": "lina", "action": "parked_expired", "event_id": "ref-x"} in (
        swept.recorded
    )
    assert client.get("/v1/admin/parked", headers=AS["admin"]).json()["items"] == []
    repeat = client.post("/v1/events", json=refund("ref-x", "buy-x"), headers=AS["pos"])
    assert repeat.status_code == 422
    assert repeat.json()["type"].endswith("/unknown-original-event")
