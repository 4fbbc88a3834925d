"""Out of order from Kafka (SPEC §8): purchases produced with kafka-python (murmur2, the
contract's partitioner) and their refunds with confluent-kafka (librdkafka's default,
`consistent_random`: CRC32, so most refunds land on another partition than their
purchase) to a four-partition topic, read by two `loyalty consume` processes in one group
on PostgreSQL. Refunds that come before their purchase are parked, not dead-lettered;
every refund ends applied exactly once, to its purchase."""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from eventsourcing.application import AggregateNotFoundError

from services.infrastructure.store import StoreURL
from services.ledger.application.ledger import Ledger
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.clock import iso, utcnow
from services.ledger.domain.intake import IntakeRecord
from services.ledger.domain.rules import load_rules_file
from tests.integration.kafka_support import Message, produce, read_topic, stored_events
from tests.integration.test_kafka_rebalance import Consumer, consumers, wait_for
from tests.support.servers import create_topics, unique_topic

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(300)]

__all__ = ["consumers"]  # the fixture, shared with the rebalance test

PARTITIONS = 4
CUSTOMERS = 30
PER_CUSTOMER = 3
START = utcnow().replace(microsecond=0) - timedelta(days=2)


def event(kind: str, customer: str, event_id: str, minute: int, **fields: Any) -> dict:
    return {
        "event_id": event_id,
        "type": kind,
        "customer_id": customer,
        "occurred_at": iso(START + timedelta(minutes=minute)),
        "store_id": "riga-1",
        "schema_version": 1,
        **fields,
    }


