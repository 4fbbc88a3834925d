"""Rebalances: what the group took away from a ledger consumer (`Assignment`, its
listener), and gathering a batch that leaves those partitions' records out (`gather`)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kafka import TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

from services.metrics import CONSUMER_LAG

if TYPE_CHECKING:
    from services.ledger.ingest.consumer_options import ConsumerOptions

log = logging.getLogger("loyalty.consume")


class Assignment(ConsumerRebalanceListener):
    """Notes what the group took away. kafka-python calls it on its IO thread while the
    consumer's own thread waits inside `poll()` (or `close()`), so it only records: the
    consumer drops the revoked partitions' records after the poll returns."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revoked: set[TopicPartition] = set()
        self._changed: set[TopicPartition] = set()

    def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            log.info("partitions revoked: %s", _names(revoked))
        self._note(revoked)

    def on_partitions_lost(self, lost: Any) -> None:
        log.warning("partitions lost (this member was dropped from the group): %s", _names(lost))
        self._note(lost)

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned: %s", _names(assigned) or "none")
        with self._lock:
            self._changed.update(assigned)

    def _note(self, partitions: Any) -> None:
        with self._lock:
            self._revoked.update(partitions)
            self._changed.update(partitions)
        for tp in partitions:
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(tp.topic, str(tp.partition))

    def take_revoked(self) -> set[TopicPartition]:
        with self._lock:
            revoked, self._revoked = self._revoked, set()
        return revoked

    def take_changed(self) -> set[TopicPartition]:
        """Partitions assigned, revoked or lost since the last call."""
        with self._lock:
            changed, self._changed = self._changed, set()
        return changed


def gather(
    consumer: Any, assignment: Assignment, options: ConsumerOptions, stopping: Callable[[], bool]
) -> dict[TopicPartition, list[Any]]:
    """One batch's records by partition: polled until `batch_size` records or
    `batch_wait_ms`, less those of partitions a rebalance took meanwhile (their next
    owner reads them again; a partition given straight back is rewound to them)."""
    held: dict[TopicPartition, list[Any]] = {}
    count = 0
    deadline = time.monotonic() + options.batch_wait_ms / 1000
    timeout_ms = options.poll_timeout_ms
    while True:
        polled = consumer.poll(
            timeout_ms=timeout_ms,
            max_records=min(options.max_poll_records, options.batch_size - count),
        )
        rewind: dict[TopicPartition, int] = {}
        for tp in assignment.take_revoked():
            abandoned = held.pop(tp, None)
            if abandoned:
                rewind[tp] = abandoned[0].offset
                log.info(
                    "abandoned %d unstored records of revoked %s[%d] from offset %d",
                    len(abandoned),
                    tp.topic,
                    tp.partition,
                    abandoned[0].offset,
                )
        for tp, records in polled.items():
            if tp not in rewind:  # else fetched past the abandoned records: see below
                held.setdefault(tp, []).extend(records)
        if rewind:
            # kafka-python keeps the position of a partition that the rebalance gave
            # straight back to this member: without the seek its abandoned records
            # would be skipped, and committed past by the next batch.
            assigned = consumer.assignment()
            for tp, offset in rewind.items():
                if tp in assigned:
                    consumer.seek(tp, offset)
        count = sum(len(records) for records in held.values())
        remaining = deadline - time.monotonic()
        if not polled or count >= options.batch_size or remaining <= 0 or stopping():
            return held
        timeout_ms = int(remaining * 1000)


def _names(partitions: Any) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(partitions or ()))
