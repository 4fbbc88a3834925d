"""The auditors' history (SPEC §5, §6 `GET /v1/audit/events`): store order, both
timestamps, the rule version behind each credit, hash links, stable paging."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api import create_app
from services.audit.wiring import attach
from services.bootstrap import Container
from tests.integration.audit_support import auth, make_container, record_history

CREDITS = {
    "PurchaseRecorded",
    "RefundRecorded",
    "ReferralRewarded",
    "ReviewRecorded",
    "GoodwillGranted",
    "PointsAdjusted",
}


@pytest.fixture
def ledger(store_url: str, tmp_path: Path) -> Iterator[tuple[Container, TestClient]]:
    container = make_container(store_url, tmp_path)
    record_history(container, 80, expire=True)
    attach(container).follower.catch_up()
    with TestClient(create_app(container)) as client:
        yield container, client
    container.close()


def walk(client: TestClient, **query: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 7, **query}
    while True:
        answer = client.get("/v1/audit/events", params=params, headers=auth("auditor"))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items += body["items"]
        if body["next"] is None:
            return items
        assert body["next"] == body["items"][-1]["position"] + 1
        params["from_position"] = body["next"]


def test_the_global_history_pages_through_every_event_in_store_order(
    ledger: tuple[Container, TestClient],
) -> None:
    container, client = ledger
    items = walk(client)
    positions = [item["position"] for item in items]
    assert positions == sorted(set(positions))
    assert len(items) == container.ledger.position()
    first = items[0]
    assert (first["aggregate"], first["type"], first["customer_id"]) == (
        "program",
        "Started",
        None,
    )
    for item in items:
        assert item["recorded_at"] and item["link"] and len(item["link"]) == 64
        if item["aggregate"] == "account":
            assert item["customer_id"]
        if item["type"] in CREDITS:
            assert item["rule_version"] == 1
        else:
            assert item["rule_version"] is None
    kinds = {item["type"] for item in items}
    assert {"PurchaseRecorded", "PointsMatured", "PointsExpired", "Accepted"} <= kinds


def test_each_event_keeps_both_timestamps(ledger: tuple[Container, TestClient]) -> None:
    _, client = ledger
    items = walk(client)
    purchase = next(i for i in items if i["type"] == "PurchaseRecorded")
    intake = next(
        i
        for i in items
        if i["type"] == "Accepted" and i["fields"]["event_id"] == purchase["fields"]["event_id"]
    )
    assert purchase["occurred_at"] == purchase["fields"]["occurred_at"]
    assert intake["occurred_at"] == intake["fields"]["document"]["occurred_at"]
    assert intake["customer_id"] == purchase["customer_id"]
    assert intake["position"] > purchase["position"]
    assert purchase["recorded_at"] != purchase["occurred_at"]


def test_a_customer_history_is_their_account_events_and_intake_records(
    ledger: tuple[Container, TestClient],
) -> None:
    _, client = ledger
    everything = walk(client, limit=1000)
    referral = next(i for i in everything if i["type"] == "ReferralMade")
    referrer = referral["customer_id"]
    mine = walk(client, customer_id=referrer, limit=3)
    expected = [i for i in everything if i["customer_id"] == referrer]
    assert [i["position"] for i in mine] == [i["position"] for i in expected]
    assert mine == expected
    assert {i["aggregate"] for i in mine} == {"account", "intake"}
    # The referrer's account names the referee's referral event; that intake is not theirs.
    assert referral["fields"]["event_id"] not in {
        i["fields"]["event_id"] for i in mine if i["aggregate"] == "intake"
    }


def test_paging_is_stable_while_others_write(ledger: tuple[Container, TestClient]) -> None:
    container, client = ledger
    first = client.get("/v1/audit/events", params={"limit": 50}, headers=auth("auditor")).json()
    record_history(container, 20, seed=11)
    rest = walk(client, from_position=first["next"], limit=50)
    positions = [i["position"] for i in first["items"] + rest]
    assert positions == list(range(1, container.ledger.position() + 1))


def test_the_history_needs_an_auditor_key(ledger: tuple[Container, TestClient]) -> None:
    _, client = ledger
    assert client.get("/v1/audit/events").status_code == 401
    assert client.get("/v1/audit/events", headers=auth("service")).status_code == 403
    assert client.get("/v1/audit/events", headers=auth("admin")).status_code == 200


@pytest.mark.parametrize("limit", [0, 1001])
def test_a_limit_out_of_range_is_a_problem(
    ledger: tuple[Container, TestClient], limit: int
) -> None:
    _, client = ledger
    answer = client.get("/v1/audit/events", params={"limit": limit}, headers=auth("auditor"))
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_an_unknown_customer_is_404(ledger: tuple[Container, TestClient]) -> None:
    _, client = ledger
    answer = client.get(
        "/v1/audit/events", params={"customer_id": "nobody"}, headers=auth("auditor")
    )
    assert answer.status_code == 404
    assert answer.json()["type"].endswith("/unknown-customer")


def test_verify_over_http(ledger: tuple[Container, TestClient]) -> None:
    container, client = ledger
    answer = client.post("/v1/audit/verify", headers=auth("auditor"))
    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] is True and body["first_broken_position"] is None
    assert body["checked"] == container.ledger.position()
    head = body["head"]
    anchored = client.post(
        "/v1/audit/verify", json={"anchor": head}, headers=auth("auditor")
    ).json()
    assert anchored["ok"] is True
    wrong = client.post(
        "/v1/audit/verify",
        json={"anchor": {"position": head["position"], "link": "0" * 64}},
        headers=auth("auditor"),
    ).json()
    assert (wrong["ok"], wrong["first_broken_position"]) == (False, head["position"])
    assert client.post("/v1/audit/verify", headers=auth("service")).status_code == 403
