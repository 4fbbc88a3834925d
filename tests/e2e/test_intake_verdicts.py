"""The intake's verdicts hold whatever the input or the timing (issue: reliability).

- A poison document (JSON nested past the schema validator's limit) is an ordinary
  `invalid-event`, alone or inside a batch, and the events beside it are recorded.
- A refusal is final: the same event sent again is refused the same way, even after
  the state that refused it changed.
- Identical retries racing their original on two `loyalty serve` processes sharing one
  PostgreSQL store are answered `duplicate`, never refused by the original's own effect.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.api import create_app
from services.bootstrap import build
from services.http.auth import ApiKeys
from services.ledger.domain.errors import PROBLEM_BASE
from services.settings import Settings
from tests.support.servers import start_serve, stop_serve

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"pos": "pos-verdict-key-00000", "admin": "admin-verdict-key-0000"}
POS = {"Authorization": f"Bearer {KEYS['pos']}"}
ADMIN = {"Authorization": f"Bearer {KEYS['admin']}"}
NESTED = b'{"event_id": "deep", "type": "purchase", "x": ' + b"[" * 255 + b"]" * 255 + b"}"


def event(kind: str, event_id: str, customer: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": kind,
        "customer_id": customer,
        "occurred_at": "2026-03-01T10:00:00+00:00",
        "store_id": "riga-1",
        "schema_version": 1,
        **fields,
    }


def purchase(event_id: str, customer: str, receipt: str, value: str = "10.00") -> dict[str, Any]:
    return event(
        "purchase",
        event_id,
        customer,
        receipt_id=receipt,
        amount={"value": value, "currency": "EUR"},
    )


def top_up(client: Any, customer: str, points: int) -> None:
    answer = client.post(
        "/v1/admin/adjustments",
        json={
            "customer_id": customer,
            "adjustment_id": f"top-up-{customer}",
            "points": points,
            "reason": "test",
            "requested_by": "ops",
        },
        headers=ADMIN,
    )
    assert answer.status_code == 201, answer.text


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


def test_a_poison_event_is_an_invalid_event_not_a_server_error(client: TestClient) -> None:
    answer = client.post(
        "/v1/events", content=NESTED, headers={**POS, "Content-Type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["type"] == PROBLEM_BASE + "invalid-event"
    assert "levels deep" in answer.json()["detail"]


def test_a_poison_event_in_a_batch_refuses_only_itself(client: TestClient) -> None:
    body = (
        b'{"events": ['
        + b'{"event_id": "p-1", "type": "purchase", "customer_id": "anna", "occurred_at": '
        + b'"2026-03-01T10:00:00+00:00", "schema_version": 1, "receipt_id": "r-1", '
        + b'"amount": {"value": "10.00", "currency": "EUR"}}, '
        + NESTED
        + b"]}"
    )
    answer = client.post(
        "/v1/events:batch", content=body, headers={**POS, "Content-Type": "application/json"}
    )
    assert answer.status_code == 200, answer.text
    first, poison = answer.json()["results"]
    assert first["status"] == "accepted"
    assert poison["status"] == "rejected"
    assert poison["problem"]["type"] == PROBLEM_BASE + "invalid-event"


def test_a_refusal_is_final_even_once_the_state_would_allow_it(client: TestClient) -> None:
    assert client.post("/v1/events", json=purchase("p-1", "anna", "r-1"), headers=POS).is_success
    redeem = event("redemption", "x-1", "anna", points=50, reward_id="coffee")
    refused = client.post("/v1/events", json=redeem, headers=POS)
    assert refused.status_code == 422
    assert refused.json()["type"] == PROBLEM_BASE + "insufficient-points"

    top_up(client, "anna", 500)  # now 50 points would be there to redeem
    again = client.post("/v1/events", json=redeem, headers=POS)
    assert again.status_code == 422
    assert again.json() == refused.json(), "the same verdict, not a new judgement"
    in_batch = client.post("/v1/events:batch", json={"events": [redeem]}, headers=POS)
    assert in_batch.json()["results"][0]["problem"] == refused.json()

    # A different event under the refused event_id is a conflict, as for an accepted one.
    other = {**redeem, "points": 40}
    conflict = client.post("/v1/events", json=other, headers=POS)
    assert conflict.status_code == 409
    assert conflict.json()["type"] == PROBLEM_BASE + "event-id-conflict"


# ---- two serve processes, one PostgreSQL -------------------------------------------------


@pytest.fixture
def two_services(postgres_url: str, tmp_path: Path) -> Iterator[list[str]]:
    started = [start_serve(postgres_url, tmp_path / f"var-{n}", KEYS.items()) for n in range(2)]
    try:
        yield [url for _, url in started]
    finally:
        for process, _ in started:
            stop_serve(process)


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_identical_retries_on_two_services_are_duplicates_never_refusals(
    two_services: list[str],
) -> None:
    customers = [f"c{n}" for n in range(4)]
    with httpx.Client(base_url=two_services[0], timeout=30) as admin:
        for customer in customers:
            first = admin.post(
                "/v1/events",
                json=purchase(f"{customer}-0", customer, f"{customer}-r0"),
                headers=POS,
            )
            assert first.status_code == 201, first.text
            top_up(admin, customer, 1000)  # the most without a second admin
    # Purchases (a racing retry saw the receipt as taken) and redemptions (it saw the
    # points as spent); each sent six times at once, three times to each service.
    events = []
    for n in range(30):
        customer = customers[n % len(customers)]
        events.append(purchase(f"p-{n}", customer, f"r-{n}"))
        events.append(event("redemption", f"x-{n}", customer, points=1, reward_id="coffee"))

    def send(job: tuple[int, dict[str, Any]]) -> tuple[str, int, str]:
        n, doc = job
        with httpx.Client(base_url=two_services[n % 2], timeout=60) as http:
            answer = http.post("/v1/events", json=doc, headers=POS)
        body = answer.json()
        return doc["event_id"], answer.status_code, body["type" if answer.is_error else "status"]

    jobs = [(n, doc) for doc in events for n in range(6)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(send, jobs))

    refused = [a for a in answers if a[1] not in (200, 201)]
    assert refused == [], f"{len(refused)} identical retries refused: {refused[:5]}"
    by_event = Counter((event_id, status) for event_id, _, status in answers)
    for doc in events:
        assert by_event[(doc["event_id"], "accepted")] == 1, doc["event_id"]
        assert by_event[(doc["event_id"], "duplicate")] == 5, doc["event_id"]
