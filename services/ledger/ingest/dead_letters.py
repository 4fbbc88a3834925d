"""Dead letters (SPEC §6 "Kafka"): a POS message the ledger cannot take, with the reason.

A message goes to `loyalty.pos-events.dlq` when it is not JSON, breaks the POS contract
(`schemas/pos/`), or is refused by a rule of the ledger (including `event-id-conflict`).
The dead letter is the original message, untouched, plus headers that say where it came
from and why it was refused:

- key: the original key;
- partition: the source partition modulo the DLQ's partition count (with as many DLQ
  partitions as source partitions, the same number, and so the one the key gives with
  Kafka's default partitioner);
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

**Exactly once per refused message.** A batch whose offsets could not be committed (a
crash, a rebalance) is read again, and its refusals again get their verdict (a rule
refusal is recorded in the store and repeated, never judged again). Before sending, the
consumer drops every letter the DLQ already holds: each source partition's letters are
written by its one owner, in offset order, one request in flight, acknowledged before the
offsets are committed; so "was the letter for offset o sent?" is "is o at most the source
offset of the last letter from that source partition?", which `DeadLetterTopic` reads
back from the end of the DLQ partition once per assignment and then keeps. A repeat of a
refused event in ANOTHER message (a POS retry) is not dead-lettered again: its letter
belongs to the message that caused the refusal. What is left: a member that was dropped
from the group but still sends (a zombie) can write a letter that its successor writes
too; readers that must be exact deduplicate on the source topic, partition and offset.

**Late letters.** A follow-up parked until its original arrives (SPEC §8) is committed
without a letter; if it is refused later, `late_letters.py` sends its letter then, out of
offset order, marked `loyalty-late-verdict: true`; the read-back above passes over those.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.infrastructure.kafka_settings import send_acknowledged
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
# A letter sent after the fact, out of offset order (ingest/late_letters.py): the
# read-back of what was sent passes over it.
LATE_VERDICT = "loyalty-late-verdict"

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
        self,
        producer: KafkaProducer,
        topic: str,
        group_id: str,
        timeout_seconds: float = 60.0,
        reader: Callable[[], KafkaConsumer] | None = None,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.group_id = group_id
        self.timeout_seconds = timeout_seconds
        self.partitions = 0
        self._new_reader = reader
        self._reader: KafkaConsumer | None = None
        # (source topic, source partition) -> the source offset of its last letter sent
        self._sent: dict[tuple[str, int], int] = {}

    def check_topic(self) -> None:
        """Fail fast at start-up when the DLQ topic does not exist (no auto-creation)."""
        partitions = self.producer.partitions_for(self.topic)
        if not partitions:
            raise DeadLetterFailed(f"the dead-letter topic {self.topic!r} does not exist")
        self.partitions = len(partitions)

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def forget(self, sources: Iterable[tuple[str, int]]) -> None:
        """Forget what was sent for these source partitions (their owner may change)."""
        for source in sources:
            self._sent.pop(source, None)

    def unsent(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        """The letters the DLQ does not hold yet (all of them, unless a batch is re-read)."""
        kept = []
        for letter in letters:
            record = letter.record
            if record.offset > self._last_sent((record.topic, record.partition)):
                kept.append(letter)
        if len(kept) < len(letters):
            log.info("%d dead letters were sent before; not sent again", len(letters) - len(kept))
        return kept

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
                partitions=[self._partition(letter.record.partition) for letter in letters],
            )
        except Exception as error:
            # Some may have arrived: read the DLQ's end again before the next try.
            self.forget({(letter.record.topic, letter.record.partition) for letter in letters})
            raise DeadLetterFailed(
                f"{len(letters)} dead letters not acknowledged by {self.topic!r}: {error!r}"
            ) from error
        for letter in letters:
            record = letter.record
            source = (record.topic, record.partition)
            self._sent[source] = max(self._sent.get(source, -1), record.offset)
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

    def _partition(self, source_partition: int) -> int | None:
        return source_partition % self.partitions if self.partitions else None

    def _last_sent(self, source: tuple[str, int]) -> int:
        if source not in self._sent:
            self._sent[source] = self._read_last_sent(source)
        return self._sent[source]

    def _read_last_sent(self, source: tuple[str, int]) -> int:
        """The source offset of the last letter this group sent for `source`, read back
        from the end of its DLQ partition (-1: none). Letters of other source partitions
        may share the partition: it reads backwards a chunk at a time until it finds one."""
        partition = self._partition(source[1])
        if partition is None or self._new_reader is None:
            return -1
        for chunk in self._backwards(partition):
            for record in chunk:
                if _is_late(record.headers):
                    continue
                if _source_of(record.headers) == (*source, self.group_id):
                    return int(dict(_ours(record.headers))[SOURCE_OFFSET])
        return -1

    def late_sent(
        self, sources: Iterable[tuple[str, int, int]], since: datetime
    ) -> set[tuple[str, int, int]]:
        """Which of these messages (source topic, partition, offset) already have their
        late letter in the DLQ, sent by this group: read back from the end of each DLQ
        partition until the letters are older than `since` (the earliest refusal, less
        the clocks' allowed skew: a late letter is sent after its refusal is stored)."""
        wanted = set(sources)
        found: set[tuple[str, int, int]] = set()
        if self._new_reader is None:
            return found
        partitions = {self._partition(source[1]) for source in wanted}
        for partition in sorted(p for p in partitions if p is not None):
            for chunk in self._backwards(partition):
                older = False
                for record in chunk:
                    source = _source_of(record.headers)
                    if _is_late(record.headers) and source and source[2] == self.group_id:
                        offset = int(dict(_ours(record.headers))[SOURCE_OFFSET])
                        if (source[0], source[1], offset) in wanted:
                            found.add((source[0], source[1], offset))
                    sent_at = _sent_at(record.headers)
                    older = older or (sent_at is not None and sent_at < since)
                if older or found == wanted:
                    break
        return found

    def _backwards(self, partition: int) -> Iterator[list[Any]]:
        """The letters of a DLQ partition, newest first, a chunk at a time."""
        if self._reader is None:
            if self._new_reader is None:
                raise DeadLetterFailed(f"no reader to read {self.topic!r} back with")
            self._reader = self._new_reader()
        reader = self._reader
        tp = TopicPartition(self.topic, partition)
        reader.assign([tp])
        start = reader.beginning_offsets([tp])[tp]
        end = self._end(reader, tp, reader.end_offsets([tp])[tp])
        while end > start:
            first = max(start, end - READ_BACK_CHUNK)
            reader.seek(tp, first)
            chunk: list[Any] = []
            deadline = time.monotonic() + self.timeout_seconds
            while reader.position(tp) < end:
                if time.monotonic() > deadline:
                    raise DeadLetterFailed(f"could not read back {self.topic}[{partition}]")
                chunk += [r for r in reader.poll(timeout_ms=500).get(tp, []) if r.offset < end]
            yield chunk[::-1]
            end = first

    def _end(self, reader: KafkaConsumer, tp: TopicPartition, reported: int) -> int:
        """The partition's end, read past the one the broker reports: tansu 0.6 answers
        ListOffsets(latest) with the last record batch's base offset + 1, so the letters
        of the last batch but its first would look unsent, and be sent again after a
        kill (the fault soak found 11 refusals dead-lettered twice)."""
        reader.seek(tp, reported)
        end = reported
        deadline = time.monotonic() + self.timeout_seconds
        while time.monotonic() < deadline:
            records = reader.poll(timeout_ms=END_PROBE_MS).get(tp, [])
            if not records:
                return end
            end = max(end, records[-1].offset + 1)
        raise DeadLetterFailed(f"could not find the end of {self.topic}[{tp.partition}]")


READ_BACK_CHUNK = 500
END_PROBE_MS = 500  # an empty poll past the end: the first letter sent is the first read


def _ours(headers: Any) -> list[tuple[str, bytes]]:
    """Our headers of a letter: the last occurrence of each name."""
    names = (SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET, CONSUMER_GROUP)
    return [(name, value) for name, value in headers or () if name in names]


def _is_late(headers: Any) -> bool:
    return any(name == LATE_VERDICT for name, _ in headers or ())


def _sent_at(headers: Any) -> datetime | None:
    """When a letter was sent (its last `loyalty-dead-lettered-at`), None if unreadable."""
    values = [value for name, value in headers or () if name == DEAD_LETTERED_AT]
    try:
        return datetime.fromisoformat(values[-1].decode()) if values else None
    except ValueError:
        return None


def _source_of(headers: Any) -> tuple[str, int, str] | None:
    found = dict(_ours(headers))
    try:
        return (
            found[SOURCE_TOPIC].decode(),
            int(found[SOURCE_PARTITION]),
            found[CONSUMER_GROUP].decode(),
        )
    except (KeyError, ValueError):
        return None
