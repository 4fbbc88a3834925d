"""The `kafka_bootstrap` fixture gives a broker that behaves like Kafka for the ledger:
keyed messages land on one partition per key, a consumer group reads each one back once,
in order per key, and commits its offsets.
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.support.servers import create_topics, kafka_consumer_settings, unique_topic

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

MESSAGES = 100
KEYS = [f"customer-{n}" for n in range(7)]
PARTITIONS = 3


def test_consumer_group_reads_every_keyed_message_once_in_order_and_commits(
    kafka_bootstrap: str,
) -> None:
    topic = unique_topic("smoke.pos-events")
    group = unique_topic("smoke-group")
    create_topics(kafka_bootstrap, [topic], partitions=PARTITIONS)

    sent = _produce(kafka_bootstrap, topic)

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        **{**kafka_consumer_settings(), "group_id": group},
    )
    try:
        received, joined_after = _consume(consumer, expected=MESSAGES, within_seconds=60)
        consumer.commit()
        committed = {p: consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
        assignment = {tp.partition for tp in consumer.assignment()}
    finally:
        consumer.close()

    print(f"group {group}: partitions assigned {joined_after:.2f} s after the first poll")
    assert assignment == set(range(PARTITIONS))

    values = [value for _, _, value in received]
    assert sorted(values) == sorted(value for _, value in sent), "each message exactly once"
    assert len(values) == len(set(values))

    by_key: dict[str, list[str]] = defaultdict(list)
    partitions_of_key: dict[str, set[int]] = defaultdict(set)
    for partition, key, value in received:
        by_key[key].append(value)
        partitions_of_key[key].add(partition)
    sent_by_key: dict[str, list[str]] = defaultdict(list)
    for key, value in sent:
        sent_by_key[key].append(value)
    assert by_key == sent_by_key, "each key's messages in the order they were sent"
    assert all(len(p) == 1 for p in partitions_of_key.values()), "one partition per key"

    # Offsets count records (end_offsets on tansu counts batches, so it is not used here).
    per_partition: dict[int, int] = defaultdict(int)
    for partition, _, _ in received:
        per_partition[partition] += 1
    assert committed == {p: per_partition[p] for p in range(PARTITIONS)}


def _produce(bootstrap: str, topic: str) -> list[tuple[str, str]]:
    """Send MESSAGES keyed messages; return (key, value) in the order they were sent."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    sent = []
    try:
        futures = []
        for n in range(MESSAGES):
            key = KEYS[n % len(KEYS)]
            value = f"{key}:{n:03d}"
            futures.append(producer.send(topic, key=key.encode(), value=value.encode()))
            sent.append((key, value))
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=30)  # raises if the broker refused the message
    finally:
        producer.close(timeout=10)
    return sent


def _consume(
    consumer: KafkaConsumer, expected: int, within_seconds: float
) -> tuple[list[tuple[int, str, str]], float]:
    """Poll until `expected` records came back; return them and the time to assignment."""
    received: list[tuple[int, str, str]] = []
    started = time.monotonic()
    joined_after = -1.0
    while len(received) < expected and time.monotonic() - started < within_seconds:
        for partition, records in consumer.poll(timeout_ms=200).items():
            for record in records:
                received.append((partition.partition, record.key.decode(), record.value.decode()))
        if joined_after < 0 and consumer.assignment():
            joined_after = time.monotonic() - started
    assert len(received) == expected, f"{len(received)} of {expected} within {within_seconds} s"
    return received, joined_after
