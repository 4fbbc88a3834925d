"""Kafka into the ledger: the POS intake on `loyalty.pos-events.v1` (SPEC §6 "Kafka", §7)."""

from __future__ import annotations

import logging
import threading
import time
from functools import partial
from typing import Any

import orjson
from eventsourcing.persistence import IntegrityError
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from services.infrastructure.sql import TRANSIENT_ERRORS
from services.ledger.adapters.contract import ContractViolation, load_contract, parse_command
from services.ledger.api.refusals import contract_violation_document, ledger_error_document
from services.ledger.application.intake import Intake, Invalid
from services.ledger.application.ledger import Ledger
from services.ledger.domain.commands import PosCommand
from services.ledger.ingest.consumer_options import (
    DLQ_TOPIC,
    GROUP_ID,
    POS_TOPIC,
    BatchReport,
    ConsumerOptions,
    add,
)
from services.ledger.ingest.dead_letters import DeadLetter, DeadLetterFailed, DeadLetterTopic
from services.ledger.ingest.late_letters import LateLetters
from services.ledger.ingest.rebalance import Assignment, gather
from services.ledger.ingest.signals import stop_on_signals
from services.metrics import BATCH_SECONDS, CONSUMER_LAG, EVENTS

__all__ = [
    "DLQ_TOPIC",
    "GROUP_ID",
    "POS_TOPIC",
    "BatchReport",
    "ConsumerOptions",
    "PosEventConsumer",
    "stop_on_signals",
]

log = logging.getLogger("loyalty.consume")

# Errors after which the same batch can succeed later: the store is unreachable or busy,
# or concurrent writers won the race more often than `record_batch` retries.
# A store that does not answer, by any of its connections (the event store's, the
# customers' keys'), a lost race, a dead-letter topic that does not acknowledge: the
# batch is tried again; anything else is a bug and stops the consumer.
RETRYABLE: tuple[type[Exception], ...] = (*TRANSIENT_ERRORS, IntegrityError, DeadLetterFailed)
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0


