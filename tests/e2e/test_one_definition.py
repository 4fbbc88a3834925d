"""One definition per fact (issue 10, item 7): the as-of trust flag counts a goodwill
grant at the moment the write side's trust-tester rule does; `new` only before any
interaction; the advocate rule and its why agree; decisions on unknown or decided
goodwill are 404 and 409; GET /v1/admin/approvals lists what waits for a second person."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api import create_app
from services.bootstrap import Container, build
from services.http.auth import ApiKeys
from services.ledger.domain.clock import iso, utcnow
from services.projections.views.standing import classify_segment
from services.settings import Settings

KEYS = {
    "pos": "pos-defs-key-00000000",
    "alice": "admin-alice-key-00000",
    "bob": "admin-bob-key-0000",
}


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


@pytest.fixture
def served(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, Container]]:
    keys = f"pos:{KEYS['pos']},admin:{KEYS['alice']},admin:{KEYS['bob']}"
    settings = Settings(store=sqlite_url, var_dir=tmp_path / "var", projections_in_process=True)
    container = build(settings, api_keys=ApiKeys.parse(keys))
    try:
        with TestClient(create_app(container)) as client:
            yield client, container
    finally:
        container.close()


def goodwill(n: int, when: Any, points: int) -> dict[str, Any]:
    return {
        "event_id": f"gw-{n}",
        "type": "goodwill",
        "customer_id": "anna",
        "occurred_at": iso(when),
        "store_id": "s-1",
        "schema_version": 1,
        "points": points,
        "reason_code": "late-delivery",
        "issued_by": "agent-1",
    }


def test_as_of_trust_flags_the_customer_the_write_side_held_as_flagged(
    served: tuple[TestClient, Container],
) -> None:
    client, container = served
    start = utcnow() - timedelta(days=30)
    ledger = container.ledger
    assert ledger.record(goodwill(1, start, 5000)).effect["status"] == "awaiting_approval"
    ledger.approve_goodwill("gw-1", approved_by="bob", decided_at=start + timedelta(days=10))
    for n in (2, 3, 4):  # small money, granted at once
        assert ledger.record(goodwill(n, start + timedelta(days=n), 100)).effect["status"] == (
            "granted"
        )
    fifth = ledger.record(goodwill(5, start + timedelta(days=5), 100))
    assert fifth.effect["waits_because"] == "trust-tester-flagged"  # 4 grants > 3
    as_of = iso(start + timedelta(days=5, hours=1))
    answer = client.get(
        "/v1/customers/anna/trust",
        params={"as_of": as_of, "min_position": fifth.position},
        headers=auth("alice"),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["flagged"] is True


def test_decisions_on_unknown_and_decided_goodwill(served: tuple[TestClient, Container]) -> None:
    client, container = served
    body = {"approved_by": "bob"}
    unknown = client.post("/v1/admin/goodwill/gw-404/approve", json=body, headers=auth("bob"))
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["type"].endswith("/unknown-approval")
    assert (
        client.post("/v1/admin/goodwill/gw-404/reject", json=body, headers=auth("bob")).status_code
        == 404
    )
    container.ledger.record(goodwill(1, utcnow(), 5000))
    first = client.post("/v1/admin/goodwill/gw-1/approve", json=body, headers=auth("bob"))
    assert first.status_code == 200, first.text
    again = client.post("/v1/admin/goodwill/gw-1/approve", json=body, headers=auth("bob"))
    assert again.status_code == 409
    assert again.json()["type"].endswith("/not-pending")


def test_approvals_lists_what_waits_for_a_second_person(
    served: tuple[TestClient, Container],
) -> None:
    client, container = served
    outcome = container.ledger.record(goodwill(1, utcnow(), 5000))
    adjusted = client.post(
        "/v1/admin/adjustments",
        json={"customer_id": "anna", "adjustment_id": "adj-1", "points": 5000,
              "reason": "migration", "requested_by": "alice"},
        headers=auth("alice"),
    )  # fmt: skip
    assert adjusted.status_code == 201, adjusted.text
    document = client.get("/v1/admin/rules", headers=auth("alice")).json()["rules"]
    rule_change = client.put(
        "/v1/admin/rules",
        json={"rules": {**document, "adjustment_approval_limit": 9000},
              "changed_by": "alice", "reason": "fewer approvals"},
        headers=auth("alice"),
    )  # fmt: skip
    assert rule_change.status_code == 202
    answer = client.get(
        "/v1/admin/approvals",
        params={"min_position": adjusted.json()["position"]},
        headers=auth("bob"),
    )
    assert answer.status_code == 200, answer.text
    waiting = {(w["kind"], w["request_id"]) for w in answer.json()["waiting"]}
    assert waiting == {
        ("goodwill", "gw-1"),
        ("adjustment", "adj-1"),
        ("rule_change", rule_change.json()["request_id"]),
    }
    assert outcome.position is not None
    client.post("/v1/admin/goodwill/gw-1/approve", json={"approved_by": "bob"}, headers=auth("bob"))
    later = client.get("/v1/admin/approvals", params={"min_position": container.ledger.position()},
                       headers=auth("bob"))  # fmt: skip
    assert ("goodwill", "gw-1") not in {
        (w["kind"], w["request_id"]) for w in later.json()["waiting"]
    }
    assert client.get("/v1/admin/approvals", headers=auth("pos")).status_code == 403


def test_the_advocate_why_says_what_the_rule_counts() -> None:
    at = utcnow()
    advocate = classify_segment(3, True, None, 1, at)
    assert advocate.segment == "advocate"
    assert "1 rewarded referral(s)" in advocate.why
    client = classify_segment(3, True, None, 0, at)
    assert client.segment == "client"
    assert "rewarded referral (a customer they referred bought, at any time)" in client.why
