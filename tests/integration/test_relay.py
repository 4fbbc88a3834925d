"""`OutboxRelay`: the projection outbox to a real broker, at least once, in order per
customer, with a stable `message-id`; a crash between producing and marking republishes."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from services.infrastructure.sql import Cursor, Database
from services.infrastructure.store import StoreURL
from services.projections.relay import OutboxRelay, OutboxRow, relay_producer
from services.projections.tables import ProjectionTables
from tests.integration.kafka_support import headers_of, read_topic
from tests.support.servers import create_topics, unique_topic

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

KINDS = ("BalanceChanged", "TierChanged", "SegmentChanged", "TrustStatusChanged")
CUSTOMERS = ("anna", "boris", "carl", "dana", "erik")


class SimulatedCrash(Exception):
    """The relay died after Kafka acknowledged, before the rows were marked."""


class CrashBeforeMark(OutboxRelay):
    def mark_published(self, cur: Cursor, rows: list[OutboxRow]) -> None:
        raise SimulatedCrash


@pytest.fixture
def db(store_url: str) -> Iterator[Database]:
    db = Database(StoreURL.parse(store_url))
    yield db
    db.close()


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = unique_topic("test.projections")
    create_topics(kafka_bootstrap, [name], partitions=3)
    return name


def append_changes(db: Database, count: int) -> list[tuple[str, str]]:
    """`count` outbox rows as the projection runner writes them, the customers interleaved;
    returns (customer_id, message_id) in outbox order."""
    tables = ProjectionTables(db)
    tables.create()
    rows = []
    for position in range(1, count + 1):
        customer = CUSTOMERS[position % len(CUSTOMERS)]
        kind = KINDS[position % len(KINDS)]
        message_id = f"{kind}:{customer}:{position}"
        payload = {"message_id": message_id, "kind": kind, "customer_id": customer}
        payload["position"] = position
        rows.append(
            (message_id, customer, kind, orjson.dumps(payload).decode(), position, "2026-03-02")
        )
    with db.transaction() as cur:
        tables.append(cur, "outbox", rows)
    return [(row[1], row[0]) for row in rows]


def unpublished(db: Database) -> int:
    with db.reading() as cur:
        row = cur.execute("SELECT count(*) FROM proj_outbox WHERE published_at IS NULL").fetchone()
    return int(row[0]) if row else -1


def by_customer(records: list[Any]) -> dict[str, list[str]]:
    """The message ids each customer's partition holds, in offset order."""
    found: dict[str, list[str]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        found[record.key.decode()].append(headers_of(record)["message-id"].decode())
    return dict(found)


def in_order(changes: list[tuple[str, str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for customer, message_id in changes:
        found[customer].append(message_id)
    return dict(found)


def test_the_relay_publishes_the_outbox_in_order_per_customer_and_marks_it(
    kafka_bootstrap: str, db: Database, topic: str
) -> None:
    changes = append_changes(db, 40)
    relay = OutboxRelay(db, relay_producer(kafka_bootstrap), topic, batch_size=7)
    try:
        assert relay.outbox_exists()
        published = [relay.publish_once() for _ in range(7)]
        assert published == [7, 7, 7, 7, 7, 5, 0]
    finally:
        relay.close()
    assert unpublished(db) == 0

    records = read_topic(kafka_bootstrap, topic, expected=len(changes))
    assert len(records) == len(changes)
    assert by_customer(records) == in_order(changes)
    for record in records:
        payload = orjson.loads(record.value)
        headers = headers_of(record)
        assert headers["message-id"].decode() == payload["message_id"]
        assert headers["kind"].decode() == payload["kind"]
        assert int(headers["position"]) == payload["position"]
        assert record.key.decode() == payload["customer_id"]


def test_a_crash_between_produce_and_mark_republishes_with_the_same_message_ids(
    kafka_bootstrap: str, db: Database, topic: str
) -> None:
    changes = append_changes(db, 30)
    first = OutboxRelay(db, relay_producer(kafka_bootstrap), topic, batch_size=10)
    try:
        assert first.publish_once() == 10
    finally:
        first.close()

    crashing = CrashBeforeMark(db, relay_producer(kafka_bootstrap), topic, batch_size=10)
    try:
        with pytest.raises(SimulatedCrash):
            crashing.publish_once()  # rows 11-20 reach Kafka, the marks are rolled back
    finally:
        crashing.close()
    assert unpublished(db) == 20

    restarted = OutboxRelay(db, relay_producer(kafka_bootstrap), topic, batch_size=10)
    try:
        while restarted.publish_once():
            pass
    finally:
        restarted.close()
    assert unpublished(db) == 0

    records = read_topic(kafka_bootstrap, topic, expected=40)
    assert len(records) == 40, "rows 11-20 twice: at least once"
    # Each pass keeps the outbox order; a consumer that drops repeated message ids sees
    # every change once, in order per customer.
    republished = changes[:10] + changes[10:20] + changes[10:20] + changes[20:]
    assert by_customer(records) == in_order(republished)
    deduplicated = {
        customer: list(dict.fromkeys(message_ids))
        for customer, message_ids in by_customer(records).items()
    }
    assert deduplicated == in_order(changes)


def test_two_relays_publish_in_turn_never_twice_and_never_interleaved(
    kafka_bootstrap: str, db: Database, store_url: str, topic: str
) -> None:
    changes = append_changes(db, 60)
    relays = [
        OutboxRelay(
            Database(StoreURL.parse(store_url)),
            relay_producer(kafka_bootstrap),
            topic,
            batch_size=5,
        )
        for _ in range(2)
    ]

    def drain(relay: OutboxRelay) -> None:
        while relay.publish_once():
            pass

    threads = [threading.Thread(target=drain, args=(relay,)) for relay in relays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for relay in relays:
        relay.close()
        relay.db.close()
    assert sum(relay.published for relay in relays) == len(changes)
    records = read_topic(kafka_bootstrap, topic, expected=len(changes))
    assert len(records) == len(changes)
    assert by_customer(records) == in_order(changes)
