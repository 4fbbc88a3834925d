"""The console's campaigns (SPEC §10): a campaign waits in the approvals queue until a
second person decides it there, and the program page shows it with its budget used."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.api import create_app
from services.bootstrap import build
from services.http.auth import ApiKeys
from services.ledger.domain.clock import iso, utcnow
from services.settings import Settings
from tests.e2e.test_console_pages import token_of

KEYS = {
    "pos": "pos-console-campaign-0",
    "alice": "admin-console-alice-00",
    "bob": "admin-console-bob-0000",
}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        store=f"sqlite:///{tmp_path / 'loyalty.db'}",
        var_dir=tmp_path / "var",
        projections_in_process=True,
    )
    keys = f"pos:{KEYS['pos']},admin:{KEYS['alice']},admin:{KEYS['bob']}"
    container = build(settings, api_keys=ApiKeys.parse(keys))
    try:
        with TestClient(create_app(container)) as test_client:
            yield test_client
    finally:
        container.close()


def sign_in(client: TestClient, who: str) -> str:
    client.cookies.clear()
    page = client.get("/console/sign-in")
    answer = client.post(
        "/console/sign-in",
        data={"key": KEYS[who], "name": who, "csrf_token": token_of(page.text)},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return token_of(client.get("/console/approvals").text)


def test_a_campaign_is_approved_from_the_queue_and_its_budget_shown(client: TestClient) -> None:
    now = utcnow()
    created = client.post(
        "/v1/admin/campaigns",
        json={
            "campaign_id": "welcome-bonus",
            "name": "Welcome bonus",
            "condition": "customer.purchases == 0",
            "effect": {"kind": "bonus", "points": 100},
            "starts_at": iso(now - timedelta(days=1)),
            "ends_at": iso(now + timedelta(days=30)),
            "budget_points": 5000,
            "created_by": "alice",
        },
        headers={"Authorization": f"Bearer {KEYS['alice']}"},
    )
    assert created.status_code == 201, created.text

    csrf = sign_in(client, "alice")
    queue = client.get("/console/approvals").text
    assert 'data-request="welcome-bonus"' in queue and "customer.purchases == 0" in queue
    own = client.post(
        "/console/approvals/campaigns/welcome-bonus/approve", data={"csrf_token": csrf}
    )
    assert "refused" in own.text  # the creator cannot be the second person

    csrf = sign_in(client, "bob")
    decided = client.post(
        "/console/approvals/campaigns/welcome-bonus/approve", data={"csrf_token": csrf}
    )
    assert "Campaign welcome-bonus approved by bob: active" in decided.text
    assert 'data-request="welcome-bonus"' not in decided.text

    purchase = {
        "event_id": "p-1", "type": "purchase", "customer_id": "anna", "occurred_at": iso(utcnow()),
        "schema_version": 1, "receipt_id": "r-1", "amount": {"value": "10.00", "currency": "EUR"},
    }  # fmt: skip
    answer = client.post(
        "/v1/events", json=purchase, headers={"Authorization": f"Bearer {KEYS['pos']}"}
    )
    assert answer.json()["effect"]["campaigns"][0]["points"] == 100
    container = client.app.state.container  # type: ignore[attr-defined]
    container.projections.queries.wait_for(answer.json()["position"])
    page = client.get("/console/customers/anna").text
    assert 'data-testid="campaigns"' in page and "welcome-bonus" in page
    assert "Campaign points" in page  # the timeline names the credit
    program = client.get("/console/program").text
    row = program[program.index('data-campaign="welcome-bonus"') :].split("</tr>")[0]
    assert "active" in row and "5,000" in row and "4,900" in row
