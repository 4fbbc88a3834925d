"""Receipts are unique per (store_id, receipt_id) across all customers (SPEC §8): a second
customer's purchase of a receipt is refused `duplicate-receipt`, the same receipt number
at another store is another receipt, and two writers racing with one receipt for two
customers clash in the store: one wins, the other is refused."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from services.ledger.application.ledger import Ledger
from services.ledger.domain import stored_schemas, topics
from services.ledger.domain.receipts import ReceiptRecord

ROOT = Path(__file__).parents[2]


def purchase(event_id: str, customer: str, receipt: str, store: str | None = "s1") -> Any:
    doc = {
        "event_id": event_id,
        "type": "purchase",
        "customer_id": customer,
        "occurred_at": "2026-11-30T10:00:00+00:00",
        "schema_version": 1,
        "receipt_id": receipt,
        "amount": {"value": "12.00", "currency": "EUR"},
    }
    if store is not None:
        doc["store_id"] = store
    return doc


def ledger(env: dict[str, str] | None = None) -> Ledger:
    return Ledger(env or {"PERSISTENCE_MODULE": "eventsourcing.popo"})


def test_a_receipt_used_by_one_customer_is_refused_for_another() -> None:
    app = ledger()
    assert app.record(purchase("e1", "ana", "r-1")).status == "accepted"
    outcome = app.record(purchase("e2", "ben", "r-1"))
    assert outcome.status == "rejected" and outcome.error is not None
    assert outcome.error.slug == "duplicate-receipt" and outcome.error.field == "receipt_id"
    assert app.find_account("ben") is None  # the refusal touched no account


def test_the_same_receipt_number_at_another_store_is_another_receipt() -> None:
    app = ledger()
    outcomes = app.record_batch(
        [
            purchase("e1", "ana", "r-1", "s1"),
            purchase("e2", "ben", "r-1", "s2"),
            purchase("e3", "cem", "r-1", None),
            purchase("e4", "dan", "r-1", "s2"),  # in the same batch: refused
        ]
    )
    assert [o.status for o in outcomes] == ["accepted", "accepted", "accepted", "rejected"]


def test_two_writers_racing_with_one_receipt_accept_it_once(tmp_path: Path) -> None:
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "l.db")}
    first, second = ledger(env), ledger(env)
    start = threading.Barrier(2)
    outcomes: dict[str, Any] = {}

    def send(app: Ledger, customer: str) -> None:
        start.wait()
        outcomes[customer] = app.record(purchase(f"e-{customer}", customer, "r-race"))

    threads = [
        threading.Thread(target=send, args=(first, "ana")),
        threading.Thread(target=send, args=(second, "ben")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(o.status for o in outcomes.values())
    assert statuses == ["accepted", "rejected"], outcomes
    refused = next(o for o in outcomes.values() if o.status == "rejected")
    assert refused.error is not None and refused.error.slug == "duplicate-receipt"
    first.close()
    second.close()


def test_the_receipt_record_matches_its_stored_schema() -> None:
    app = ledger()
    app.record(purchase("e1", "ana", "r-1"))
    record: ReceiptRecord = app.repository.get(ReceiptRecord.create_id("s1", "r-1"))
    assert (record.customer_id, record.event_id) == ("ana", "e1")
    (found,) = [
        n
        for n in app.recorder.select_notifications(start=1, limit=100)
        if n.topic == topics.RECEIPT_EVENTS["Used"]
    ]
    name = stored_schemas.file_name("receipt", ReceiptRecord.Used)
    schema = orjson.loads((ROOT / "schemas" / "stored" / name).read_bytes())
    jsonschema.Draft202012Validator(schema).validate(orjson.loads(found.state))
