"""Held points cannot be spent twice, whatever the interleaving (SPEC §9 checkout holds):
parallel HTTP clients against `loyalty serve` (one on the embedded SQLite store, two on
one PostgreSQL store) race to capture one hold, to redeem the held points, and to hold
more points than there are. Exactly one capture wins, nothing held is redeemed, and
the balance adds up."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.audit.replay import replay
from services.infrastructure.store import StoreURL, open_recorder
from services.ledger.application.ledger import Ledger
from services.ledger.domain.errors import PROBLEM_BASE
from services.ledger.domain.rules import file_hash, load_rules_file
from tests.e2e.test_concurrent_clients import KEYS, POS
from tests.support.servers import start_serve, stop_serve

CLIENTS = 16
# Dated just before now: the serve's own sweep (every 60 s, at the real clock) must not
# release the holds while the clients race.
START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


def event(kind: str, event_id: str, customer: str, minute: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": kind,
        "customer_id": customer,
        "occurred_at": (START + timedelta(minutes=minute)).isoformat(),
        "store_id": "riga-1",
        "schema_version": 1,
        **fields,
    }


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


def verdict(answer: httpx.Response) -> str:
    body: dict[str, Any] = answer.json()
    if answer.is_error:
        return str(body["type"]).removeprefix(PROBLEM_BASE)
    return str(body["status"])


@pytest.mark.timeout(300)
def test_one_capture_wins_and_held_points_are_never_spent_twice(
    services: tuple[str, list[str]],
) -> None:
    store, urls = services
    with httpx.Client(base_url=urls[0], timeout=60) as http:
        for customer in ("anna", "bruno"):  # 100 welcome points each
            answer = http.post("/v1/events", json=event("enrolment", f"e-{customer}", customer, 0),
                               headers=POS)  # fmt: skip
            assert answer.status_code == 201, answer.text
        hold = event("redemption_hold", "h-anna", "anna", 1, points=100, reward_id="bike",
                     hold_seconds=3600)  # fmt: skip
        assert http.post("/v1/events", json=hold, headers=POS).status_code == 201

    jobs: list[tuple[str, dict[str, Any]]] = []
    for n in range(CLIENTS):
        jobs.append(("capture", event("redemption_capture", f"c-{n}", "anna", 2,
                                      original_event_id="h-anna")))  # fmt: skip
        jobs.append(("redeem", event("redemption", f"x-{n}", "anna", 2, points=50,
                                     reward_id="cup")))  # fmt: skip
        jobs.append(("hold", event("redemption_hold", f"hb-{n}", "bruno", 2, points=30,
                                   reward_id="mug", hold_seconds=3600)))  # fmt: skip

    def send(indexed: tuple[int, tuple[str, dict[str, Any]]]) -> tuple[str, str]:
        n, (kind, doc) = indexed
        with httpx.Client(base_url=urls[n % len(urls)], timeout=120) as http:
            answer = http.post("/v1/events", json=doc, headers=POS)
        assert answer.status_code < 500, answer.text
        return kind, verdict(answer)

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        answers = Counter(pool.map(send, enumerate(jobs)))

    assert answers[("capture", "accepted")] == 1
    assert answers[("capture", "hold-not-open")] == CLIENTS - 1
    assert answers[("redeem", "insufficient-points")] == CLIENTS  # all 100 were held
    assert answers[("hold", "accepted")] == 3  # 3 x 30 of bruno's 100
    assert answers[("hold", "insufficient-points")] == CLIENTS - 3

    # The write model (on PostgreSQL the projections are `loyalty project`'s, not run here).
    ledger = Ledger(
        env=StoreURL.parse(store).eventsourcing_env(),
        rules=load_rules_file(),
        rules_file_hash=file_hash(),
    )
    try:
        anna, bruno = ledger.account("anna"), ledger.account("bruno")
        assert (anna.available, anna.held) == (0, 0)
        assert (bruno.available, bruno.held, len(bruno.holds)) == (10, 90, 3)
    finally:
        ledger.close()
    recorder, factory = open_recorder(StoreURL.parse(store))
    try:
        report = replay(recorder, StoreURL.parse(store))
    finally:
        factory.close()
    assert report.ok, report.differences[:10]
