"""A late letter (a parked message refused after its batch was committed, SPEC §8) is
sent once, even when the consumer dies after the DLQ acknowledged it and before the store
recorded that it was sent: the next owner reads the DLQ back and finds it.

Before, the next owner sent it again (RELIABILITY.md: "late letters at least once")."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from services.infrastructure.store import StoreURL
from services.ledger.application.ledger import Ledger
from services.ledger.domain.clock import iso, utcnow
from services.ledger.domain.intake import IntakeRecord
from services.ledger.domain.rules import ProgramRules
from services.ledger.ingest import dead_letters as dl
from services.ledger.ingest.kafka_consumer import ConsumerOptions, PosEventConsumer
from tests.integration.kafka_support import Message, headers_of, produce, read_topic
from tests.support.servers import create_topics, unique_topic

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


class DiedBeforeMarking(Exception):
    """The process died after the DLQ acknowledged the letters, before the store write."""


class DiesBeforeMarking:
    """The ledger as the late-letter sender sees it, dying at `late_dead_lettered`."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)

    def late_dead_lettered(self, *_: Any, **__: Any) -> None:
        raise DiedBeforeMarking


def orphan_refund(customer: str, event_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "refund",
        "customer_id": customer,
        "occurred_at": iso(utcnow().replace(microsecond=0) - timedelta(days=1)),
        "store_id": "riga-1",
        "schema_version": 1,
        "original_event_id": f"never-{event_id}",
        "amount": {"value": "3.00", "currency": "EUR"},
    }


def until(condition: Callable[[], bool], step: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        step()


def test_a_late_letter_sent_before_a_crash_is_not_sent_again(
    kafka_bootstrap: str, store_url: str
) -> None:
    source, dlq = unique_topic("test.pos-events"), unique_topic("test.pos-events-dlq")
    create_topics(kafka_bootstrap, [source, dlq], partitions=1)
    group = unique_topic("group")
    options = ConsumerOptions(
        bootstrap=kafka_bootstrap,
        topics=(source,),
        dlq_topic=dlq,
        group_id=group,
        batch_size=50,
        max_poll_records=50,
        fast_rebalance=True,
    )
    env = StoreURL.parse(store_url).eventsourcing_env()
    messages = [Message.of(orphan_refund("c-late", f"ref-{n}"), "parked") for n in range(3)]
    produce(kafka_bootstrap, source, messages)

    ledger = Ledger(env=env, rules=ProgramRules())
    first = PosEventConsumer(ledger, options)
    first.open()
    records = lambda: [  # noqa: E731
        ledger.repository.get(IntakeRecord.create_id(f"ref-{n}")) for n in range(3)
    ]
    try:
        until(lambda: first.totals.parked == 3, first.run_once, "three parked")
        swept = ledger.tick(utcnow() + timedelta(days=10), ["c-late"])
        assert sum(item["action"] == "parked_expired" for item in swept.recorded) == 3
        assert first.late_letters is not None
        first.late_letters.ledger = DiesBeforeMarking(ledger)  # type: ignore[assignment]
        with pytest.raises(DiedBeforeMarking):
            first.late_letters.send_owed(first._consumer().assignment(), force=True)
        assert len(read_topic(kafka_bootstrap, dlq, expected=3)) == 3
        assert not any(record.dead_lettered for record in records())
    finally:
        first.close()  # it died: the next process owns the partition
        ledger.close()

    ledger = Ledger(env=env, rules=ProgramRules())
    successor = PosEventConsumer(ledger, options)
    successor.open()
    try:
        until(lambda: bool(successor._consumer().assignment()), successor.run_once, "assigned")
        assert successor.late_letters is not None
        sent = successor.late_letters.send_owed(successor._consumer().assignment(), force=True)
        assert sent == 0
        assert all(record.dead_lettered for record in records())
        letters = read_topic(kafka_bootstrap, dlq, expected=4, within_seconds=5)
        offsets = sorted(int(headers_of(letter)[dl.SOURCE_OFFSET]) for letter in letters)
        assert offsets == sorted(message.offset for message in messages)
    finally:
        successor.close()
        ledger.close()
