"""Dead letters (SPEC §6 "Kafka"): a POS message the ledger cannot take, with the reason.

A message goes to `loyalty.pos-events.dlq` when it is not JSON, breaks the POS contract
(`schemas/pos/`), or is refused by a rule of the ledger (including `event-id-conflict`).
The dead letter is the original message, untouched, plus headers that say where it came
from and why it was refused:

- key: the original key (so the DLQ is partitioned by `customer_id` too);
- value: the original bytes, exactly as received (None stays None);
- headers: the original headers first, in their order, then these (all UTF-8 text):

  | header                     | value                                                   |
  |----------------------------|---------------------------------------------------------|
  | `loyalty-problem`          | the RFC 9457 problem document, JSON (as the HTTP API)   |
  | `loyalty-problem-type`     | its `type` URI, e.g. `.../problems/insufficient-points` |
  | `loyalty-source-topic`     | the topic the message was read from                     |
  | `loyalty-source-partition` | its partition, decimal                                  |
  | `loyalty-source-offset`    | its offset, decimal                                     |
  | `loyalty-source-timestamp` | its Kafka timestamp, milliseconds since the epoch       |
  | `loyalty-consumer-group`   | the consumer group that refused it                      |
  | `loyalty-dead-lettered-at` | when, RFC 3339 UTC                                      |

  Kafka allows repeated header names; if an original message already carried one of
  these (say, a dead letter sent back for another try), the LAST occurrence is ours.

Delivery is at least once: a batch whose offsets could not be committed is read again
and its refusals are dead-lettered again, with the same source topic, partition and
offset; a reader of the DLQ deduplicates on those three headers.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from kafka import KafkaProducer

from services.ledger.adapters.kafka_settings import send_acknowledged
from services.metrics import DEAD_LETTERS

log = logging.getLogger("loyalty.consume")

PROBLEM = "loyalty-problem"
PROBLEM_TYPE = "loyalty-problem-type"
SOURCE_TOPIC = "loyalty-source-topic"
SOURCE_PARTITION = "loyalty-source-partition"
SOURCE_OFFSET = "loyalty-source-offset"
SOURCE_TIMESTAMP = "loyalty-source-timestamp"
CONSUMER_GROUP = "loyalty-consumer-group"
DEAD_LETTERED_AT = "loyalty-dead-lettered-at"

Headers = list[tuple[str, bytes]]


class DeadLetterFailed(Exception):
    """The dead-letter topic did not acknowledge every letter: the batch's offsets must
    not be committed (the messages would be lost)."""


@dataclass(frozen=True)
class DeadLetter:
    """One refused message: the original record and the problem document saying why."""

    record: Any  # kafka.consumer.fetcher.ConsumerRecord
    problem: dict[str, Any]

    @property
    def slug(self) -> str:
        return str(self.problem.get("type", "")).rpartition("/")[2] or "unknown"

    def headers(self, group_id: str, now: datetime | None = None) -> Headers:
        record = self.record
        moment = (now or datetime.now(UTC)).isoformat(timespec="milliseconds")
        ours = [
            (PROBLEM, orjson.dumps(self.problem)),
            (PROBLEM_TYPE, str(self.problem.get("type", "")).encode()),
            (SOURCE_TOPIC, record.topic.encode()),
            (SOURCE_PARTITION, str(record.partition).encode()),
            (SOURCE_OFFSET, str(record.offset).encode()),
            (SOURCE_TIMESTAMP, str(record.timestamp).encode()),
            (CONSUMER_GROUP, group_id.encode()),
            (DEAD_LETTERED_AT, moment.replace("+00:00", "Z").encode()),
        ]
        return [*list(record.headers or ()), *ours]


class DeadLetterTopic:
    """Sends dead letters and waits until the broker has them all (acks=all).

    `send_all` returns only when every letter is acknowledged and raises
    `DeadLetterFailed` otherwise, so a caller that commits offsets after it never commits
    past a refused message that is not safely in the DLQ.
    """

    def __init__(
        self, producer: KafkaProducer, topic: str, group_id: str, timeout_seconds: float = 60.0
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.group_id = group_id
        self.timeout_seconds = timeout_seconds

    def check_topic(self) -> None:
        """Fail fast at start-up when the DLQ topic does not exist (no auto-creation)."""
        if not self.producer.partitions_for(self.topic):
            raise DeadLetterFailed(f"the dead-letter topic {self.topic!r} does not exist")

    def send_all(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        now = datetime.now(UTC)
        try:
            send_acknowledged(
                self.producer,
                self.topic,
                (
                    (letter.record.key, letter.record.value, letter.headers(self.group_id, now))
                    for letter in letters
                ),
                self.timeout_seconds,
            )
        except Exception as error:
            raise DeadLetterFailed(
                f"{len(letters)} dead letters not acknowledged by {self.topic!r}: {error!r}"
            ) from error
        reasons = Counter(letter.slug for letter in letters)
        for slug, count in reasons.items():
            DEAD_LETTERS.labels(slug).inc(count)
        first = letters[0].record
        log.warning(
            "dead-lettered %d messages to %s (%s); the first: %s[%d]@%d",
            len(letters),
            self.topic,
            ", ".join(f"{count} {slug}" for slug, count in reasons.most_common()),
            first.topic,
            first.partition,
            first.offset,
        )
        if log.isEnabledFor(logging.DEBUG):
            for letter in letters:
                record = letter.record
                log.debug(
                    "dead-lettered %s[%d]@%d (event_id %s): %s: %s",
                    record.topic,
                    record.partition,
                    record.offset,
                    letter.problem.get("event_id", "?"),
                    letter.slug,
                    letter.problem.get("detail", ""),
                )