class PosEventConsumer:
    """A member of a consumer group that records POS events from Kafka in the ledger.

    The contract:

    - **Unit of work.** A batch is what one or more `poll()`s return, up to
      `batch_size` records gathered for at most `batch_wait_ms`. Its steps, in order:
      validate every message against the POS contract (`parse_event`); store all valid
      ones with ONE `Ledger.record_batch` (one transaction); dead-letter the refused ones
      (produced and flushed, acks=all); commit the batch's offsets (last offset + 1 per
      partition). The commit is the last step, after the events are durable and the dead
      letters acknowledged, so a crash at any point loses nothing: the uncommitted batch
      is read again, and the ledger's `event_id` idempotency turns every repeat into a
      `duplicate` that changes nothing (at least once in, exactly once in effect).
    - **Order.** Records are stored in offset order per partition, and a partition has
      one owner in the group; POS systems key by `customer_id`, so each customer's events
      are stored in the order they were produced.
    - **Bad messages** never block a partition and are never dropped: a message that is
      not JSON, breaks the schema (or cannot be validated at all, e.g. nested too deep),
      or is refused by a rule (including `event-id-conflict`) goes to the dead-letter
      topic with its original key, value and headers plus the problem document (see
      `services.ledger.ingest.dead_letters` for the header names and why each refused
      message is dead-lettered exactly once), and its offset is committed with the
      batch. A rule refusal is recorded in the store: read again, the message gets the
      same verdict, never a new judgement against later state. A `duplicate` is not an
      error and is not dead-lettered, and neither is a repeat of a refused event in
      another message (its letter is the first message's).
    - **Rebalance: abandon, never half-commit.** Partitions are only revoked inside
      `poll()`, i.e. while a batch is being gathered, never while it is being stored.
      Records of revoked (or lost) partitions that the batch has gathered are dropped:
      not stored, not dead-lettered, not committed; their next owner reads them again
      from the last committed offset (or, when the rebalance gives the partition straight
      back to this member, from the first dropped offset: the consumer seeks back to it).
      A batch already being stored is always finished. If the group moved on meanwhile
      (the member stalled past `max_poll_interval_ms` or its session), the commit is
      refused and the new owner reads the batch again: duplicates and the same
      refusals, no change, and no second dead letter.
    - **Failures.** When the store is unavailable, or the dead-letter topic does not
      acknowledge, nothing is committed: the batch's partitions are rewound to the
      batch's first offsets and the batch is tried again after a backoff (0.5 s doubling
      to 10 s) while the consumer keeps polling, so it keeps its place in the group. Any
      other error (a bug) stops the consumer without committing; on restart the message
      is read again.
    - **Back-pressure.** One batch is in flight at a time and nothing is fetched while
      it is stored: a slow store slows consumption and Kafka keeps the backlog, visible
      as `loyalty_consumer_lag_messages{topic,partition}` (high watermark minus the
      consumer's position, per assigned partition).
    - **Shutdown.** `stop()` (SIGTERM, SIGINT) lets the current batch finish and commit;
      then the consumer leaves the group and closes. A second signal stops at once; the
      uncommitted batch is read again by the next owner.
    """

    def __init__(self, ledger: Ledger, options: ConsumerOptions) -> None:
        self.ledger = ledger
        self.options = options
        self.consumer: KafkaConsumer | None = None
        self.producer: KafkaProducer | None = None
        self.dead_letters: DeadLetterTopic | None = None
        self.late_letters: LateLetters | None = None
        self._assignment = Assignment()
        self._stopping = threading.Event()
        self._backoff = 0.0
        self.totals = BatchReport()

    # ---- life cycle --------------------------------------------------------------------
    def open(self) -> None:
        options = self.options
        load_contract()
        self.producer = KafkaProducer(
            bootstrap_servers=options.bootstrap,
            client_id=f"{options.client_id}-dlq",
            acks="all",
            linger_ms=5,
            # One request in flight: a retried send cannot overtake a later one, so each
            # source partition's letters stay in offset order (dead_letters.py relies on it).
            max_in_flight_requests_per_connection=1,
        )
        self.dead_letters = DeadLetterTopic(
            self.producer,
            options.dlq_topic,
            options.group_id,
            reader=partial(
                KafkaConsumer,
                bootstrap_servers=options.bootstrap,
                client_id=f"{options.client_id}-dlq-reader",
                group_id=None,
                enable_auto_commit=False,
            ),
        )
        self.dead_letters.check_topic()
        self.late_letters = LateLetters(  # SPEC §8: letters owed by late refusals
            ledger=self.ledger,
            dead_letters=self.dead_letters,
            new_reader=partial(
                KafkaConsumer,
                bootstrap_servers=options.bootstrap,
                client_id=f"{options.client_id}-late-reader",
                group_id=None,
                enable_auto_commit=False,
            ),
        )
        self.consumer = KafkaConsumer(**options.consumer_kwargs())
        self.consumer.subscribe(topics=list(options.topics), listener=self._assignment)
        log.info(
            "consuming %s as group %r from %s; dead letters to %s; batches of up to %d",
            ", ".join(options.topics),
            options.group_id,
            options.bootstrap,
            options.dlq_topic,
            options.batch_size,
        )

    def close(self) -> None:
        consumer, self.consumer = self.consumer, None
        producer, self.producer = self.producer, None
        if self.late_letters is not None:
            self.late_letters.close()
        if self.dead_letters is not None:
            self.dead_letters.close()
        if consumer is not None:
            consumer.close(autocommit=False)  # leaves the group: others take over at once
        if producer is not None:
            producer.close(timeout=10)
        t = self.totals
        log.info(
            "consumer closed: %d messages, %d accepted, %d duplicates, %d parked, %d dead-lettered",
            t.records,
            t.accepted,
            t.duplicate,
            t.parked,
            t.dead_lettered,
        )

    def stop(self) -> None:
        """Finish the current batch, commit it, then leave `run()`."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self, *, report_every: float = 10.0) -> None:
        """Consume until `stop()`; then close (also when an error ends the loop)."""
        if self.consumer is None:
            self.open()
        window = BatchReport()
        window_started = time.monotonic()
        try:
            while not self.stopping:
                report = self.run_once()
                if report is not None and not report.retry:
                    add(window, report)
                if time.monotonic() - window_started >= report_every and window.records:
                    seconds = time.monotonic() - window_started
                    log.info(
                        "%d messages in %.0f s (%.0f/s): %d accepted, %d duplicates, "
                        "%d parked, %d dead-lettered",
                        window.records,
                        seconds,
                        window.records / seconds,
                        window.accepted,
                        window.duplicate,
                        window.parked,
                        window.dead_lettered,
                    )
                    window, window_started = BatchReport(), time.monotonic()
        except Exception:
            log.exception(
                "the consumer stopped on an unexpected error; the current batch was not "
                "committed and is read again on restart"
            )
            raise
        finally:
            self.close()

    # ---- one batch ---------------------------------------------------------------------
    def run_once(self) -> BatchReport | None:
        """Gather, store, dead-letter and commit one batch; None when there was nothing.
        Every few seconds, first the letters owed by parked messages refused since."""
        self._send_late_letters()
        batch = self._gather()
        if not batch:
            self._update_lag()
            return None
        records = [record for tp_records in batch.values() for record in tp_records]
        report = BatchReport(records=len(records))
        try:
            self._store(records, report)
        except RETRYABLE as error:
            self._retry_later(batch, f"{type(error).__name__}: {error}")
            report.retry = True
            return report
        self._commit(batch, report)
        self._update_lag()
        add(self.totals, report)
        return report

    def _gather(self) -> dict[TopicPartition, list[Any]]:
        return gather(self._consumer(), self._assignment, self.options, lambda: self.stopping)

    def _store(self, records: list[Any], report: BatchReport) -> None:
        letters: list[tuple[int, DeadLetter]] = []
        results = Intake(self.ledger).submit(
            records, self.parse, _source, BATCH_SECONDS.labels("kafka").observe
        )
        invalid = 0
        for index, (record, outcome) in enumerate(zip(records, results, strict=True)):
            if isinstance(outcome, Invalid):
                problem = contract_violation_document(outcome.violation)
                event_id = _event_id_of(record.value)
                if event_id is not None:
                    problem["event_id"] = event_id
                letters.append((index, DeadLetter(record, problem)))
                invalid += 1
            elif outcome.status == "accepted":
                report.accepted += 1
            elif outcome.status == "duplicate":
                report.duplicate += 1
            elif outcome.status == "parked":
                report.parked += 1
            elif outcome.repeat and (outcome.late or outcome.first_source != _source(record)):
                # Its letter is another message's, or a late letter that the partition's
                # owner sends (or sent) once the refusal came (ingest/late_letters.py):
                # never an ordinary second one.
                report.refused_again += 1
            elif outcome.error is not None:
                problem = {**ledger_error_document(outcome.error), "event_id": outcome.event_id}
                letters.append((index, DeadLetter(record, problem)))
        letters.sort(key=lambda item: item[0])
        dead_letters = self._dead_letters()
        dead_letters.forget((tp.topic, tp.partition) for tp in self._assignment.take_changed())
        unsent = dead_letters.unsent([letter for _, letter in letters])
        dead_letters.send_all(unsent)
        report.dead_lettered = len(letters)
        for status, count in (
            ("accepted", report.accepted),
            ("duplicate", report.duplicate),
            ("parked", report.parked),
            ("rejected", len(letters) - invalid),
            ("invalid", invalid),
        ):
            if count:
                EVENTS.labels("kafka", status).inc(count)
        self._backoff = 0.0

    @staticmethod
    def parse(record: Any) -> PosCommand:
        """A message's value as the command of a valid POS event, or `ContractViolation`."""
        if record.value is None:
            raise ContractViolation.malformed("the message has no value (a tombstone)")
        return parse_command(record.value)

    def commit_offsets(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """The last step of a batch (a seam: tests replace it to crash right before it)."""
        self._consumer().commit(offsets)

    def _commit(self, batch: dict[TopicPartition, list[Any]], report: BatchReport) -> None:
        offsets = {
            tp: OffsetAndMetadata(records[-1].offset + 1, "", _epoch(records[-1]))
            for tp, records in batch.items()
        }
        try:
            self.commit_offsets(offsets)
        except CommitFailedError as error:
            log.warning(
                "the group rebalanced before this batch's commit (%s); its new owner reads it "
                "again and finds duplicates",
                error,
            )
            return
        except KafkaError as error:
            self._retry_later(batch, f"offset commit failed: {error!r}")
            return
        report.committed = {tp: meta.offset for tp, meta in offsets.items()}

    def _retry_later(self, batch: dict[TopicPartition, list[Any]], reason: str) -> None:
        """Rewind to the batch's first offsets so the next poll returns it again."""
        consumer = self._consumer()
        assigned = consumer.assignment()
        for tp, records in batch.items():
            if tp in assigned:
                consumer.seek(tp, records[0].offset)
        self._backoff = min(BACKOFF_MAX, max(BACKOFF_FIRST, self._backoff * 2))
        log.warning(
            "batch of %d records not committed (%s); trying again in %.1f s",
            sum(len(r) for r in batch.values()),
            reason,
            self._backoff,
        )
        self._stopping.wait(self._backoff)

    def _update_lag(self) -> None:
        consumer = self._consumer()
        for tp in consumer.assignment():
            try:
                high = consumer.highwater(tp)
                position = consumer.position(tp, timeout_ms=0)
            except KafkaError:
                continue
            if high is not None and position is not None:
                CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, high - position))

    def _send_late_letters(self) -> None:
        if self.late_letters is None or self.consumer is None:
            return
        try:
            self.late_letters.send_owed(self.consumer.assignment())
        except RETRYABLE as error:  # the next pass sends them
            log.warning("dead letters owed by late refusals not sent yet: %s", error)

    def _dead_letters(self) -> DeadLetterTopic:
        if self.dead_letters is None:
            raise RuntimeError("the consumer is not open: call open() or run()")
        return self.dead_letters

    def _consumer(self) -> KafkaConsumer:
        if self.consumer is None:
            raise RuntimeError("the consumer is not open: call open() or run()")
        return self.consumer


def _source(record: Any) -> dict[str, Any]:
    """Where a message came from, as a refusal's record keeps it."""
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}


def _epoch(record: Any) -> int:
    epoch = getattr(record, "leader_epoch", None)
    return epoch if isinstance(epoch, int) else -1


def _event_id_of(value: bytes | None) -> str | None:
    """The event_id of a refused message, when it has one (for the problem document)."""
    try:
        doc = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        return None
    event_id = doc.get("event_id") if isinstance(doc, dict) else None
    return event_id if isinstance(event_id, str) else None
