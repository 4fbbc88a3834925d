"""SPEC §9 over HTTP, end to end: enrolment and welcome points, paying with points,
checkout holds (capture, void, release by the sweep), donations and opening balances,
read back from the projections (balance with `held` and the holds, the liability with
donations per charity, the timeline's words), and a replay that agrees."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api import create_app
from services.audit.replay import replay
from services.bootstrap import build
from services.http.auth import ApiKeys
from services.infrastructure.store import StoreURL
from services.ledger.domain.errors import PROBLEM_BASE
from services.settings import Settings

KEYS = {
    "pos": "pos-key-principles-0000",
    "service": "service-key-principles-0",
    "auditor": "auditor-key-principles-0",
    "admin": "admin-key-principles-000",
}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}"}


def event(kind: str, event_id: str, when: str, customer: str = "anna", **fields: Any) -> dict:
    return {
        "event_id": event_id,
        "type": kind,
        "customer_id": customer,
        "occurred_at": f"2026-03-{when}+00:00",
        "store_id": "riga-1",
        "schema_version": 1,
        **fields,
    }


def eur(value: str) -> dict[str, str]:
    return {"value": value, "currency": "EUR"}


class Api:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.last = 0

    def post(self, doc: dict[str, Any], status: int = 201) -> dict[str, Any]:
        answer = self.client.post("/v1/events", json=doc, headers=auth("pos"))
        assert answer.status_code == status, answer.text
        body: dict[str, Any] = answer.json()
        self.last = max(self.last, body.get("position") or 0)
        return body

    def read(self, path: str, role: str = "service", **query: Any) -> dict[str, Any]:
        answer = self.client.get(
            path, params={"min_position": self.last, **query}, headers=auth(role)
        )
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]


@pytest.fixture
def setup(store_url: str, tmp_path: Path) -> Iterator[tuple[Api, Any]]:
    settings = Settings(
        store=store_url, var_dir=tmp_path / "var", projections_in_process=True, read_wait_seconds=5
    )
    container = build(
        settings, api_keys=ApiKeys.parse(",".join(f"{r}:{k}" for r, k in KEYS.items()))
    )
    try:
        with TestClient(create_app(container)) as client:
            yield Api(client), container
    finally:
        container.close()


def problem_type(body: dict[str, Any]) -> str:
    return str(body["type"]).removeprefix(PROBLEM_BASE)


def test_enrolment_welcomes_once_and_is_not_needed_to_earn(setup: tuple[Api, Any]) -> None:
    api, _ = setup
    bought = api.post(
        event("purchase", "p0", "01T09:00:00", "bruno", receipt_id="r0", amount=eur("10.00"))
    )
    assert bought["effect"]["points"] == 10  # bruno never enrolled
    welcome = api.post(event("enrolment", "e1", "01T10:00:00", channel="app", birthday="--04-17"))
    assert welcome["effect"]["welcome_points"] == 100
    again = api.post(event("enrolment", "e2", "01T11:00:00"), status=422)
    assert problem_type(again) == "already-enrolled"
    balance = api.read("/v1/customers/anna/balance")
    assert (balance["available"], balance["lots"][0]["source"]) == (100, "welcome")
    items = api.read("/v1/customers/anna/timeline")["items"]
    assert "100 welcome points available" in items[-1]["effect"]["summary"]


def test_the_part_paid_with_points_earns_nothing(setup: tuple[Api, Any]) -> None:
    api, _ = setup
    paid = api.post(
        event(
            "purchase",
            "p1",
            "02T10:00:00",
            receipt_id="r1",
            amount=eur("100.00"),
            points_tender=eur("20.00"),
        )
    )
    assert paid["effect"]["points"] == 80
    refund = api.post(
        event("refund", "f1", "03T10:00:00", original_event_id="p1", amount=eur("50.00"))
    )
    assert refund["effect"]["points_reversed"] == 40
    too_much = api.post(
        event(
            "purchase",
            "p2",
            "02T11:00:00",
            receipt_id="r2",
            amount=eur("10.00"),
            points_tender=eur("10.01"),
        ),
        status=422,
    )
    assert problem_type(too_much) == "points-tender-exceeds-amount"
    other = {**event("purchase", "p3", "02T12:00:00", receipt_id="r3", amount=eur("10.00"))}
    other["points_tender"] = {"value": "1.00", "currency": "USD"}
    assert api.post(other, status=422)["errors"][0]["field"] == "points_tender.currency"
    summary = api.read("/v1/customers/anna/timeline")["items"][0]["effect"]["summary"]
    assert "20.00 paid with points earns nothing" in summary


def test_holds_captured_voided_and_released_by_the_sweep(setup: tuple[Api, Any]) -> None:
    api, container = setup
    api.post(event("enrolment", "e1", "01T10:00:00"))
    api.post(event("redemption_hold", "h1", "04T10:00:00", points=60, reward_id="mug"))
    balance = api.read("/v1/customers/anna/balance")
    assert (balance["available"], balance["held"]) == (40, 60)
    assert [h["hold_id"] for h in balance["holds"]] == ["h1"]
    refused = api.post(
        event("redemption", "x1", "04T10:01:00", points=41, reward_id="cup"), status=422
    )
    assert problem_type(refused) == "insufficient-points"
    captured = api.post(
        event("redemption_capture", "c1", "04T10:02:00", original_event_id="h1", points=45)
    )
    assert (captured["effect"]["points"], captured["effect"]["released"]) == (45, 15)
    twice = api.post(
        event("redemption_void", "v0", "04T10:03:00", original_event_id="h1"), status=422
    )
    assert problem_type(twice) == "hold-not-open"
    api.post(
        event("redemption_hold", "h2", "04T11:00:00", points=30, reward_id="mug", hold_seconds=60)
    )
    api.post(event("redemption_hold", "h3", "04T11:00:00", points=5, reward_id="pen"))
    api.post(event("redemption_void", "v3", "04T11:01:00", original_event_id="h3"))
    balance = api.read("/v1/customers/anna/balance")
    assert (balance["available"], balance["held"], balance["redeemed"]) == (25, 30, 45)
    tick = container.tick(datetime(2026, 3, 4, 12, tzinfo=UTC))
    assert [(r["action"], r["hold_id"]) for r in tick.recorded] == [("hold_released", "h2")]
    api.last = tick.position
    balance = api.read("/v1/customers/anna/balance")
    assert (balance["available"], balance["held"], balance["holds"]) == (55, 0, [])
    liability = api.read("/v1/programs/default/liability", "auditor")
    assert (liability["held"], liability["outstanding_points"]) == (0, 55)
    kinds = [i["type"] for i in api.read("/v1/customers/anna/timeline")["items"]]
    assert kinds[-5:] == [
        "HoldCaptured",
        "PointsHeld",
        "PointsHeld",
        "HoldReleased",
        "HoldReleased",
    ]


def test_donations_per_charity_in_the_liability(setup: tuple[Api, Any], store_url: str) -> None:
    api, container = setup
    api.post(event("enrolment", "e1", "01T10:00:00"))
    api.post(event("enrolment", "e2", "01T10:00:00", "bruno"))
    api.post(event("donation", "d1", "05T10:00:00", points=30, charity_id="red-cross"))
    api.post(event("donation", "d2", "05T11:00:00", "bruno", points=20, charity_id="red-cross"))
    api.post(event("donation", "d3", "06T10:00:00", "bruno", points=5, charity_id="zoo"))
    refused = api.post(
        event("donation", "d4", "06T11:00:00", points=71, charity_id="zoo"), status=422
    )
    assert problem_type(refused) == "insufficient-points"
    liability = api.read("/v1/programs/default/liability", "auditor")
    assert liability["donated_points_by_charity"] == {"red-cross": 50, "zoo": 5}
    assert liability["outstanding_points"] == 200 - 55
    then = api.read("/v1/programs/default/liability", "auditor", as_of="2026-03-05T10:30:00Z")
    assert then["donated_points_by_charity"] == {"red-cross": 30}
    report = replay(container.ledger.recorder, StoreURL.parse(store_url))
    assert report.ok, report.differences


def test_the_audit_sees_every_new_event_in_history_export_and_as_of(
    setup: tuple[Api, Any],
) -> None:
    api, container = setup
    api.post(event("enrolment", "e1", "01T10:00:00"))
    api.post(event("redemption_hold", "h1", "04T10:00:00", points=60, reward_id="mug"))
    api.post(event("redemption_capture", "c1", "04T10:02:00", original_event_id="h1", points=10))
    api.post(event("donation", "d1", "05T10:00:00", points=30, charity_id="zoo"))
    history = api.read("/v1/audit/events", "auditor", customer_id="anna")
    kinds = [item["type"] for item in history["items"]]
    assert {"CustomerEnrolled", "PointsHeld", "HoldCaptured", "PointsDonated"} <= set(kinds)
    welcome = next(i for i in history["items"] if i["type"] == "CustomerEnrolled")
    assert welcome["rule_version"] == container.ledger.rules.version  # the credit's rules
    lines = api.client.get("/v1/audit/export", headers=auth("auditor")).text.splitlines()
    topics = {line.split('"topic":"')[1].split('"')[0] for line in lines if '"topic"' in line}
    assert "services.ledger.domain.account:CustomerAccount.PointsHeld" in topics
    held_then = api.read("/v1/customers/anna/balance", as_of="2026-03-04T10:01:00Z")
    assert (held_then["available"], held_then["held"]) == (40, 60)
    assert [h["hold_id"] for h in held_then["holds"]] == ["h1"]
    now = api.read("/v1/customers/anna/balance")
    assert (now["available"], now["held"], now["redeemed"]) == (60, 0, 10)  # 100 - 10 - 30