def produce_with_librdkafka(bootstrap: str, topic: str, docs: list[dict]) -> None:
    """With librdkafka's default partitioner (no `partitioner` setting), keyed as the
    contract says: by customer_id."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    failures: list[Any] = []
    for doc in docs:
        producer.produce(
            topic,
            key=doc["customer_id"].encode(),
            value=orjson.dumps(doc),
            on_delivery=lambda error, _msg: failures.append(error) if error else None,
        )
        producer.poll(0)
    assert producer.flush(30) == 0 and not failures, failures


def test_refunds_on_other_partitions_than_their_purchases_apply_exactly_once(
    kafka_bootstrap: str, postgres_url: str, tmp_path: Path, consumers: list[Consumer]
) -> None:
    topic, dlq = unique_topic("test.pos-events"), unique_topic("test.pos-events-dlq")
    create_topics(kafka_bootstrap, [topic], partitions=PARTITIONS)
    create_topics(kafka_bootstrap, [dlq], partitions=1)
    group = unique_topic("test-parking")
    env = {
        **os.environ,
        "LOYALTY_STORE": postgres_url,
        "LOYALTY_VAR_DIR": str(tmp_path),
        "LOYALTY_API_KEYS": "pos:pos-key-000000000000",
        "LOYALTY_CONSUME_METRICS_PORT": "0",
        "PYTHONUNBUFFERED": "1",
    }
    args = [
        *("--bootstrap", kafka_bootstrap, "--topic", topic, "--dlq-topic", dlq),
        *("--group-id", group, "--fast-rebalance", "--report-every", "0.5"),
        *("--batch-size", "50", "--max-poll-records", "50", "--metrics-port", "0"),
    ]
    for name in ("one", "two"):
        consumers.append(Consumer(name, args, env, tmp_path / f"{name}.log"))
    wait_for(
        lambda: set().union(*(c.assigned(topic) for c in consumers)) == set(range(PARTITIONS)),
        60,
        "the two members share the partitions",
        *consumers,
    )

    purchases, refunds = [], []
    for c in range(CUSTOMERS):
        for k in range(PER_CUSTOMER):
            customer, n = f"c{c:02d}", c * PER_CUSTOMER + k
            purchases.append(
                event(
                    "purchase",
                    customer,
                    f"buy-{n:04d}",
                    n,
                    receipt_id=f"rc-{n:04d}",
                    amount={"value": "50.00", "currency": "EUR"},
                )
            )
            refunds.append(
                event(
                    "refund",
                    customer,
                    f"ref-{n:04d}",
                    n + 600,
                    original_event_id=f"buy-{n:04d}",
                    amount={"value": "20.00", "currency": "EUR"},
                )
            )
    ledger = Ledger(env=StoreURL.parse(postgres_url).eventsourcing_env(), rules=load_rules_file())

    def verdicts(docs: list[dict]) -> dict[str, Any]:
        found = {}
        for doc in docs:
            try:
                found[doc["event_id"]] = ledger.repository.get(
                    IntakeRecord.create_id(doc["event_id"])
                )
            except AggregateNotFoundError:  # not stored yet
                continue
        return found

    # The first third of the refunds before any purchase: parked (and committed); the rest
    # while the purchases stream in (parked, or applied at once: whichever wins the race).
    third = len(refunds) // 3
    produce_with_librdkafka(kafka_bootstrap, topic, refunds[:third])
    wait_for(
        lambda: sum(r.parked for r in verdicts(refunds[:third]).values()) == third,
        60,
        "the first refunds parked",
        *consumers,
    )
    assert len(ledger.parked.page(0, 500)[0]) == third
    rest = threading.Thread(
        target=produce_with_librdkafka, args=(kafka_bootstrap, topic, refunds[third:])
    )
    rest.start()
    produce(kafka_bootstrap, topic, [Message.of(doc, "accepted") for doc in purchases])
    rest.join(timeout=60)

    def all_applied() -> bool:
        found = verdicts(refunds)
        return len(found) == len(refunds) and not any(r.parked for r in found.values())

    wait_for(all_applied, 120, "every refund stored and none left parked", *consumers)
    for event_id, record in verdicts(refunds).items():
        assert record.refusal is None, (event_id, record.refusal)
        assert record.effect["points_reversed"] == 20, (event_id, record.effect)

    # Exactly once: one RefundRecorded per refund, on its purchase; no dead letter.
    events = [e for _, e in stored_events(ledger)]
    applied = Counter(e.event_id for e in events if isinstance(e, CustomerAccount.RefundRecorded))
    assert applied == Counter({doc["event_id"]: 1 for doc in refunds})
    assert ledger.parked.page(0, 500)[0] == []
    for doc in purchases:
        account = ledger.account(doc["customer_id"])
        assert account.purchases[doc["event_id"]].refunded == 20
        assert account.parked == {}
    for consumer in consumers:
        log = consumer.log()
        assert set(re.findall(r"(\d+) dead-lettered", log)) <= {"0"}, log[-3000:]
    ledger.close()


def test_a_parked_message_refused_later_is_dead_lettered_once(
    kafka_bootstrap: str, postgres_url: str, tmp_path: Path, consumers: list[Consumer]
) -> None:
    """SPEC §8: committed as parked, no letter; once the sweep refuses it (its purchase
    never came), the consumer sends the letter it owes: the original message, the
    `unknown-original-event` problem, once."""
    topic, dlq = unique_topic("test.pos-events"), unique_topic("test.pos-events-dlq")
    create_topics(kafka_bootstrap, [topic], partitions=2)
    create_topics(kafka_bootstrap, [dlq], partitions=2)
    env = {
        **os.environ,
        "LOYALTY_STORE": postgres_url,
        "LOYALTY_VAR_DIR": str(tmp_path),
        "LOYALTY_API_KEYS": "pos:pos-key-000000000000",
        "PYTHONUNBUFFERED": "1",
    }
    args = [
        *("--bootstrap", kafka_bootstrap, "--topic", topic, "--dlq-topic", dlq),
        *("--group-id", unique_topic("test-late"), "--fast-rebalance", "--report-every", "0.5"),
        *("--metrics-port", "0"),
    ]
    consumers.append(Consumer("only", args, env, tmp_path / "only.log"))
    wait_for(lambda: consumers[0].assigned(topic) == {0, 1}, 60, "assigned", *consumers)

    orphan = event(
        "refund",
        "c-late",
        "ref-orphan",
        0,
        original_event_id="buy-never",
        amount={"value": "3.00", "currency": "EUR"},
    )
    message = Message.of(orphan, "parked")
    produce(kafka_bootstrap, topic, [message])
    ledger = Ledger(env=StoreURL.parse(postgres_url).eventsourcing_env(), rules=load_rules_file())

    def record_() -> Any:
        try:
            return ledger.repository.get(IntakeRecord.create_id("ref-orphan"))
        except AggregateNotFoundError:
            return None

    wait_for(lambda: record_() is not None and record_().parked, 60, "parked", *consumers)
    assert read_topic(kafka_bootstrap, dlq, expected=1, within_seconds=2) == []

    swept = ledger.tick(utcnow() + timedelta(days=10), ["c-late"])
    assert {"customer_id": "c-late", "action": "parked_expired", "event_id": "ref-orphan"} in (
        swept.recorded
    )
    wait_for(lambda: record_().dead_lettered, 60, "the late letter sent", *consumers)
    (letter,) = read_topic(kafka_bootstrap, dlq, expected=2, within_seconds=8)  # 5 s apart
    headers = dict(letter.headers)
    assert letter.value == message.value and letter.key == message.key
    assert headers["loyalty-late-verdict"] == b"true"
    assert headers["loyalty-source-offset"] == str(message.offset).encode()
    problem = orjson.loads(headers["loyalty-problem"])
    assert problem["type"].endswith("/unknown-original-event")
    assert problem["event_id"] == "ref-orphan"
    ledger.close()
