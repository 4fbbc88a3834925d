"""A new owner of a source partition reads back which letters the DLQ holds, and sends
none of them again (found by the fault soak, seed 12: 11 refusals dead-lettered twice).

tansu 0.6 answers ListOffsets(latest) with the last record batch's base offset + 1, not
the end: reading back only up to that "end" misses every letter of the last batch but
its first, so after a kill the successor sent them again."""

from __future__ import annotations

from collections import namedtuple
from functools import partial

import pytest
from kafka import KafkaConsumer, KafkaProducer

from services.ledger.ingest.dead_letters import DeadLetter, DeadLetterTopic
from tests.integration.kafka_support import read_topic
from tests.support.servers import create_topics, unique_topic

pytestmark = pytest.mark.kafka

Record = namedtuple("Record", "topic partition offset timestamp key value headers")


def dlq(bootstrap: str, topic: str) -> DeadLetterTopic:
    letters = DeadLetterTopic(
        KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=50),
        topic,
        "test-group",
        reader=partial(
            KafkaConsumer, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        ),
    )
    letters.check_topic()
    return letters


def test_a_successor_sends_no_letter_of_the_last_batch_again(kafka_bootstrap: str) -> None:
    topic = unique_topic("test.dlq")
    create_topics(kafka_bootstrap, [topic], partitions=1)
    refused = [
        DeadLetter(
            Record("pos", 0, offset, 0, b"c1", b"{}", []),
            {"type": "https://loyalty.example/problems/insufficient-points"},
        )
        for offset in (3, 8, 13, 21, 34)
    ]
    first = dlq(kafka_bootstrap, topic)
    first.send_all(first.unsent(refused))  # one request: one record batch of five
    first.producer.close()
    first.close()

    successor = dlq(kafka_bootstrap, topic)  # the batch is read again after a kill
    try:
        again = successor.unsent(refused)
        successor.send_all(again)
    finally:
        successor.producer.close()
        successor.close()
    assert [letter.record.offset for letter in again] == []
    assert len(read_topic(kafka_bootstrap, topic, expected=len(refused))) == len(refused)
