"""`PosEventConsumer` against a real broker and a real store: every message is accounted
for (stored, a duplicate, or dead-lettered with its reason), and offsets are committed
only after the events are stored."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
import psycopg_pool
import pytest
from eventsourcing.persistence import OperationalError
from kafka.structs import OffsetAndMetadata, TopicPartition

from services.infrastructure.store import StoreURL
from services.ledger.application.ledger import Ledger
from services.ledger.domain.errors import PROBLEM_BASE
from services.ledger.domain.rules import ProgramRules
from services.ledger.ingest import dead_letters as dl
from services.ledger.ingest.kafka_consumer import BatchReport, ConsumerOptions, PosEventConsumer
from tests.integration.kafka_support import (
    Message,
    committed_offsets,
    headers_of,
    intake_event_ids,
    pos_event,
    produce,
    purchase,
    read_topic,
    records_per_partition,
    redemption,
)
from tests.support.servers import create_topics, kafka_consumer_settings, unique_topic

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

PARTITIONS = 3


class SimulatedCrash(Exception):
    """The process died after the store transaction committed, before the offset commit."""


class CrashBeforeCommit(PosEventConsumer):
    def commit_offsets(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        raise SimulatedCrash


@pytest.fixture
def ledger(store_url: str) -> Iterator[Ledger]:
    ledger = Ledger(env=StoreURL.parse(store_url).eventsourcing_env(), rules=ProgramRules())
    yield ledger
    ledger.close()


@pytest.fixture
def topics(kafka_bootstrap: str) -> tuple[str, str]:
    source, dlq = unique_topic("test.pos-events"), unique_topic("test.pos-events-dlq")
    create_topics(kafka_bootstrap, [source, dlq], partitions=PARTITIONS)
    return source, dlq


def options(bootstrap: str, topics: tuple[str, str], group: str) -> ConsumerOptions:
    return ConsumerOptions(
        bootstrap=bootstrap,
        topics=(topics[0],),
        dlq_topic=topics[1],
        group_id=group,
        batch_size=200,
        max_poll_records=50,
        consumer_overrides=kafka_consumer_settings(),
    )


def consume_all(
    consumer: PosEventConsumer, expected: int, within_seconds: float = 60
) -> BatchReport:
    """Run batches until `expected` messages went through; the summed report."""
    total = BatchReport()
    deadline = time.monotonic() + within_seconds
    while total.records < expected and time.monotonic() < deadline:
        report = consumer.run_once()
        if report is None or report.retry:
            continue
        total.records += report.records
        total.accepted += report.accepted
        total.duplicate += report.duplicate
        total.dead_lettered += report.dead_lettered
        total.refused_again += report.refused_again
        total.committed.update(report.committed)
    assert total.records == expected, f"{total.records} of {expected} within {within_seconds} s"
    return total


def the_mix() -> list[Message]:
    """Good, repeated and bad messages; each says what must become of it."""
    anna_first = purchase("anna", "p-anna-1", "100.00", 0)
    too_large = pos_event("review", "erik", "rv-erik-1", 9, rating=9, touchpoint="sales")
    too_large["comment"] = "x" * 70_000
    traced = [("trace-id", b"t-42"), ("source", b"till-7")]
    mix = [
        Message.of(anna_first, "accepted"),
        Message.of(purchase("boris", "p-boris-1", "50.00", 1), "accepted"),
        Message.of(anna_first, "duplicate"),  # the POS retried
        Message(b"anna", b'{"event_id": "half', traced, "malformed-json"),
        Message(b"boris", None, [], "malformed-json"),  # a tombstone
        Message.of(
            pos_event("purchase", "carl", "p-carl-1", 3, receipt_id="r", amount={"value": 9.5}),
            "invalid-event",
            traced,
        ),
        Message.of(redemption("anna", "rd-anna-1", 10, 4), "insufficient-points"),
        Message.of(purchase("anna", "p-anna-1", "999.00", 5), "event-id-conflict"),
        Message.of(
            pos_event(
                "purchase",
                "dana",
                "p-dana-usd",
                6,
                receipt_id="r-usd",
                amount={"value": "5.00", "currency": "USD"},
            ),
            "currency-mismatch",
        ),
        Message(b"erik", orjson.dumps(too_large), [], "payload-too-large"),
    ]
    customers = ["anna", "boris", "carl", "dana", "erik", "fay", "gus"]
    mix += [
        Message.of(purchase(customers[n % 7], f"p-bulk-{n}", f"{10 + n}.00", 10 + n), "accepted")
        for n in range(60)
    ]
    mix.append(Message.of(purchase("boris", "p-boris-1", "50.00", 1), "duplicate"))
    return mix


def test_every_message_is_stored_a_duplicate_or_dead_lettered_with_its_problem(
    kafka_bootstrap: str, topics: tuple[str, str], ledger: Ledger
) -> None:
    messages = the_mix()
    produce(kafka_bootstrap, topics[0], messages)
    group = unique_topic("test-ingest")

    consumer = PosEventConsumer(ledger, options(kafka_bootstrap, topics, group))
    consumer.open()
    try:
        total = consume_all(consumer, len(messages))
    finally:
        consumer.close()

    expected = {s: sum(m.expect == s for m in messages) for s in ("accepted", "duplicate")}
    refused = [m for m in messages if m.expect not in ("accepted", "duplicate")]
    assert (total.accepted, total.duplicate, total.dead_lettered) == (
        expected["accepted"],
        expected["duplicate"],
        len(refused),
    )

    # Stored: one intake record per accepted event_id, none for anything else.
    stored = intake_event_ids(ledger)
    assert sorted(stored) == sorted(m.event_id for m in messages if m.expect == "accepted")

    # Dead-lettered: each refused message once, untouched, with where it came from and why.
    letters = read_topic(kafka_bootstrap, topics[1], expected=len(refused))
    assert len(letters) == len(refused)
    by_source = {(m.partition, m.offset): m for m in refused}
    for letter in letters:
        headers = headers_of(letter)
        source = (int(headers[dl.SOURCE_PARTITION]), int(headers[dl.SOURCE_OFFSET]))
        original = by_source.pop(source)
        problem = orjson.loads(headers[dl.PROBLEM])
        assert problem["type"] == PROBLEM_BASE + original.expect
        assert headers[dl.PROBLEM_TYPE].decode() == problem["type"]
        assert problem["status"] in (400, 409, 413, 422) and problem["detail"]
        assert headers[dl.SOURCE_TOPIC].decode() == topics[0]
        assert headers[dl.CONSUMER_GROUP].decode() == group
        assert letter.key == original.key
        assert letter.value == original.value  # the original bytes, untouched
        assert letter.headers[: len(original.headers)] == original.headers
        if original.event_id is not None and original.expect != "malformed-json":
            assert problem["event_id"] == original.event_id
    assert by_source == {}, "every refused message is in the DLQ"

    # The offsets committed are the end of every partition: nothing is left behind.
    counts = records_per_partition(messages)
    assert committed_offsets(kafka_bootstrap, group, topics[0]) == {
        p: counts.get(p) for p in range(PARTITIONS)
    }
    assert total.committed == {TopicPartition(topics[0], p): n for p, n in counts.items()}


def test_a_crash_between_store_and_commit_redelivers_and_changes_nothing(
    kafka_bootstrap: str, topics: tuple[str, str], ledger: Ledger
) -> None:
    messages = [
        Message.of(purchase(f"c{n % 5}", f"p-{n}", f"{20 + n}.00", n), "accepted")
        for n in range(40)
    ]
    messages.append(Message(b"c1", b"not json", [], "malformed-json"))
    # Nothing is available yet (purchases are pending for 14 days): refused.
    messages.append(Message.of(redemption("c2", "rd-c2", 10, 50), "insufficient-points"))
    produce(kafka_bootstrap, topics[0], messages)
    group = unique_topic("test-crash")
    settings = options(kafka_bootstrap, topics, group)

    # One batch of everything: stored and dead-lettered, then the process dies.
    crashing = CrashBeforeCommit(
        ledger, replace(settings, batch_size=len(messages), batch_wait_ms=10_000)
    )
    crashing.open()
    try:
        deadline = time.monotonic() + 60
        with pytest.raises(SimulatedCrash):
            while crashing.run_once() is None:
                assert time.monotonic() < deadline, "no messages within 60 s"
    finally:
        crashing.close()
    assert sorted(intake_event_ids(ledger)) == sorted(f"p-{n}" for n in range(40))
    assert committed_offsets(kafka_bootstrap, group, topics[0]) == dict.fromkeys(range(PARTITIONS))
    # Meanwhile c2 gets points it could redeem: the refusal must not be judged again.
    ledger.adjust(
        customer_id="c2",
        adjustment_id="top-up",
        points=100,
        reason="test",
        requested_by="ops",
        occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
    )
    position = ledger.position()

    # The next member of the group reads it all again: every event is a duplicate, the
    # refusal is the same refusal, and nothing is dead-lettered twice.
    survivor = PosEventConsumer(ledger, settings)
    survivor.open()
    try:
        total = consume_all(survivor, len(messages))
    finally:
        survivor.close()

    assert (total.accepted, total.duplicate, total.dead_lettered) == (0, 40, 2)
    assert ledger.position() == position, "the redelivered batch changed nothing"
    assert sorted(intake_event_ids(ledger)) == sorted(f"p-{n}" for n in range(40))
    assert ledger.account("c2").redemptions == {}
    counts = records_per_partition(messages)
    assert committed_offsets(kafka_bootstrap, group, topics[0]) == {
        p: counts.get(p) for p in range(PARTITIONS)
    }
    letters = read_topic(kafka_bootstrap, topics[1], expected=3)
    slugs = sorted(headers_of(r)[dl.PROBLEM_TYPE].decode().rpartition("/")[2] for r in letters)
    assert slugs == ["insufficient-points", "malformed-json"], "each refused message once"


def test_a_refused_event_sent_again_gets_the_same_verdict_and_no_second_letter(
    kafka_bootstrap: str, topics: tuple[str, str], ledger: Ledger
) -> None:
    refused = redemption("anna", "rd-anna", 10, 1)
    first = [
        Message.of(purchase("anna", "p-anna", "20.00", 0), "accepted"),
        Message.of(refused, "insufficient-points"),
    ]
    produce(kafka_bootstrap, topics[0], first)
    group = unique_topic("test-refused-again")
    consumer = PosEventConsumer(ledger, options(kafka_bootstrap, topics, group))
    consumer.open()
    try:
        consume_all(consumer, len(first))
        ledger.adjust(
            customer_id="anna",
            adjustment_id="top-up",
            points=100,
            reason="test",
            requested_by="ops",
            occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
        )
        # The POS retries the refused event (a new message, the same event).
        produce(kafka_bootstrap, topics[0], [Message.of(refused, "insufficient-points")])
        again = consume_all(consumer, 1)
    finally:
        consumer.close()
    assert (again.accepted, again.dead_lettered, again.refused_again) == (0, 0, 1)
    assert ledger.account("anna").redemptions == {}
    letters = read_topic(kafka_bootstrap, topics[1], expected=2)
    assert len(letters) == 1


def test_a_poison_message_is_dead_lettered_and_the_events_around_it_are_stored(
    kafka_bootstrap: str, topics: tuple[str, str], ledger: Ledger
) -> None:
    """JSON nested 255 levels deep (783 bytes) made the schema validator raise: the consumer
    stopped on every start and never stored the valid event before it."""
    nested = b'{"event_id": "deep", "type": "purchase", "x": ' + b"[" * 255 + b"]" * 255 + b"}"
    messages = [
        Message.of(purchase("anna", "p-before", "10.00", 0), "accepted"),
        Message(b"anna", nested, [], "invalid-event"),
        Message.of(purchase("anna", "p-after", "11.00", 1), "accepted"),
    ]
    produce(kafka_bootstrap, topics[0], messages)
    group = unique_topic("test-poison")
    consumer = PosEventConsumer(ledger, options(kafka_bootstrap, topics, group))
    consumer.open()
    try:
        total = consume_all(consumer, len(messages))
    finally:
        consumer.close()
    assert (total.accepted, total.dead_lettered) == (2, 1)
    assert sorted(intake_event_ids(ledger)) == ["p-after", "p-before"]
    (letter,) = read_topic(kafka_bootstrap, topics[1], expected=1)
    problem = orjson.loads(headers_of(letter)[dl.PROBLEM])
    assert problem["type"] == PROBLEM_BASE + "invalid-event"
    assert "levels deep" in problem["detail"]
    assert letter.value == nested
    counts = records_per_partition(messages)
    assert committed_offsets(kafka_bootstrap, group, topics[0]) == {
        p: counts.get(p) for p in range(PARTITIONS)
    }


def test_a_store_outage_rewinds_the_batch_and_stores_it_later_without_loss(
    kafka_bootstrap: str, topics: tuple[str, str], ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = [
        Message.of(purchase(f"c{n % 4}", f"p-{n}", f"{30 + n}.00", n), "accepted")
        for n in range(30)
    ]
    produce(kafka_bootstrap, topics[0], messages)
    group = unique_topic("test-outage")
    # The library's error, and the raw ones of the store's other connections (the
    # customers' keys, once their own retries are spent): each is an outage, not a bug
    # that stops the consumer (the fault soak's PostgreSQL restart met the keyring's).
    outages: list[Exception] = [
        OperationalError("connection refused (simulated)"),
        psycopg.OperationalError("server closed the connection unexpectedly (simulated)"),
        psycopg_pool.PoolTimeout("couldn't get a connection after 30.00 sec (simulated)"),
    ]
    record_batch = ledger.record_batch

    def failing(documents: list[dict], sources: Any = None, **options: Any) -> list[Any]:
        if outages:
            raise outages.pop()
        return record_batch(documents, sources, **options)

    monkeypatch.setattr(ledger, "record_batch", failing)
    monkeypatch.setattr("services.ledger.ingest.kafka_consumer.BACKOFF_FIRST", 0.05)
    consumer = PosEventConsumer(ledger, options(kafka_bootstrap, topics, group))
    consumer.open()
    retried = 0
    try:
        total = BatchReport()
        deadline = time.monotonic() + 60
        while total.records < len(messages) and time.monotonic() < deadline:
            report = consumer.run_once()
            if report is not None and report.retry:
                retried += 1
            elif report is not None:
                total.records += report.records
                total.accepted += report.accepted
    finally:
        consumer.close()

    assert retried == 3 and outages == []
    assert (total.records, total.accepted) == (30, 30)
    assert sorted(intake_event_ids(ledger)) == sorted(f"p-{n}" for n in range(30))
    counts = records_per_partition(messages)
    assert committed_offsets(kafka_bootstrap, group, topics[0]) == {
        p: counts.get(p) for p in range(PARTITIONS)
    }
