"""Idempotency: one `IntakeRecord` per accepted POS event.

Its id is a uuid5 of the `event_id`, and it is saved in the same transaction as the
account events it caused, so "was this event_id seen?" has one durable answer that
survives restarts and races: a second writer of the same event_id fails on the store's
unique (originator_id, version) key. It also keeps the event as received (for audit
export) and the effect that was answered, so a repeat gets the same answer.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import orjson
from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic


def fingerprint(document: dict[str, Any]) -> str:
    """SHA-256 of the event's canonical JSON (sorted keys): same content, same print."""
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


class IntakeRecord(Aggregate):
    class Accepted(Aggregate.Created):
        event_id: str
        customer_id: str
        type: str
        fingerprint: str
        document: dict[str, Any]
        effect: dict[str, Any]

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
        event itself; the library's construction machinery cost a tenth of a Kafka batch).
        `repository.get` rebuilds the aggregate from it as from any other."""
        # mypy sees the library's base class signature, not the dataclass's fields.
        return cls.Accepted(  # type: ignore[call-arg]
            originator_id=cls.create_id(event_id),
            originator_version=cls.INITIAL_VERSION,
            timestamp=cls.Accepted.create_timestamp(),
            originator_topic=_topic(),
            event_id=event_id,
            customer_id=customer_id,
            type=type,
            fingerprint=fingerprint,
            document=document,
            effect=effect,
        )

    @event(Accepted)
    def __init__(
        self,
        event_id: str,
        customer_id: str,
        type: str,
        fingerprint: str,
        document: dict[str, Any],
        effect: dict[str, Any],
    ) -> None:
        self.event_id = event_id
        self.customer_id = customer_id
        self.type = type
        self.fingerprint = fingerprint
        self.document = document
        self.effect = effect


@lru_cache(maxsize=1)
def _topic() -> str:
    return get_topic(IntakeRecord)
