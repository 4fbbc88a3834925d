"""The console shows SPEC §9: a customer's open checkout holds, and the program's points
donated per month and per charity; the liability per month still adds up with holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api import create_app
from services.bootstrap import build
from services.console.queries import points_by_month
from services.http.auth import ApiKeys
from services.settings import Settings
from tests.e2e.test_console_pages import KEYS, Console


def event(kind: str, event_id: str, when: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": kind,
        "customer_id": "anna",
        "occurred_at": f"2026-{when}+00:00",
        "store_id": "riga-1",
        "schema_version": 1,
        **fields,
    }


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    settings = Settings(
        store=f"sqlite:///{tmp_path / 'loyalty.db'}",
        var_dir=tmp_path / "var",
        projections_in_process=True,
        read_wait_seconds=10.0,
    )
    pairs = ",".join(f"{r.rstrip('2')}:{k}" for r, k in KEYS.items())
    container = build(settings, api_keys=ApiKeys.parse(pairs))
    try:
        with TestClient(create_app(container)) as client:
            found = Console(client, container, "anna")
            events = [
                event("enrolment", "e1", "03-01T10:00:00"),
                event("donation", "d1", "03-02T10:00:00", points=20, charity_id="red-cross"),
                event("donation", "d2", "04-02T10:00:00", points=5, charity_id="zoo"),
                event(
                    "redemption_hold",
                    "h1",
                    "04-03T10:00:00",
                    points=30,
                    reward_id="mug",
                    hold_seconds=604800,
                ),
                event(
                    "redemption_hold",
                    "h2",
                    "04-03T10:00:00",
                    points=10,
                    reward_id="pen",
                    hold_seconds=604800,
                ),
                event(
                    "redemption_capture", "c2", "04-03T10:05:00", original_event_id="h2", points=4
                ),
            ]
            answer = client.post(
                "/v1/events:batch", json={"events": events}, headers=found.api("pos")
            )
            assert [r["status"] for r in answer.json()["results"]] == ["accepted"] * 6
            client.get(
                "/v1/customers/anna/balance",
                params={"min_position": found.position()},
                headers=found.api("service"),
            ).raise_for_status()
            yield found
    finally:
        container.close()


def test_the_customer_page_shows_the_open_holds(console: Console) -> None:
    console.sign_in("service")
    page = console.client.get("/console/customers/anna").text
    assert 'data-testid="held">30<' in page
    assert 'data-testid="hold-h1"' in page and 'data-testid="hold-h2"' not in page
    assert 'data-testid="available">41 ' in page  # 100 - 25 donated - 30 held - 4 captured
    assert "Checkout hold" in page and "Donation" in page


def test_the_program_page_shows_donations_per_month_and_charity(console: Console) -> None:
    console.sign_in("auditor")
    page = console.client.get("/console/program").text
    assert 'data-testid="donated-2026-03">20<' in page
    assert 'data-testid="donated-2026-04">5<' in page
    assert 'data-testid="charity-red-cross">20<' in page
    months = points_by_month(console.container.projections.queries)
    liability = console.container.projections.queries.liability()
    assert months[-1].liability == liability["outstanding_points"] == 100 - 25 - 4
    assert (sum(m.redeemed for m in months), sum(m.donated for m in months)) == (4, 25)
