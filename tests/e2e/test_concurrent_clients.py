"""32 concurrent clients with overlapping event ids (issue: reliability, must-show 4).

Two `loyalty serve` on one PostgreSQL store, and one on the embedded SQLite store, each
take the same traffic from 32 client threads at once: every event sent four times, to
either service, interleaved with the other events of the same customers. Expected: no 5xx;
every event accepted exactly once and every other copy answered `duplicate` (a refusal by
a rule is the same refusal every time); and the projections equal a fresh replay of the
store.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.audit.replay import replay
from services.infrastructure.store import StoreURL, open_recorder
from tests.support.servers import start_serve, stop_serve

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"pos": "pos-concurrent-key-000", "admin": "admin-concurrent-key-00"}
POS = {"Authorization": f"Bearer {KEYS['pos']}"}
ADMIN = {"Authorization": f"Bearer {KEYS['admin']}"}
CLIENTS = 32
COPIES = 4
CUSTOMERS = [f"c{n}" for n in range(6)]


def event(kind: str, event_id: str, customer: str, minute: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": kind,
        "customer_id": customer,
        "occurred_at": f"2026-03-01T{10 + minute // 60:02d}:{minute % 60:02d}:00+00:00",
        "store_id": "riga-1",
        "schema_version": 1,
        **fields,
    }


def traffic() -> list[dict[str, Any]]:
    """Purchases, redemptions of the topped-up points, reviews and refunds, per customer."""
    docs = []
    for n in range(40):
        customer = CUSTOMERS[n % len(CUSTOMERS)]
        amount = {"value": f"{10 + n}.00", "currency": "EUR"}
        docs.append(event("purchase", f"p-{n}", customer, n, receipt_id=f"r-{n}", amount=amount))
        docs.append(event("redemption", f"x-{n}", customer, n, points=5, reward_id="coffee"))
        docs.append(event("review", f"v-{n}", customer, n, rating=n % 11, touchpoint="sales"))
    return docs


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    store = str(request.getfixturevalue(f"{request.param}_url"))
    count = 2 if request.param == "postgres" else 1  # one process owns a SQLite file
    started = [start_serve(store, tmp_path / f"var-{n}", KEYS.items()) for n in range(count)]
    try:
        yield store, [url for _, url in started]
    finally:
        for process, _ in started:
            stop_serve(process)


@pytest.mark.timeout(600)
def test_32_clients_with_overlapping_ids_count_every_event_once(
    services: tuple[str, list[str]],
) -> None:
    store, urls = services
    with httpx.Client(base_url=urls[0], timeout=60) as admin:
        for customer in CUSTOMERS:
            first = event("purchase", f"{customer}-0", customer, 0, receipt_id=f"{customer}-r0",
                          amount={"value": "1.00", "currency": "EUR"})  # fmt: skip
            assert admin.post("/v1/events", json=first, headers=POS).status_code == 201
            top_up = {"customer_id": customer, "adjustment_id": f"top-up-{customer}",
                      "points": 150, "reason": "test", "requested_by": "ops"}  # fmt: skip
            assert admin.post("/v1/admin/adjustments", json=top_up, headers=ADMIN).is_success

    docs = traffic()
    jobs = [(copy, doc) for doc in docs for copy in range(COPIES)]
    random.Random(7).shuffle(jobs)  # copies and customers interleave

    def send(job: tuple[int, dict[str, Any]]) -> tuple[str, int, str]:
        copy, doc = job
        with httpx.Client(base_url=urls[copy % len(urls)], timeout=120) as http:
            if copy % 2:  # half the copies come in a batch of one
                answer = http.post("/v1/events:batch", json={"events": [doc]}, headers=POS)
                result = answer.json()["results"][0] if answer.status_code == 200 else {}
                status = result.get("status", "")
                if status == "rejected":
                    status = result["problem"]["type"]
                return doc["event_id"], answer.status_code, status
            answer = http.post("/v1/events", json=doc, headers=POS)
        body = answer.json()
        return doc["event_id"], answer.status_code, body["type" if answer.is_error else "status"]

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        answers = list(pool.map(send, jobs))

    assert [a for a in answers if a[1] >= 500] == [], "no server errors"
    verdicts: dict[str, Counter[str]] = defaultdict(Counter)
    for event_id, _, status in answers:
        verdicts[event_id][status] += 1
    for doc in docs:
        seen = verdicts[doc["event_id"]]
        if seen["accepted"]:
            assert seen == {"accepted": 1, "duplicate": COPIES - 1}, (doc["event_id"], seen)
        else:  # refused: the same refusal, every copy
            (only,) = seen.items()
            assert only[1] == COPIES, (doc["event_id"], seen)
    assert sum(1 for seen in verdicts.values() if seen["accepted"]) > len(docs) // 2

    recorder, factory = open_recorder(StoreURL.parse(store))
    try:
        report = replay(recorder, StoreURL.parse(store))
    finally:
        factory.close()
    assert report.ok, report.differences[:10]
