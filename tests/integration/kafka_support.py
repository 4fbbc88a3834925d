"""Shared by the Kafka tests: POS messages, producing them, reading a topic back, and
reading what the ledger stored."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.ledger.application.ledger import Ledger
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.intake import IntakeRecord

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

Headers = list[tuple[str, bytes]]


def pos_event(kind: str, customer: str, event_id: str, minute: int, **fields: Any) -> dict:
    return {
        "event_id": event_id,
        "type": kind,
        "customer_id": customer,
        "occurred_at": (T0 + timedelta(minutes=minute)).isoformat(),
        "store_id": "riga-1",
        "schema_version": 1,
        **fields,
    }


def purchase(customer: str, event_id: str, amount: str, minute: int) -> dict:
    return pos_event(
        "purchase",
        customer,
        event_id,
        minute,
        receipt_id=f"rc-{event_id}",
        amount={"value": amount, "currency": "EUR"},
    )


def redemption(customer: str, event_id: str, points: int, minute: int) -> dict:
    return pos_event("redemption", customer, event_id, minute, points=points, reward_id="coffee")


@dataclass
class Message:
    """One message to produce, and where the broker put it."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    expect: str  # "accepted" | "duplicate" | a problem slug (dead-lettered)
    event_id: str | None = None
    partition: int = -1
    offset: int = -1

    @classmethod
    def of(cls, doc: dict, expect: str, headers: Headers | None = None) -> Message:
        return cls(
            key=str(doc["customer_id"]).encode(),
            value=orjson.dumps(doc),
            headers=headers or [],
            expect=expect,
            event_id=doc.get("event_id"),
        )


def produce(bootstrap: str, topic: str, messages: list[Message]) -> None:
    """Send the messages in order (acks=all) and note each one's partition and offset."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = [
            producer.send(topic, key=m.key, value=m.value, headers=m.headers) for m in messages
        ]
        producer.flush(timeout=30)
        for message, future in zip(messages, futures, strict=True):
            metadata = future.get(timeout=30)
            message.partition, message.offset = metadata.partition, metadata.offset
    finally:
        producer.close(timeout=10)


def read_topic(bootstrap: str, topic: str, expected: int, within_seconds: float = 30) -> list[Any]:
    """Every record of the topic from the beginning, once `expected` have arrived (or the
    time is up: the caller's assertion then says how many came)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        deadline = time.monotonic() + within_seconds
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        # A short extra look for records beyond the expected (there should be none).
        for batch in consumer.poll(timeout_ms=300).values():
            records.extend(batch)
        return records
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        partitions = sorted(consumer.partitions_for_topic(topic))
        return {p: consumer.committed(TopicPartition(topic, p)) for p in partitions}
    finally:
        consumer.close(autocommit=False)


def records_per_partition(messages: list[Message]) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for message in messages:
        counts[message.partition] += 1
    return dict(counts)


def headers_of(record: Any) -> dict[str, bytes]:
    """A record's headers by name (the last occurrence of a repeated name wins)."""
    return dict(record.headers or ())


# ---- the store ---------------------------------------------------------------------------
def stored_events(ledger: Ledger) -> list[tuple[int, Any]]:
    found: list[tuple[int, Any]] = []
    start = 1
    while True:
        page = ledger.recorder.select_notifications(start=start, limit=1000)
        found += [(n.id, ledger.mapper.to_domain_event(n)) for n in page]
        if len(page) < 1000:
            return found
        start = page[-1].id + 1


def intake_event_ids(ledger: Ledger) -> list[str]:
    """The event_id of every intake record in the store, repeats included."""
    return [e.event_id for _, e in stored_events(ledger) if isinstance(e, IntakeRecord.Accepted)]


def purchases_by_customer(ledger: Ledger) -> dict[str, list[str]]:
    """Each customer's recorded purchases (event_ids), in the account's version order."""
    owner: dict[Any, str] = {}
    found: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for _, e in stored_events(ledger):
        if isinstance(e, CustomerAccount.Opened):
            owner[e.originator_id] = e.customer_id
        elif isinstance(e, CustomerAccount.PurchaseRecorded):
            found[owner[e.originator_id]].append((e.originator_version, e.event_id))
    return {customer: [eid for _, eid in sorted(items)] for customer, items in found.items()}
