"""Idempotency: one `IntakeRecord` per POS event the ledger judged, accepted or refused.

Its id is a uuid5 of the `event_id`, and it is saved in the same transaction as the
account events it caused, so "was this event_id seen?" has one durable answer that
survives restarts and races: a second writer of the same event_id fails on the store's
unique (originator_id, version) key. It also keeps the event as received (for audit
export) and the answer that was given, so a repeat gets the same answer:

- `Accepted`: the effect; a repeat is a `duplicate` with that effect.
- `Refused`: the rule that refused it (slug, detail, field). A repeat is refused again
  with the same problem, never judged again against newer state: a refusal is final, as
  an acceptance is (a POS that wants another try sends a new event_id). `source` says
  where the refused message came from (the Kafka topic, partition and offset), so the
  consumer dead-letters a refusal once, for the message that caused it.

- `Parked` (SPEC §8 "Out of order"): a follow-up whose original is not known yet; a
  repeat answers `parked`. Once released, `ParkedApplied` (the effect: a repeat is a
  `duplicate`) or `ParkedRefused` (the refusal, final: e.g. `unknown-original-event`
  when it waited `park_days` in vain) follows it.

Events that break the POS contract (`schemas/pos/`) leave no record: that verdict is a
function of the bytes alone, and a corrected event may reuse its event_id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import orjson
from eventsourcing.domain import Aggregate, event

from services.ledger.adapters.eventstore.writes import creation_event
from services.ledger.domain.errors import LedgerError
from services.ledger.domain.errors import refusal as refusal_error
from services.ledger.domain.privacy import POS_PERSONAL_FIELDS, upcast_plain
from services.ledger.domain.topics import INTAKE_EVENTS


def _upcast_document(state: dict[str, Any]) -> None:
    """Version 2 keeps the document's personal fields sealed (domain/privacy.py); a
    version-1 record holds them as the POS sent them, read as `{"plain": text}`."""
    document = state.get("document")
    if isinstance(document, dict):
        upcast_plain(document, *POS_PERSONAL_FIELDS.get(str(document.get("type")), ()))


def fingerprint(document: Mapping[str, Any]) -> str:
    """SHA-256 of the event's canonical JSON (sorted keys): same content, same print."""
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


