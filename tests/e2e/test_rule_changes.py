"""Rule changes that loosen a control need a second admin (issue: reliability, item 4).

One admin key used to raise `adjustment_approval_limit` to 10,000,000 on its own, and the
next adjustment of 9,000,000 points was applied at once. Now such a change waits for a
second person, with the same rule as goodwill and adjustments: another name and another
key. A change that loosens nothing is applied at once, as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api import create_app
from services.bootstrap import build
from services.http.auth import ApiKeys
from services.ledger.domain.errors import PROBLEM_BASE
from services.settings import Settings

KEYS = {
    "pos": "pos-rules-key-0000000",
    "alice": "admin-alice-key-00000",
    "bob": "admin-bob-key-0000000",
}


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


@pytest.fixture
def client(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    keys = f"pos:{KEYS['pos']},admin:{KEYS['alice']},admin:{KEYS['bob']}"
    settings = Settings(store=sqlite_url, var_dir=tmp_path / "var", projections_in_process=True)
    container = build(settings, api_keys=ApiKeys.parse(keys))
    try:
        with TestClient(create_app(container)) as test_client:
            yield test_client
    finally:
        container.close()


def rules(client: TestClient) -> dict[str, Any]:
    answer = client.get("/v1/admin/rules", headers=auth("alice"))
    assert answer.status_code == 200
    return answer.json()  # type: ignore[no-any-return]


def put(client: TestClient, who: str, **changes: Any) -> Any:
    document = {**rules(client)["rules"], **changes}
    return client.put(
        "/v1/admin/rules",
        json={"rules": document, "changed_by": who, "reason": "test"},
        headers=auth(who),
    )


def adjust(client: TestClient, adjustment_id: str, points: int) -> dict[str, Any]:
    answer = client.post(
        "/v1/admin/adjustments",
        json={"customer_id": "anna", "adjustment_id": adjustment_id, "points": points,
              "reason": "test", "requested_by": "alice"},
        headers=auth("alice"),
    )  # fmt: skip
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_raising_the_approval_limit_waits_for_a_second_admin(client: TestClient) -> None:
    purchase = {
        "event_id": "p-1", "type": "purchase", "customer_id": "anna",
        "occurred_at": "2026-03-01T10:00:00+00:00", "schema_version": 1, "receipt_id": "r-1",
        "amount": {"value": "10.00", "currency": "EUR"},
    }  # fmt: skip
    assert client.post("/v1/events", json=purchase, headers=auth("pos")).status_code == 201
    before = rules(client)

    asked = put(client, "alice", adjustment_approval_limit=10_000_000)
    assert asked.status_code == 202, asked.text
    request = asked.json()
    assert request["status"] == "awaiting_approval"
    assert request["loosened"] == ["adjustment_approval_limit"]
    assert rules(client) == before, "nothing changes until a second admin approves"
    # The loophole: a 9,000,000-point adjustment is NOT applied at once.
    assert adjust(client, "big", 9_000_000)["effect"]["status"] == "awaiting_approval"

    waiting = client.get("/v1/admin/rules/requests", headers=auth("bob")).json()["requests"]
    assert list(waiting) == [request["request_id"]]

    path = f"/v1/admin/rules/requests/{request['request_id']}/approve"
    same_key = client.post(path, json={"approved_by": "someone-else"}, headers=auth("alice"))
    assert same_key.status_code == 403
    assert same_key.json()["type"] == PROBLEM_BASE + "maker-checker"
    same_name = client.post(path, json={"approved_by": "alice"}, headers=auth("bob"))
    assert same_name.status_code == 403

    approved = client.post(path, json={"approved_by": "bob"}, headers=auth("bob"))
    assert approved.status_code == 200, approved.text
    assert approved.json()["version"] == before["version"] + 1
    assert rules(client)["rules"]["adjustment_approval_limit"] == 10_000_000
    again = client.post(path, json={"approved_by": "bob"}, headers=auth("bob"))
    assert again.status_code == 409


@pytest.mark.parametrize(
    "changes",
    [
        {"small_money_amount": "250.00"},
        {"small_money_points": 25_000},
        {"trust_tester_grants": 30},
        {"trust_tester_window_days": 9},
        {"goodwill_points_per_unit": 1000},
    ],
)
def test_every_loosened_control_waits(client: TestClient, changes: dict[str, Any]) -> None:
    before = rules(client)
    asked = put(client, "alice", **changes)
    assert asked.status_code == 202, asked.text
    assert asked.json()["loosened"] == list(changes)
    assert rules(client) == before


def test_a_change_that_loosens_nothing_applies_at_once(client: TestClient) -> None:
    before = rules(client)
    tighter = put(client, "alice", earn_rate="2", adjustment_approval_limit=500)
    assert tighter.status_code == 200, tighter.text
    assert tighter.json()["version"] == before["version"] + 1


def test_a_rejected_change_leaves_the_rules_and_cannot_be_approved(client: TestClient) -> None:
    before = rules(client)
    request_id = put(client, "alice", small_money_points=9_999).json()["request_id"]
    base = f"/v1/admin/rules/requests/{request_id}"
    rejected = client.post(f"{base}/reject", json={"approved_by": "bob"}, headers=auth("bob"))
    assert rejected.status_code == 204, rejected.text
    assert rules(client) == before
    late = client.post(f"{base}/approve", json={"approved_by": "bob"}, headers=auth("bob"))
    assert late.status_code == 409
    assert client.get("/v1/admin/rules/requests", headers=auth("bob")).json()["requests"] == {}


def test_a_waiting_request_changes_no_answer_of_the_read_side(client: TestClient) -> None:
    """The request holds rules that are not in force: as-of reads and replays must not
    fold them as if they were."""
    purchase = {
        "event_id": "p-1", "type": "purchase", "customer_id": "anna",
        "occurred_at": "2026-03-01T10:00:00+00:00", "schema_version": 1, "receipt_id": "r-1",
        "amount": {"value": "10.00", "currency": "EUR"},
    }  # fmt: skip
    written = client.post("/v1/events", json=purchase, headers=auth("pos")).json()
    # A request may change more than the control it loosens: here the LTV horizon too.
    assert put(client, "alice", small_money_points=9_999, ltv_lifetime_years=50).status_code == 202
    live = client.get(
        "/v1/customers/anna/ltv", params={"min_position": written["position"]}, headers=auth("bob")
    ).json()
    as_of = client.get(
        "/v1/customers/anna/ltv", params={"as_of": "2026-12-31T00:00:00Z"}, headers=auth("bob")
    ).json()
    live.pop("position"), as_of.pop("position")
    assert as_of == live
