"""Erasure that keeps the books (SPEC §11), on both stores: a customer in a large-ish
history is erased by two admins; afterwards their personal fields read as `erased` in the
API, the timeline, the audit history and export, and the change feed says so, while
points, lots, tier, LTV, trust and the program's liability are what they were, the
replay is clean and the hash chain verifies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from fastapi.testclient import TestClient

from services.api import create_app
from services.audit.replay import replay
from services.audit.verify import verify
from services.bootstrap import Container, build
from services.infrastructure.store import StoreURL, open_recorder
from services.resources import schema_dir
from services.settings import Settings
from tests.integration.audit_support import KEYS, HistoryMaker, raw_events

SECOND_ADMIN = "admin-key-1111111111"
WHO = "cust-1"
COMMENT = "Mrs Example, 12 High Street: the cashier was rude"
DESCRIPTION = "slipped on the wet floor near the bakery, bruised knee"
REFUND_REASON = "allergic reaction to the hazelnuts"
NOTE = "she phones every week; see her medical note"
SECRETS = (COMMENT, DESCRIPTION, REFUND_REASON, NOTE)


def headers(role: str, key: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key or KEYS[role]}"}


@pytest.fixture
def ledger(
    store_url: str, tmp_path: Path
) -> Iterator[tuple[Container, TestClient, str, HistoryMaker]]:
    keys = ",".join(f"{role}:{key}" for role, key in KEYS.items())
    settings = Settings(
        store=store_url,
        api_keys=f"{keys},admin:{SECOND_ADMIN}",
        var_dir=tmp_path,
        projections_in_process=True,
    )
    container = build(settings)
    maker = HistoryMaker(seed=16, customers=8)
    maker.now = datetime(2025, 1, 1, tzinfo=UTC)  # ~600 events later: before today
    for n in range(60):  # ~600 events, the erased customer's personal ones among them
        batch = maker.batch(9)
        if n == 20:
            batch += personal_events(maker)
        container.ledger.record_batch(batch)
        container.tick(maker.now)
    with TestClient(create_app(container)) as client:
        yield container, client, store_url, maker
    container.close()


def personal_events(maker: HistoryMaker) -> list[dict[str, Any]]:
    review = {**maker._envelope("review", WHO), "rating": 2, "touchpoint": "sales"}
    review["comment"] = COMMENT
    incident = {**maker._envelope("incident", WHO), "severity": "major"}
    incident["description"] = DESCRIPTION
    refund = {**maker._envelope("refund", WHO), "reason": REFUND_REASON}
    refund["original_event_id"] = maker.purchases[WHO][0]
    refund["amount"] = {"value": "1.00", "currency": "EUR"}
    goodwill = {**maker._envelope("goodwill", WHO), "points": 9000}
    goodwill.update(reason_code="late-delivery", issued_by="agent-1", event_id="gw-big")
    return [review, incident, refund, goodwill]


def customer_answers(client: TestClient) -> dict[str, Any]:
    answers = {
        part: client.get(f"/v1/customers/{WHO}/{part}", headers=headers("service")).json()
        for part in ("balance", "tier", "segment", "trust", "ltv")
    }
    liability = client.get("/v1/programs/default/liability", headers=headers("auditor"))
    answers["liability"] = liability.json()
    for answer in answers.values():
        answer.pop("position", None)
        answer.pop("why", None)  # it names the clock's "now"
    return answers


def timeline(client: TestClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        answer = client.get(
            f"/v1/customers/{WHO}/timeline",
            params={"limit": 100, "after_position": after},
            headers=headers("service"),
        )
        assert answer.status_code == 200, answer.text
        items += answer.json()["items"]
        after = answer.json()["next"]
        if after is None:
            return items


def history(client: TestClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"customer_id": WHO, "limit": 100}
    while True:
        answer = client.get("/v1/audit/events", params=params, headers=headers("auditor"))
        assert answer.status_code == 200, answer.text
        items += answer.json()["items"]
        if answer.json()["next"] is None:
            return items
        params["from_position"] = answer.json()["next"]


def personal_values(items: list[dict[str, Any]]) -> list[Any]:
    """The personal fields of an audit history: account events' and intake documents'."""
    found = []
    for item in items:
        fields = item["fields"]
        personal = item["type"] in ("ReviewRecorded", "IncidentReported", "GoodwillRejected")
        for name in ("comment", "description", "note"):
            if personal and fields.get(name) is not None:
                found.append(fields[name])
        document = fields.get("document") or {}
        for name in ("comment", "description", "reason"):
            if document.get(name) is not None:
                found.append(document[name])
    return found


def test_an_erased_customer_keeps_the_books_and_loses_the_personal_data(
    ledger: tuple[Container, TestClient, str, HistoryMaker],
) -> None:
    container, client, url, maker = ledger
    reject = client.post(
        "/v1/admin/goodwill/gw-big/reject",
        json={"approved_by": "supervisor-1", "note": NOTE},
        headers=headers("admin"),
    )
    assert reject.status_code == 200, reject.text
    container.projections.runner.catch_up()

    assert container.ledger.position() > 1000  # a large-ish history around the customer

    # Before: the personal fields are readable through the API, never in the stored bytes.
    words = [item["effect"]["summary"] for item in timeline(client)]
    assert any(DESCRIPTION in w for w in words)
    notes = [i["effect"].get("note") for i in timeline(client) if i["type"] == "GoodwillRejected"]
    assert notes == [NOTE]
    readable = personal_values(history(client))
    assert set(SECRETS) <= set(readable) and "erased" not in readable
    with raw_events(url) as (conn, table, _):
        states = [bytes(s) for (s,) in conn.execute(f"SELECT state FROM {table}").fetchall()]
    assert states and not any(secret.encode() in s for s in states for secret in SECRETS)
    before = customer_answers(client)

    # Four eyes: asked by one admin, refused to the same person and the same key.
    asked = client.post(
        f"/v1/admin/customers/{WHO}/erase",
        json={"requested_by": "dpo-anna", "reason": "ticket GDPR-2026-17"},
        headers=headers("admin"),
    )
    assert asked.status_code == 202, asked.text
    container.projections.runner.catch_up()
    waiting = client.get("/v1/admin/approvals", headers=headers("admin")).json()["waiting"]
    erasure = [w for w in waiting if w["kind"] == "erasure"]
    assert [(w["customer_id"], w["requested_by"]) for w in erasure] == [(WHO, "dpo-anna")]
    same_person = client.post(
        f"/v1/admin/customers/{WHO}/erase/approve",
        json={"approved_by": "dpo-anna"},
        headers=headers("admin", SECOND_ADMIN),
    )
    same_key = client.post(
        f"/v1/admin/customers/{WHO}/erase/approve",
        json={"approved_by": "cfo-bert"},
        headers=headers("admin"),
    )
    assert (same_person.status_code, same_key.status_code) == (403, 403)
    approved = client.post(
        f"/v1/admin/customers/{WHO}/erase/approve",
        json={"approved_by": "cfo-bert"},
        headers=headers("admin", SECOND_ADMIN),
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["effect"]["status"] == "erased"
    again = client.post(
        f"/v1/admin/customers/{WHO}/erase",
        json={"requested_by": "dpo-anna", "reason": "again"},
        headers=headers("admin"),
    )
    assert again.status_code == 409
    nobody = client.post(
        "/v1/admin/customers/nobody-at-all/erase",
        json={"requested_by": "dpo-anna", "reason": "ticket 0"},
        headers=headers("admin"),
    )
    assert nobody.status_code == 404

    container.projections.runner.catch_up()
    container.audit.follower.catch_up()

    # After: erased everywhere people read, the books as they were.
    assert customer_answers(client) == before
    items = timeline(client)
    assert not any(secret in orjson.dumps(items).decode() for secret in SECRETS)
    assert any("incident (major): erased" in i["effect"]["summary"] for i in items)
    assert [i["effect"]["note"] for i in items if i["type"] == "GoodwillRejected"] == ["erased"]
    assert [i["type"] for i in items[-2:]] == ["ErasureRequested", "CustomerErased"]
    found = personal_values(history(client))
    assert len(found) == len(readable) and set(found) == {"erased"}

    # The customer keeps coming; a comment a POS sends now is never readable either.
    later = {**maker._envelope("review", WHO), "rating": 10, "touchpoint": "service"}
    later["comment"] = "my new address is 1 Other Road"
    assert container.ledger.record(later).status == "accepted"
    container.projections.runner.catch_up()
    container.audit.follower.catch_up()
    assert personal_values(history(client))[-2:] == ["erased", "erased"]

    # The change feed tells downstream consumers, with no personal data.
    with raw_events(url) as (conn, _, _):
        rows = conn.execute(
            "SELECT payload FROM proj_outbox WHERE kind = 'CustomerErased'"
        ).fetchall()
        key = conn.execute(
            "SELECT key, erased_at FROM customer_keys WHERE customer_id = ?", (WHO,)
        ).fetchone()
    assert key[0] is None and key[1]
    [payload] = [orjson.loads(row[0]) for row in rows]
    schema = orjson.loads((schema_dir() / "projections" / "CustomerErased.v1.json").read_bytes())
    jsonschema.Draft202012Validator(schema).validate(payload)
    assert payload["customer_id"] == WHO

    # The export holds ciphertext only; the replay is clean; the chain verifies.
    export = client.get("/v1/audit/export", headers=headers("auditor"))
    assert export.status_code == 200
    assert not any(secret in export.text for secret in SECRETS)
    recorder, factory = open_recorder(StoreURL.parse(url))
    try:
        report = replay(recorder, StoreURL.parse(url))
        assert report.ok, report.differences[:5]
        result = verify(recorder, container.audit.chain)
        assert result.ok and result.checked == container.ledger.position()
    finally:
        factory.close()
