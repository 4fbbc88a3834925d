"""The full history (SPEC §5): the stored events in store order, globally or per customer.

A customer's history is their account's events plus the intake records of the POS events
they sent (each keeps the event as received). Pages go by position, never by offset:
`from_position` is inclusive and `next` is the `from_position` of the following page, so
a page never shifts while others write (positions only grow, in commit order).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import ApplicationRecorder

from services.audit.chain import ChainTable
from services.audit.stored import StoredRow, first_states, select_of_originators
from services.ledger.domain import topics
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.errors import UnknownCustomer
from services.ledger.domain.intake import IntakeRecord
from services.ledger.domain.privacy import PERSONAL_FIELDS, Keyring, Revealer

_METADATA = ("timestamp", "originator_topic")
# The topics whose events may hold a personal field (domain/privacy.py).
_INTAKE_TOPICS = frozenset(topics.INTAKE_EVENTS.values())
_PERSONAL_TOPICS = _INTAKE_TOPICS | {topics.ACCOUNT_EVENTS[name] for name in PERSONAL_FIELDS}


def recorded_at(state: Any) -> str | None:
    """The ledger clock: the library's `timestamp`, stored as `{"_type_", "_data_"}`."""
    stamp = state.get("timestamp") if isinstance(state, dict) else None
    if isinstance(stamp, dict):
        return str(stamp.get("_data_"))
    return None if stamp is None else str(stamp)


def _decoded(state: bytes) -> dict[str, Any]:
    """The state's fields; an unreadable state (edited by hand?) shows as none, and
    `loyalty audit verify` says where."""
    try:
        decoded = orjson.loads(state)
    except orjson.JSONDecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


@dataclass
class HistoryPage:
    items: list[dict[str, Any]]
    next: int | None


class History:
    """Reads the stored events and describes each for an auditor."""

    def __init__(
        self,
        recorder: ApplicationRecorder,
        chain: ChainTable | None,
        keys: Keyring | None = None,
    ) -> None:
        self.recorder = recorder
        self.chain = chain
        self.keys = keys  # personal fields are opened with them, or read as erased
        self._customers: OrderedDict[UUID, str] = OrderedDict()  # account id -> customer id
        self._lock = threading.Lock()  # pages are read on several threads at once

    # ---- describing one stored event -----------------------------------------------------
    def describe(
        self, row: StoredRow, link: str | None = None, revealer: Revealer | None = None
    ) -> dict[str, Any]:
        # A topic outside the stored contract (a store written by other code) is shown
        # as it is stored.
        aggregate, name = topics.describe(row.topic) or ("unknown", row.topic)
        state = _decoded(row.state)
        fields = {k: v for k, v in state.items() if k not in _METADATA}
        customer_id: str | None = None
        occurred_at = state.get("occurred_at") or state.get("decided_at")
        if aggregate == "account":
            customer_id = state.get("customer_id") or self._customers.get(row.originator_id)
        elif aggregate == "intake":
            customer_id = state.get("customer_id")
            occurred_at = (state.get("document") or {}).get("occurred_at")
        # SPEC §11: personal fields opened with the customer's key, or "erased".
        revealer = revealer or Revealer(self.keys)
        if aggregate == "account":
            fields = revealer.event(name, fields, customer_id)
        elif aggregate == "intake" and isinstance(fields.get("document"), dict):
            fields["document"] = revealer.document(fields["document"])
        return {
            "position": row.position,
            "type": name,
            "aggregate": aggregate,
            "originator_id": str(row.originator_id),
            "originator_version": row.originator_version,
            "customer_id": customer_id,
            "occurred_at": occurred_at,
            "recorded_at": recorded_at(state),
            "rule_version": state.get("rule_version") if aggregate == "account" else None,
            "fields": fields,
            "link": link,
        }

    def describe_all(self, rows: list[StoredRow]) -> list[dict[str, Any]]:
        self._learn_customers(rows)
        links = (
            self.chain.links_between(rows[0].position, rows[-1].position)
            if rows and self.chain is not None
            else {}
        )
        revealer = Revealer(self.keys)
        # One key look-up for the page's customers that have personal fields on it.
        revealer.load(self._owners(row for row in rows if row.topic in _PERSONAL_TOPICS))
        return [self.describe(row, links.get(row.position), revealer) for row in rows]

    def _owners(self, rows: Iterable[StoredRow]) -> set[str]:
        owners = set()
        for row in rows:
            owner = self._customers.get(row.originator_id)
            if owner is None and row.topic in _INTAKE_TOPICS:
                owner = _decoded(row.state).get("customer_id")
            if owner:
                owners.add(owner)
        return owners

    def _learn_customers(self, rows: list[StoredRow]) -> None:
        """Account events name their customer only in the first event: look those up."""
        unknown = {
            row.originator_id
            for row in rows
            if row.topic in topics.ACCOUNT_KINDS and row.originator_id not in self._customers
        }
        found = first_states(self.recorder, unknown)
        with self._lock:
            for account_id, state in found.items():
                customer_id = _decoded(state).get("customer_id")
                if customer_id:
                    self._customers[account_id] = customer_id
            while len(self._customers) > 100_000:
                self._customers.popitem(last=False)

    # ---- pages -----------------------------------------------------------------------------
    def page(self, *, customer_id: str | None, from_position: int, limit: int) -> HistoryPage:
        if customer_id is None:
            notes = self.recorder.select_notifications(
                start=max(from_position, 0), limit=limit, inclusive_of_start=True
            )
            rows = [StoredRow.of(n) for n in notes]
            items = self.describe_all(rows)
            return HistoryPage(items, rows[-1].position + 1 if len(rows) == limit else None)
        return self._customer_page(customer_id, from_position, limit)

    def _customer_page(self, customer_id: str, from_position: int, limit: int) -> HistoryPage:
        account_id = CustomerAccount.create_id(customer_id)
        account_events = self.recorder.select_events(account_id)
        if not account_events:
            raise UnknownCustomer(f"customer {customer_id!r} is not known to the ledger")
        with self._lock:
            self._customers[account_id] = customer_id
        event_ids = {
            event_id
            for stored in account_events
            if (event_id := _decoded(stored.state).get("event_id"))
        }
        originators = [account_id, *(IntakeRecord.create_id(e) for e in sorted(event_ids))]
        items: list[dict[str, Any]] = []
        after = from_position - 1
        while True:
            rows = select_of_originators(self.recorder, originators, after=after, limit=limit)
            for item in self.describe_all(rows):
                # A referrer's account names the referee's referral event: not theirs.
                if item["customer_id"] == customer_id:
                    items.append(item)
            if len(items) >= limit:
                items = items[:limit]
                return HistoryPage(items, items[-1]["position"] + 1)
            if len(rows) < limit:
                return HistoryPage(items, None)
            after = rows[-1].position
