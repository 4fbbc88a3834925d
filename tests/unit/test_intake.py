"""The intake record's creation event, built directly by the batch path, is the event the
library's `IntakeRecord(...)` constructor makes: same class, id, version, topic and fields
(the timestamp aside), and the library rebuilds the same aggregate from it."""

from __future__ import annotations

from dataclasses import replace

from eventsourcing.domain import Aggregate

from services.ledger.domain.intake import IntakeRecord

FIELDS = {
    "event_id": "pos-17:receipt-0001",
    "customer_id": "cust-42",
    "type": "purchase",
    "fingerprint": "f" * 64,
    "document": {"event_id": "pos-17:receipt-0001", "amount": {"value": "1.00"}},
    "effect": {"points": 1, "status": "pending"},
}


def test_accepted_is_what_the_constructor_records() -> None:
    (constructed,) = IntakeRecord(**FIELDS).collect_events()
    built = IntakeRecord.accepted(**FIELDS)
    assert type(built) is type(constructed) is IntakeRecord.Accepted
    assert built.originator_id == IntakeRecord.create_id(FIELDS["event_id"])
    assert replace(built, timestamp=constructed.timestamp) == constructed


def test_the_library_rebuilds_the_record_from_it() -> None:
    record = IntakeRecord.accepted(**FIELDS).mutate(None)
    assert isinstance(record, IntakeRecord) and isinstance(record, Aggregate)
    assert (record.id, record.version) == (IntakeRecord.create_id(FIELDS["event_id"]), 1)
    for name, value in FIELDS.items():
        assert getattr(record, name) == value
