"""Campaigns over HTTP (SPEC §9): a double-points weekend from creation to the why of a
credit, the second-person rule, conditions refused with their position, and a dry run
that stores nothing."""

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
from services.ledger.domain.errors import PROBLEM_BASE
from services.settings import Settings

KEYS = {
    "pos": "pos-campaign-key-00000",
    "service": "service-campaign-key-0",
    "alice": "admin-alice-campaign-00",
    "bob": "admin-bob-campaign-000",
}
NOW = utcnow().replace(microsecond=0)
# The last full Saturday before now, and the Monday before it.
SATURDAY = (NOW - timedelta(days=(NOW.weekday() - 5) % 7 or 7)).replace(hour=12, minute=0, second=0)
MONDAY = SATURDAY - timedelta(days=5)


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


@pytest.fixture
def client(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    keys = ",".join(
        [f"pos:{KEYS['pos']}", f"service:{KEYS['service']}"]
        + [f"admin:{KEYS[n]}" for n in ("alice", "bob")]
    )
    settings = Settings(store=sqlite_url, var_dir=tmp_path / "var", projections_in_process=True)
    container = build(settings, api_keys=ApiKeys.parse(keys))
    try:
        with TestClient(create_app(container)) as test_client:
            yield test_client
    finally:
        container.close()


def campaign(campaign_id: str = "double-weekend", **changes: Any) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "name": "Double points weekend",
        "condition": 'weekday in ["saturday", "sunday"]',
        "effect": {"kind": "multiplier", "factor": "2"},
        "starts_at": iso(MONDAY - timedelta(days=30)),
        "ends_at": iso(NOW + timedelta(days=30)),
        **changes,
    }


def purchase(n: int, when: Any, value: str = "40.00") -> dict[str, Any]:
    return {
        "event_id": f"p-{n}",
        "type": "purchase",
        "customer_id": "anna",
        "occurred_at": iso(when),
        "store_id": "s-1",
        "schema_version": 1,
        "receipt_id": f"r-{n}",
        "amount": {"value": value, "currency": "EUR"},
    }


def test_a_double_points_campaign_from_creation_to_the_why(client: TestClient) -> None:
    # In force from its approval (never before it: a late purchase earns what it would
    # have on time), so the purchases here occur after it, on any day of the week.
    today = (
        '"'
        + ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"][
            NOW.weekday()
        ]
        + '"'
    )
    doubled = campaign(condition=f"weekday == {today} and amount >= 10")
    created = client.post(
        "/v1/admin/campaigns", json={**doubled, "created_by": "alice"}, headers=auth("alice")
    )
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "awaiting_approval"
    waiting = client.get("/v1/admin/approvals", headers=auth("bob")).json()["waiting"]
    assert [(w["kind"], w["request_id"]) for w in waiting] == [("campaign", "double-weekend")]
    own = client.post(
        "/v1/admin/campaigns/double-weekend/approve",
        json={"approved_by": "bob"},
        headers=auth("alice"),  # the creator's own key, whatever name it types
    )
    assert own.status_code == 403 and own.json()["type"] == PROBLEM_BASE + "maker-checker"
    approved = client.post(
        "/v1/admin/campaigns/double-weekend/approve",
        json={"approved_by": "bob"},
        headers=auth("bob"),
    )
    assert approved.status_code == 200 and approved.json()["status"] == "active"
    again = client.post(
        "/v1/admin/campaigns/double-weekend/approve",
        json={"approved_by": "bob"},
        headers=auth("bob"),
    )
    assert again.status_code == 409

    weekend = client.post("/v1/events", json=purchase(1, utcnow()), headers=auth("pos"))
    assert weekend.status_code == 201, weekend.text
    effect = weekend.json()["effect"]
    assert effect["points"] == 80 and effect["campaigns"] == [
        {"campaign_id": "double-weekend", "points": 40, "kind": "multiplier"}
    ]
    monday = client.post("/v1/events", json=purchase(2, utcnow(), "5.00"), headers=auth("pos"))
    assert monday.json()["effect"]["campaigns"] == []
    position = monday.json()["position"]

    timeline = client.get(
        "/v1/customers/anna/timeline",
        params={"min_position": position},
        headers=auth("service"),
    ).json()["items"]
    why = [i["effect"] for i in timeline if i["type"] == "CampaignPointsGranted"]
    assert len(why) == 1 and why[0]["campaigns"][0]["campaign_id"] == "double-weekend"
    assert "double-weekend +40" in why[0]["summary"]
    balance = client.get(
        "/v1/customers/anna/balance", params={"min_position": position}, headers=auth("service")
    ).json()
    assert balance["pending"] == 85
    assert {lot["lot_id"]: lot["points"] for lot in balance["lots"]}["p-1"] == 80
    credits = client.get("/v1/customers/anna/campaigns", headers=auth("service")).json()
    assert credits["campaigns"] == [{"campaign_id": "double-weekend", "points": 40, "stamps": None}]

    shown = client.get("/v1/admin/campaigns/double-weekend", headers=auth("alice")).json()
    assert shown["budget_used"] == 40 and shown["customers"] == 1
    listed = client.get("/v1/admin/campaigns", headers=auth("alice")).json()["campaigns"]
    assert [c["campaign_id"] for c in listed] == ["double-weekend"]
    history = client.get("/v1/audit/events", headers=auth("alice")).json()["items"]
    kinds = {(i["aggregate"], i["type"]) for i in history}
    assert {
        ("campaign", "Created"),
        ("campaign", "Approved"),
        ("campaign", "PointsGranted"),
    } <= kinds
    assert ("account", "CampaignPointsGranted") in kinds
    ended = client.post(
        "/v1/admin/campaigns/double-weekend/end", json={"ended_by": "bob"}, headers=auth("bob")
    )
    assert ended.json()["status"] == "ended"


