"""Read-your-writes waits cannot starve the writers (issue 15.7).

A read with `min_position` ahead of the projections waits for them. Those waits used to
hold a worker thread each (80 of them cut POS writes 30x); they now wait on the event
loop, and at most `LOYALTY_READ_MAX_WAITERS` of them at once (503 with Retry-After past
that). The tests count what completes while the readers wait; they time nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.api import create_app
from services.bootstrap import Container, build
from services.http.auth import ApiKeys
from services.projections.routes import read_waits
from services.settings import Settings

KEYS = {"pos": "pos-key-read-waits-000", "service": "service-key-read-waits-0"}
POS = {"Authorization": f"Bearer {KEYS['pos']}"}
SERVICE = {"Authorization": f"Bearer {KEYS['service']}"}
READERS = 80  # twice the worker threads (anyio's default of 40)
WRITES = 20


def purchase(event_id: str, customer: str = "anna") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "purchase",
        "customer_id": customer,
        "occurred_at": "2026-03-01T10:00:00Z",
        "schema_version": 1,
        "receipt_id": f"rc-{event_id}",
        "amount": {"value": "10.00", "currency": "EUR"},
    }


@contextmanager
def open_app(
    sqlite_url: str, tmp_path: Path, **settings: Any
) -> Iterator[tuple[Container, TestClient]]:
    container = build(
        Settings(
            **{
                "store": sqlite_url,
                "var_dir": tmp_path / "var",
                "projections_in_process": True,
                # The readers are released by writes, not by a timeout.
                "read_wait_seconds": 120.0,
                **settings,
            }
        ),
        api_keys=ApiKeys.parse(",".join(f"{r}:{k}" for r, k in KEYS.items())),
    )
    try:
        with TestClient(create_app(container)) as client:
            yield container, client
    finally:
        container.close()


@pytest.fixture
def app(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[Container, TestClient]]:
    with open_app(sqlite_url, tmp_path) as opened:
        yield opened


def wait_until(condition: Any, what: str) -> None:
    """Poll a condition the server reaches on its own (bounded: fails, never hangs)."""
    import time

    for _ in range(3000):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def start_readers(
    pool: ThreadPoolExecutor, client: TestClient, count: int, min_position: int
) -> list[Future[httpx.Response]]:
    return [
        pool.submit(
            client.get,
            "/v1/customers/anna/balance",
            params={"min_position": min_position},
            headers=SERVICE,
        )
        for _ in range(count)
    ]


def release(client: TestClient, container: Container, min_position: int) -> None:
    """Write until the store passes `min_position` (new customers: 3 positions each)."""
    n = 0
    while container.ledger.position() < min_position:
        batch = [purchase(f"fill-{n}-{i}", customer=f"fill-{n}-{i}") for i in range(200)]
        answer = client.post("/v1/events:batch", json={"events": batch}, headers=POS)
        assert answer.status_code == 200, answer.text
        n += 1


def test_writes_complete_while_80_readers_wait_for_a_position_not_reached(
    app: tuple[Container, TestClient],
) -> None:
    container, client = app
    assert client.post("/v1/events", json=purchase("first"), headers=POS).status_code == 201
    target = container.ledger.position() + 500  # far beyond what the writes below reach
    waits = read_waits(client.app)  # type: ignore[arg-type]
    with ThreadPoolExecutor(READERS) as pool:
        readers = start_readers(pool, client, READERS, target)
        wait_until(lambda: waits.waiting == READERS, f"{READERS} readers waiting")

        written = [
            client.post("/v1/events", json=purchase(f"w-{n}"), headers=POS) for n in range(WRITES)
        ]

        assert [w.status_code for w in written] == [201] * WRITES
        assert not any(r.done() for r in readers), "a reader gave up while the writers wrote"
        assert container.ledger.position() < target
        release(client, container, target)
        answers = [r.result(timeout=120) for r in readers]
    assert [a.status_code for a in answers] == [200] * READERS
    assert all(a.json()["position"] >= target for a in answers)


def test_past_the_limit_of_waiting_readers_a_read_is_503_with_retry_after_at_once(
    sqlite_url: str, tmp_path: Path
) -> None:
    with open_app(sqlite_url, tmp_path, read_max_waiters=2) as (container, client):
        assert client.post("/v1/events", json=purchase("first"), headers=POS).status_code == 201
        target = container.ledger.position() + 100
        waits = read_waits(client.app)  # type: ignore[arg-type]
        with ThreadPoolExecutor(2) as pool:
            readers = start_readers(pool, client, 2, target)
            wait_until(lambda: waits.waiting == 2, "2 readers waiting")

            third = client.get(
                "/v1/customers/anna/balance", params={"min_position": target}, headers=SERVICE
            )
            assert third.status_code == 503, third.text
            assert third.headers["content-type"].startswith("application/problem+json")
            assert third.headers["retry-after"] == "1"
            assert third.json()["min_position"] == target
            # A read that needs no wait is answered all the same.
            plain = client.get("/v1/customers/anna/balance", headers=SERVICE)
            assert plain.status_code == 200, plain.text

            release(client, container, target)
            assert [r.result(timeout=120).status_code for r in readers] == [200, 200]
