"""How `history.sqlite.gz` and `answers.json` were made (once, by the code of commit 3661916,
2026-12-01). Never re-run it to "fix" the golden test: the point of the files is that they
were written by old code. A new golden history (for a new era of the contract) goes beside
this one under a new name.

    .venv/bin/python -m tests.golden.make_history

The history: 60 simulated customers and 3,000 POS events of every type (October 2025) (with
the simulator's duplicates and refusals), a daily sweep, goodwill above the small-money
limit approved and rejected by a second admin, manual adjustments (one waiting, approved,
rejected), and a rule change. The answers are what the read API said for twelve customers
and the program at the last position, with the clock pinned to `NOW`.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from services.api import create_app
from services.bootstrap import build
from services.ledger.api.auth import ApiKeys
from services.projections.simulation import generate_events
from services.settings import Settings

HERE = Path(__file__).parent
START = datetime(2025, 10, 6, 9, 0, tzinfo=UTC)  # the sim spans ~a month; lots expire in 2026
NOW = datetime(2026, 12, 1, tzinfo=UTC)
KEYS = {
    "pos": "pos-key-golden-000000",
    "service": "service-key-golden-00",
    "auditor": "auditor-key-golden-00",
    "admin": "admin-key-golden-00000",
    "admin2": "admin-key-golden-second",
}
CUSTOMERS = [f"sim7-c{i:06d}" for i in (0, 1, 2, 3, 5, 8, 13, 21, 34, 55)] + ["gold-a", "gold-b"]
READS = ("balance", "tier", "segment", "trust", "ltv", "timeline")


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def main() -> None:
    work = HERE / "build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    keys = ",".join(f"{name.rstrip('2')}:{key}" for name, key in KEYS.items())
    settings = Settings(
        store=f"sqlite:///{work / 'history.sqlite'}",
        var_dir=work / "var",
        projections_in_process=True,
        read_wait_seconds=30.0,
    )
    container = build(settings, api_keys=ApiKeys.parse(keys))
    container.projections.queries.clock = lambda: NOW
    with TestClient(create_app(container)) as client:
        write(client)
        answers = read(client, container.ledger.position())
    container.close()
    with sqlite3.connect(work / "history.sqlite") as db:  # the WAL into the file itself
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (HERE / "answers.json").write_text(json.dumps(answers, indent=1, sort_keys=True) + "\n")
    with (
        open(work / "history.sqlite", "rb") as db,
        gzip.open(HERE / "history.sqlite.gz", "wb") as gz,
    ):
        shutil.copyfileobj(db, gz)
    shutil.rmtree(work)


def post(client: TestClient, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answer = client.post("/v1/events:batch", json={"events": events}, headers=auth("pos"))
    assert answer.status_code == 200, answer.text
    results: list[dict[str, Any]] = answer.json()["results"]
    return results


def write(client: TestClient) -> None:
    events = list(generate_events(seed=7, customers=60, events=3000, start=START))
    day: str | None = None
    batch: list[dict[str, Any]] = []
    waiting: list[str] = []
    for event in events:
        when = event["occurred_at"][:10]
        if day is not None and when != day and batch:
            for result in post(client, batch):
                if result.get("effect", {}).get("status") == "awaiting_approval":
                    waiting.append(result["event_id"])
            batch = []
            tick(client, datetime.fromisoformat(f"{when}T00:00:00+00:00"))
        day = when
        batch.append(event)
    post(client, batch)
    for n, event_id in enumerate(waiting):
        verb = "reject" if n % 3 == 2 else "approve"
        answer = client.post(
            f"/v1/admin/goodwill/{event_id}/{verb}",
            json={"approved_by": "supervisor-2", "note": "golden history"},
            headers=auth("admin2"),
        )
        # 409: the simulator's own flow (a flagged customer's request) decided it already.
        assert answer.status_code in (200, 409), answer.text
    golden_customers(client)
    tick(client, NOW - timedelta(days=1))


def tick(client: TestClient, now: datetime) -> None:
    answer = client.post("/v1/admin/tick", json={"now": now.isoformat()}, headers=auth("admin"))
    assert answer.status_code == 200, answer.text


def envelope(kind: str, event_id: str, customer: str, when: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": kind,
        "customer_id": customer,
        "occurred_at": f"2026-{when}+00:00",
        "store_id": "riga-1",
        "schema_version": 1,
        **fields,
    }


def golden_customers(client: TestClient) -> None:
    """Two hand-made customers: a rule change between their purchases, adjustments."""
    eur = lambda value: {"value": value, "currency": "EUR"}  # noqa: E731
    post(
        client,
        [
            envelope(
                "purchase",
                "gold-a-p1",
                "gold-a",
                "10-01T10:00:00",
                receipt_id="ga-1",
                amount=eur("420.00"),
            ),
            envelope("referral", "gold-b-ref", "gold-b", "10-02T10:00:00", referrer_id="gold-a"),
            envelope(
                "purchase",
                "gold-b-p1",
                "gold-b",
                "10-03T10:00:00",
                receipt_id="gb-1",
                amount=eur("80.00"),
            ),
        ],
    )
    changed = dict(client.get("/v1/admin/rules", headers=auth("admin")).json()["rules"])
    changed["earn_rate"] = "2"
    answer = client.put(
        "/v1/admin/rules",
        json={"rules": changed, "changed_by": "program-manager", "reason": "double points"},
        headers=auth("admin"),
    )
    assert answer.status_code == 200, answer.text
    post(
        client,
        [
            envelope(
                "purchase",
                "gold-a-p2",
                "gold-a",
                "10-20T10:00:00",
                receipt_id="ga-2",
                amount=eur("99.99"),
            ),
            envelope(
                "review",
                "gold-a-r1",
                "gold-a",
                "10-21T10:00:00",
                rating=9,
                touchpoint="checkout",
                comment="quick and friendly",
            ),
            envelope(
                "refund",
                "gold-a-f1",
                "gold-a",
                "10-22T10:00:00",
                original_event_id="gold-a-p1",
                amount=eur("20.00"),
            ),
            envelope(
                "incident",
                "gold-b-i1",
                "gold-b",
                "10-23T10:00:00",
                severity="high",
                description="order lost",
            ),
            envelope(
                "goodwill",
                "gold-b-g1",
                "gold-b",
                "10-23T12:00:00",
                points=300,
                reason_code="late_delivery",
                incident_id="gold-b-i1",
                issued_by="clerk-1",
            ),
        ],
    )
    for adjustment_id, points in (("adj-small", 40), ("adj-big", 20_000), ("adj-no", 30_000)):
        answer = client.post(
            "/v1/admin/adjustments",
            json={
                "customer_id": "gold-a",
                "adjustment_id": adjustment_id,
                "points": points,
                "reason": "migration fix",
                "requested_by": "ops-1",
            },
            headers=auth("admin"),
        )
        assert answer.status_code == 201, answer.text
    for verb, adjustment_id in (("approve", "adj-big"), ("reject", "adj-no")):
        answer = client.post(
            f"/v1/admin/adjustments/gold-a/{adjustment_id}/{verb}",
            json={"approved_by": "supervisor-2", "note": "checked"},
            headers=auth("admin2"),
        )
        assert answer.status_code == 200, answer.text
    post(
        client,
        [
            envelope(
                "redemption",
                "gold-a-x1",
                "gold-a",
                "11-02T10:00:00",
                points=150,
                reward_id="coffee",
            ),
            envelope(
                "redemption_cancel",
                "gold-a-x1c",
                "gold-a",
                "11-03T10:00:00",
                original_event_id="gold-a-x1",
            ),
        ],
    )


def read(client: TestClient, position: int) -> dict[str, Any]:
    at = {"min_position": position}
    for _ in range(300):  # the in-process chain follower catches up
        verify = client.post("/v1/audit/verify", headers=auth("auditor")).json()
        if verify["unchained"] == 0:
            break
        time.sleep(0.1)
    rules = client.get("/v1/admin/rules", headers=auth("admin")).json()
    answers: dict[str, Any] = {"verify": verify, "rules": rules, "customers": {}}
    for customer in CUSTOMERS:
        for view in READS:
            answer = client.get(
                f"/v1/customers/{customer}/{view}", params=at, headers=auth("service")
            )
            assert answer.status_code == 200, answer.text
            answers["customers"].setdefault(customer, {})[view] = answer.json()
    for view in ("nps", "liability"):
        answer = client.get(f"/v1/programs/default/{view}", params=at, headers=auth("admin"))
        assert answer.status_code == 200, answer.text
        answers[view] = answer.json()
    answers["position"] = position
    return answers


if __name__ == "__main__":
    main()