def test_a_condition_with_an_unknown_field_is_refused_with_its_position(
    client: TestClient,
) -> None:
    answer = client.post(
        "/v1/admin/campaigns",
        json={**campaign(condition='amount > 10 and colour == "red"'), "created_by": "alice"},
        headers=auth("alice"),
    )
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["type"] == PROBLEM_BASE + "invalid-condition"
    assert problem["errors"][0]["field"] == "condition"
    assert problem["errors"][0]["message"].startswith("at position 16: unknown field 'colour'")
    typed = client.post(
        "/v1/admin/campaigns",
        json={**campaign(condition='amount > "ten"'), "created_by": "alice"},
        headers=auth("alice"),
    )
    assert typed.status_code == 422 and "at position 9: type error" in typed.json()["detail"]
    assert (
        client.get("/v1/admin/campaigns/double-weekend", headers=auth("alice")).status_code == 404
    )


def test_a_dry_run_answers_from_history_and_stores_nothing(client: TestClient) -> None:
    for n in range(6):
        client.post(
            "/v1/events", json=purchase(n, SATURDAY - timedelta(days=7 * n)), headers=auth("pos")
        )
    position = client.post("/v1/events", json=purchase(99, MONDAY), headers=auth("pos")).json()[
        "position"
    ]
    balance = client.get(
        "/v1/customers/anna/balance", params={"min_position": position}, headers=auth("service")
    ).json()
    tables = client.app.state.container.projections.queries.tables  # type: ignore[attr-defined]
    table_keys = tables.keys()  # every projection table, the tracking row and the outbox
    every_row = {key: tables.rows(key) for key in table_keys}
    body = {
        "campaign": campaign(budget_points=100),
        "from": iso(SATURDAY - timedelta(days=40)),
        "to": iso(NOW),
    }
    answer = client.post("/v1/admin/campaigns:simulate", json=body, headers=auth("alice"))
    assert answer.status_code == 200, answer.text
    result = answer.json()
    # Six Saturdays and a Monday in range; 40 points a Saturday, cut at the budget of 100.
    assert result["events_read"] == 7 and result["events_matched"] == 3
    assert result["points"] == 100
    assert result["budget_exhausted_at"] is not None and result["customers"] == 1
    assert result["position"] == position
    after = client.get("/v1/customers/anna/balance", headers=auth("service")).json()
    assert after == balance
    assert {key: tables.rows(key) for key in table_keys} == every_row
    assert client.get("/v1/admin/campaigns", headers=auth("alice")).json()["campaigns"] == []
    assert (
        client.post("/v1/events", json=purchase(100, MONDAY), headers=auth("pos")).json()[
            "position"
        ]
        == position + 3
    )  # nothing was appended in between (an account event, its receipt record, its intake)


def test_a_stamp_cards_progress_is_in_the_customers_projection(client: TestClient) -> None:
    card = campaign(
        "coffee-card",
        condition="amount >= 3",
        effect={"kind": "stamp", "stamps_needed": 3, "reward_points": 30},
    )
    client.post("/v1/admin/campaigns", json={**card, "created_by": "alice"}, headers=auth("alice"))
    client.post(
        "/v1/admin/campaigns/coffee-card/approve", json={"approved_by": "bob"}, headers=auth("bob")
    )
    seen = []
    for n in range(4):
        answer = client.post("/v1/events", json=purchase(n, utcnow(), "4.00"), headers=auth("pos"))
        credits = client.get(
            "/v1/customers/anna/campaigns",
            params={"min_position": answer.json()["position"]},
            headers=auth("service"),
        ).json()
        seen.append(credits["campaigns"])
    assert [c[0]["stamps"] for c in seen] == [1, 2, 0, 1]  # the third completes the card
    assert seen[-1][0]["points"] == 30
    early = client.get(
        "/v1/customers/anna/campaigns", params={"as_of_position": 1}, headers=auth("service")
    )
    assert early.status_code == 404  # anna was not known yet at position 1


def test_decisions_on_unknown_or_decided_campaigns_are_refused(client: TestClient) -> None:
    unknown = client.post(
        "/v1/admin/campaigns/nope/approve", json={"approved_by": "bob"}, headers=auth("bob")
    )
    assert (
        unknown.status_code == 404 and unknown.json()["type"] == PROBLEM_BASE + "unknown-campaign"
    )
    client.post(
        "/v1/admin/campaigns", json={**campaign(), "created_by": "alice"}, headers=auth("alice")
    )
    rejected = client.post(
        "/v1/admin/campaigns/double-weekend/reject",
        json={"approved_by": "bob", "note": "not this month"},
        headers=auth("bob"),
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    for action, body in (("approve", {"approved_by": "bob"}), ("end", {"ended_by": "bob"})):
        late = client.post(
            f"/v1/admin/campaigns/double-weekend/{action}", json=body, headers=auth("bob")
        )
        assert late.status_code == 409, (action, late.text)
    again = client.post(
        "/v1/admin/campaigns", json={**campaign(), "created_by": "alice"}, headers=auth("alice")
    )
    assert again.status_code == 409 and again.json()["type"] == PROBLEM_BASE + "event-id-conflict"
    backwards = client.post(
        "/v1/admin/campaigns:simulate",
        json={"campaign": campaign(), "from": iso(NOW), "to": iso(NOW - timedelta(days=1))},
        headers=auth("alice"),
    )
    assert backwards.status_code == 422 and backwards.json()["errors"][0]["field"] == "to"
    pos = client.get("/v1/admin/campaigns", headers=auth("pos"))
    assert pos.status_code == 403
