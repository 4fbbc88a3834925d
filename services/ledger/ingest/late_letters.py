"""Dead letters owed after the fact (SPEC §8 "Out of order"): a POS message parked as a
follow-up was committed without a letter; when it is refused later (it waited `park_days`
in vain, checked by the sweep, or its original was refused) its letter is sent now.

The consumer that owns the message's source partition sends it, every few seconds
(`LateLetters.send_owed`): it reads the original message back from the source topic by
its partition and offset (the letter is the original record, as every dead letter), or,
when retention has removed it, builds it from the event as the ledger stored it (with the
header `loyalty-original-missing: true`). Each letter carries `loyalty-late-verdict:
true`, so the read-back of what was sent (`DeadLetterTopic`, which relies on a source
partition's letters coming in offset order) passes over it. After the DLQ acknowledged
them, the intake records are marked (`LateDeadLettered`): a crash in between sends the
letter again on restart, unless the DLQ shows it: before sending, the owner reads the
DLQ back from its end down to the refusal's time (less `CLOCK_SKEW`) and sends only the
letters it does not find (exactly once, but for a zombie member: see dead_letters.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from services.ledger.api.refusals import ledger_error_document
from services.ledger.application.ledger import Ledger
from services.ledger.application.parking import LateRefusal
from services.ledger.domain.errors import refusal as refusal_error
from services.ledger.ingest.dead_letters import LATE_VERDICT, DeadLetter, DeadLetterTopic

log = logging.getLogger("loyalty.consume")

ORIGINAL_MISSING = "loyalty-original-missing"
EVERY_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 10.0
# How far the clocks of the processes that refuse (the sweep) and send (the consumer) may
# disagree: the read-back of sent late letters goes this much further back in time.
CLOCK_SKEW = timedelta(minutes=15)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class StoredRecord:
    """A message rebuilt from the stored event, when the topic no longer holds it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = -1
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class LateLetters:
    ledger: Ledger
    dead_letters: DeadLetterTopic
    new_reader: Callable[[], KafkaConsumer]
    every_seconds: float = EVERY_SECONDS
    _last: float = field(default=float("-inf"))
    _reader: KafkaConsumer | None = None
    # sent by this process, not marked in the store yet (the marking failed)
    _sent: set[str] = field(default_factory=set)

    def send_owed(self, owned: Iterable[TopicPartition], *, force: bool = False) -> int:
        """Send the letters owed for messages of the partitions this member owns; the
        number sent."""
        if not force and time.monotonic() - self._last < self.every_seconds:
            return 0
        self._last = time.monotonic()
        mine = {(tp.topic, tp.partition) for tp in owned}
        owed = [
            r
            for r in self.ledger.late_refusals.refresh()
            if (r.source["topic"], r.source["partition"]) in mine
        ]
        if not owed:
            return 0
        unsent = self._not_in_the_topic(owed)
        self.dead_letters.send_all([self._letter(refusal) for refusal in unsent])
        self._sent.update(r.event_id for r in unsent)
        self.ledger.late_dead_lettered(
            (r.event_id for r in owed), dead_letter_topic=self.dead_letters.topic
        )
        self._sent.difference_update(r.event_id for r in owed)
        if unsent:
            log.info("sent %d dead letters owed by follow-ups refused after parking", len(unsent))
        if len(unsent) < len(owed):
            log.info("%d late letters were in the topic already", len(owed) - len(unsent))
        return len(unsent)

    def _not_in_the_topic(self, owed: list[LateRefusal]) -> list[LateRefusal]:
        """The refusals whose letter the DLQ does not hold: a process that sent letters
        and died before marking them in the store, or another member that owned the
        partition then, may have sent some (read back from the DLQ, newest first, down to
        the earliest refusal's time less `CLOCK_SKEW`)."""
        doubtful = [r for r in owed if r.event_id not in self._sent]
        if not doubtful:
            return []
        moments = [r.refused_at for r in doubtful if r.refused_at is not None]
        since = min(moments) - CLOCK_SKEW if len(moments) == len(doubtful) else EPOCH
        sent = self.dead_letters.late_sent((_source_key(r) for r in doubtful), since)
        return [r for r in doubtful if _source_key(r) not in sent]

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def _letter(self, late: LateRefusal) -> DeadLetter:
        error = refusal_error(late.refusal["slug"], late.refusal["detail"], late.refusal["field"])
        problem = {**ledger_error_document(error), "event_id": late.event_id}
        record = self._read_back(late.source)
        if record is None:
            record = StoredRecord(
                topic=late.source["topic"],
                partition=late.source["partition"],
                offset=late.source["offset"],
                key=str(late.document.get("customer_id", "")).encode() or None,
                value=orjson.dumps(late.document),
                headers=[(ORIGINAL_MISSING, b"true")],
            )
        record = _with_header(record, (LATE_VERDICT, b"true"))
        return DeadLetter(record, problem)

    def _read_back(self, source: dict[str, Any]) -> Any | None:
        if self._reader is None:
            self._reader = self.new_reader()
        reader = self._reader
        tp = TopicPartition(source["topic"], source["partition"])
        reader.assign([tp])
        if reader.beginning_offsets([tp])[tp] > source["offset"]:
            return None  # retention removed it
        reader.seek(tp, source["offset"])
        deadline = time.monotonic() + READ_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            for record in reader.poll(timeout_ms=500).get(tp, []):
                if record.offset == source["offset"]:
                    return record
                if record.offset > source["offset"]:
                    return None
        return None


def _source_key(late: LateRefusal) -> tuple[str, int, int]:
    source = late.source
    return (source["topic"], int(source["partition"]), int(source["offset"]))


def _with_header(record: Any, header: tuple[str, bytes]) -> StoredRecord:
    return StoredRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        timestamp=record.timestamp,
        headers=[*list(record.headers or ()), header],
    )