class IntakeRecord(Aggregate):
    class Accepted(Aggregate.Created):
        class_version = 2  # 2: the document's personal fields sealed
        upcast_v1_v2 = staticmethod(_upcast_document)
        event_id: str
        customer_id: str
        type: str
        fingerprint: str
        document: dict[str, Any]
        effect: dict[str, Any]

    class Refused(Aggregate.Created):
        class_version = 2  # 2: the document's personal fields sealed
        upcast_v1_v2 = staticmethod(_upcast_document)
        event_id: str
        customer_id: str
        type: str
        fingerprint: str
        document: dict[str, Any]
        refusal: dict[str, Any]  # {"slug", "detail", "field"}
        source: dict[str, Any] | None  # {"topic", "partition", "offset"} from Kafka, else None

        def apply(self, aggregate: Any) -> None:
            """After `__init__` (which took the fields the two events share)."""
            aggregate.refusal = self.refusal
            aggregate.source = self.source

    class Parked(Aggregate.Created):
        TOPIC = INTAKE_EVENTS["Parked"]
        class_version = 1
        event_id: str
        customer_id: str
        type: str
        fingerprint: str
        document: dict[str, Any]
        original_event_id: str
        source: dict[str, Any] | None  # as `Refused`'s: the Kafka message, else None

        def apply(self, aggregate: Any) -> None:
            aggregate.parked = True
            aggregate.original_event_id = self.original_event_id
            aggregate.source = self.source

    class ParkedApplied(Aggregate.Event):
        TOPIC = INTAKE_EVENTS["ParkedApplied"]
        class_version = 1
        effect: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.parked = False
            aggregate.effect = self.effect

    class ParkedRefused(Aggregate.Event):
        TOPIC = INTAKE_EVENTS["ParkedRefused"]
        class_version = 1
        refusal: dict[str, Any]  # {"slug", "detail", "field"}

        def apply(self, aggregate: Any) -> None:
            aggregate.parked = False
            aggregate.refusal = self.refusal
            aggregate.refused_late = True  # its dead letter is a late one (late_letters.py)

    class LateDeadLettered(Aggregate.Event):
        """A parked Kafka message refused after its batch was committed (it waited in
        vain, or its original was refused) was dead-lettered (`ingest/late_letters.py`)."""

        TOPIC = INTAKE_EVENTS["LateDeadLettered"]
        class_version = 1
        dead_letter_topic: str

        def apply(self, aggregate: Any) -> None:
            aggregate.dead_lettered = True

    refusal: dict[str, Any] | None = None  # None: accepted
    source: dict[str, Any] | None = None
    dead_lettered: bool = False
    parked: bool = False  # waiting for its original (SPEC §8)
    refused_late: bool = False  # parked, then refused: the late-letter path letters it
    original_event_id: str | None = None

    @staticmethod
    @lru_cache(maxsize=8192)
    def create_id(event_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"loyalty-ledger:pos-event:{event_id}")

    @classmethod
    def accepted(
        cls,
        *,
        event_id: str,
        customer_id: str,
        type: str,
        fingerprint: str,
        document: dict[str, Any],
        effect: dict[str, Any],
    ) -> IntakeRecord.Accepted:
        """The creation event of a new record, built directly: what `IntakeRecord(...)`
        would put in `collect_events()`, without the aggregate (the batch path saves the
        event itself; `adapters/eventstore/writes.py` says why and how)."""
        return creation_event(
            cls,
            cls.Accepted,
            cls.create_id(event_id),
            event_id=event_id,
            customer_id=customer_id,
            type=type,
            fingerprint=fingerprint,
            document=document,
            effect=effect,
        )

    @classmethod
    def refused(
        cls,
        *,
        event_id: str,
        customer_id: str,
        type: str,
        fingerprint: str,
        document: dict[str, Any],
        error: LedgerError,
        source: dict[str, Any] | None,
    ) -> IntakeRecord.Refused:
        """The creation event of a record of a refusal, built like `accepted`'s."""
        refusal = {"slug": error.slug, "detail": error.detail, "field": error.field}
        return creation_event(
            cls,
            cls.Refused,
            cls.create_id(event_id),
            event_id=event_id,
            customer_id=customer_id,
            type=type,
            fingerprint=fingerprint,
            document=document,
            refusal=refusal,
            source=source,
        )

    @classmethod
    def parked_record(
        cls,
        *,
        event_id: str,
        customer_id: str,
        type: str,
        fingerprint: str,
        document: dict[str, Any],
        original_event_id: str,
        source: dict[str, Any] | None,
    ) -> IntakeRecord.Parked:
        """The creation event of a record of a parked follow-up, built like `accepted`'s."""
        return creation_event(
            cls,
            cls.Parked,
            cls.create_id(event_id),
            event_id=event_id,
            customer_id=customer_id,
            type=type,
            fingerprint=fingerprint,
            document=document,
            original_event_id=original_event_id,
            source=source,
        )

    def applied(self, effect: dict[str, Any]) -> None:
        """The parked follow-up was applied after its original."""
        self.trigger_event(self.ParkedApplied, effect=effect)

    def refused_after_parking(self, error: LedgerError) -> None:
        """The parked follow-up was refused: by a rule once its original came, or because
        it never came (`unknown-original-event`)."""
        refusal = {"slug": error.slug, "detail": error.detail, "field": error.field}
        self.trigger_event(self.ParkedRefused, refusal=refusal)

    def late_dead_lettered(self, dead_letter_topic: str) -> None:
        self.trigger_event(self.LateDeadLettered, dead_letter_topic=dead_letter_topic)

    def error(self) -> LedgerError:
        """The refusal as the error it was (only for a refused record)."""
        if self.refusal is None:
            raise ValueError(f"event {self.event_id!r} was accepted, not refused")
        return refusal_error(self.refusal["slug"], self.refusal["detail"], self.refusal["field"])

    @event(Accepted)
    def __init__(
        self,
        event_id: str,
        customer_id: str,
        type: str,
        fingerprint: str,
        document: dict[str, Any],
        effect: dict[str, Any] | None = None,  # a `Refused` record has none
    ) -> None:
        self.event_id = event_id
        self.customer_id = customer_id
        self.type = type
        self.fingerprint = fingerprint
        self.document = document
        self.effect = effect or {}
