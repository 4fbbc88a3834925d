"""The consumer's rebalance contract against a scripted fake of kafka-python's consumer:
records gathered for a revoked partition are abandoned, and a partition the rebalance
gives straight back is rewound to the first abandoned offset (kafka-python keeps its
position), so nothing is skipped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from kafka import TopicPartition

from services.ledger.application.ledger import Ledger
from services.ledger.ingest.kafka_consumer import ConsumerOptions, PosEventConsumer

TOPIC = "loyalty.pos-events.v1"
KEPT, MOVED = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int


def records(tp: TopicPartition, first: int, last: int) -> list[Record]:
    return [Record(tp.topic, tp.partition, offset) for offset in range(first, last + 1)]


class ScriptedConsumer:
    """`poll()` answers from a script; a step may be a callable (a rebalance)."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.assigned = {KEPT, MOVED}
        self.seeks: dict[TopicPartition, int] = {}

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Record]]:
        step = self.script.pop(0) if self.script else {}
        return step() if callable(step) else step

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset


def gatherer(script: list[Any]) -> tuple[PosEventConsumer, ScriptedConsumer]:
    options = ConsumerOptions(bootstrap="unused:9092", batch_size=1000, batch_wait_ms=60_000)
    consumer = PosEventConsumer(cast(Ledger, None), options)
    fake = ScriptedConsumer(script)
    consumer.consumer = fake  # type: ignore[assignment]
    return consumer, fake


def rebalance(
    consumer: Callable[[], PosEventConsumer], fake: Callable[[], ScriptedConsumer]
) -> Any:
    def step() -> dict[TopicPartition, list[Record]]:
        # What kafka-python does inside poll(): the listener hears of the revocation, the
        # new assignment keeps KEPT (with its position, 10) and gives MOVED to another
        # member, then the fetch continues KEPT from where it was.
        consumer()._assignment.on_partitions_revoked({KEPT, MOVED})
        fake().assigned = {KEPT}
        consumer()._assignment.on_partitions_assigned({KEPT})
        return {KEPT: records(KEPT, 10, 14)}

    return step


def test_records_of_revoked_partitions_are_abandoned_and_a_kept_partition_is_rewound() -> None:
    holder: dict[str, Any] = {}
    script = [
        {KEPT: records(KEPT, 0, 9), MOVED: records(MOVED, 0, 4)},
        rebalance(lambda: holder["consumer"], lambda: holder["fake"]),
        {},
    ]
    holder["consumer"], holder["fake"] = gatherer(script)

    batch = holder["consumer"]._gather()

    assert batch == {}, "nothing of the revoked partitions is stored or committed"
    assert holder["fake"].seeks == {KEPT: 0}, "the kept partition is read again from 0"


def test_records_gathered_after_the_rebalance_are_kept() -> None:
    holder: dict[str, Any] = {}
    script = [
        rebalance(lambda: holder["consumer"], lambda: holder["fake"]),
        {KEPT: records(KEPT, 15, 19)},
        {},
    ]
    holder["consumer"], holder["fake"] = gatherer(script)

    batch = holder["consumer"]._gather()

    # Nothing was held when the rebalance came: no rewind, and the fetch goes on.
    assert holder["fake"].seeks == {}
    assert [r.offset for r in batch[KEPT]] == [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
