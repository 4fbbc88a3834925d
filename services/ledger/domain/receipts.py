"""Receipts are unique per `(store_id, receipt_id)` across all customers (SPEC §8).

A customer's account knows its own receipts; a receipt another customer already used is
found by a `ReceiptRecord`, one per receipt, whose id is a uuid5 of the store and the
receipt. It is created in the same append as the purchase that used the receipt, so two
customers' purchases of one receipt racing on two writers clash on the record's unique
(originator_id, version) key: the loser is re-run and refused (`duplicate-receipt`).
Purchases recorded before this record existed are not in it (only their customer's
account knows them).
"""

from __future__ import annotations

from functools import lru_cache
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from services.ledger.adapters.eventstore.writes import creation_event
from services.ledger.domain.topics import RECEIPT, RECEIPT_EVENTS


class ReceiptRecord(Aggregate):
    TOPIC = RECEIPT

    class Event(Aggregate.Event):
        """The base of the record's events (its own, so that `Used` can be one)."""

    class Used(Aggregate.Created, Event):
        TOPIC = RECEIPT_EVENTS["Used"]
        class_version = 1
        store_id: str | None
        receipt_id: str
        customer_id: str
        event_id: str

    Created = Used  # the library's name for the first event: there is only one

    @staticmethod
    @lru_cache(maxsize=8192)
    def create_id(store_id: str | None, receipt_id: str) -> UUID:
        # The store id's charset (SPEC §2) has no "/", so the pair is unambiguous.
        return uuid5(NAMESPACE_URL, f"loyalty-ledger:receipt:{store_id or ''}/{receipt_id}")

    @classmethod
    def used(
        cls, *, store_id: str | None, receipt_id: str, customer_id: str, event_id: str
    ) -> ReceiptRecord.Used:
        """The creation event, built directly (as `IntakeRecord.accepted`)."""
        return creation_event(
            cls,
            cls.Used,
            cls.create_id(store_id, receipt_id),
            store_id=store_id,
            receipt_id=receipt_id,
            customer_id=customer_id,
            event_id=event_id,
        )

    @event(Used)
    def __init__(
        self, store_id: str | None, receipt_id: str, customer_id: str, event_id: str
    ) -> None:
        self.store_id = store_id
        self.receipt_id = receipt_id
        self.customer_id = customer_id
        self.event_id = event_id
