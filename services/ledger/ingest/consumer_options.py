"""How a ledger consumer reads (`ConsumerOptions`) and what one batch did (`BatchReport`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition

from services.infrastructure.kafka_settings import consumer_tuning

POS_TOPIC = "loyalty.pos-events.v1"
DLQ_TOPIC = "loyalty.pos-events.dlq"
GROUP_ID = "loyalty-ledger"


@dataclass(frozen=True)
class ConsumerOptions:
    """How a ledger consumer reads. `consumer_overrides` go to `KafkaConsumer` last."""

    bootstrap: str
    topics: tuple[str, ...] = (POS_TOPIC,)
    dlq_topic: str = DLQ_TOPIC
    group_id: str = GROUP_ID
    client_id: str = "loyalty-consume"
    batch_size: int = 2000  # most events stored in one transaction
    max_poll_records: int = 2000  # most records one poll() returns
    batch_wait_ms: int = 200  # how long to keep polling to fill a batch (added latency)
    poll_timeout_ms: int = 500  # an idle poll's wait; also how fast stop() is noticed
    fast_rebalance: bool = False  # consumer_tuning's profile for tests and demos
    consumer_overrides: Mapping[str, Any] = field(default_factory=dict)

    def consumer_kwargs(self) -> dict[str, Any]:
        kwargs = {
            **consumer_tuning(self.fast_rebalance),
            "max_poll_records": self.max_poll_records,
            # Room for a whole batch per partition fetch: fewer round trips per batch.
            "max_partition_fetch_bytes": 4 * 1024 * 1024,
            **self.consumer_overrides,
            "bootstrap_servers": self.bootstrap,
            "group_id": self.group_id,
            "client_id": self.client_id,
        }
        if kwargs["enable_auto_commit"]:
            raise ValueError("the ledger consumer commits its own offsets: no auto-commit")
        return kwargs


@dataclass
class BatchReport:
    """What one batch did. `committed` holds the next offset per partition, as committed;
    it is empty when the batch was abandoned or will be read again."""

    records: int = 0
    accepted: int = 0
    duplicate: int = 0
    parked: int = 0  # follow-ups waiting for their original (SPEC §8): committed, no letter
    dead_lettered: int = 0
    refused_again: int = 0  # repeats of a refusal whose letter another message has
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    retry: bool = False


def add(total: BatchReport, report: BatchReport) -> None:
    total.records += report.records
    total.accepted += report.accepted
    total.duplicate += report.duplicate
    total.parked += report.parked
    total.dead_lettered += report.dead_lettered
    total.refused_again += report.refused_again
