"""What personal text the stored bytes still hold (SPEC §11, docs/PRIVACY.md).

Erasure deletes a customer's key; it opens nothing and rewrites nothing. Events stored
before encryption keep their personal fields in plain text (class_version 1), and every
read answers "erased" for them once their customer is erased, but the bytes stay. This
scan says how much of that there is, and whose: the figure a data-protection officer asks
for before deciding on the re-chaining migration (docs/AUDIT.md). It only reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from eventsourcing.persistence import ApplicationRecorder

from services.audit.stored import count_after, iter_rows
from services.ledger.domain import topics
from services.ledger.domain.privacy import PERSONAL_FIELDS, POS_PERSONAL_FIELDS, Keyring


@dataclass
class PlaintextReport:
    checked: int = 0  # stored events read
    fields: Counter[str] = field(default_factory=Counter)  # sealed / plain / erased
    plain_by_customer: Counter[str] = field(default_factory=Counter)
    erased_customers: set[str] = field(default_factory=set)

    @property
    def plain_of_erased(self) -> int:
        """Plain-text personal fields still in the bytes of erased customers' events."""
        return sum(n for c, n in self.plain_by_customer.items() if c in self.erased_customers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "sealed": self.fields["sealed"],
            "plain": self.fields["plain"],
            "erased": self.fields["erased"],
            "customers_with_plain": len(self.plain_by_customer),
            "plain_of_erased_customers": self.plain_of_erased,
            "erased_customers_with_plain": sorted(
                set(self.plain_by_customer) & self.erased_customers
            ),
        }


def _shape(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return "plain"
    if isinstance(value, dict) and "sealed" in value:
        return "sealed"
    return "erased"


def scan(
    recorder: ApplicationRecorder,
    keys: Keyring | None,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> PlaintextReport:
    report = PlaintextReport()
    total = count_after(recorder, 0)
    customers: dict[Any, str] = {}  # account id -> customer id (from its Opened event)
    for row in iter_rows(recorder):
        report.checked += 1
        described = topics.describe(row.topic)
        if described is not None:
            aggregate, name = described
            state = orjson.loads(row.state)
            values: list[tuple[str | None, Any]] = []
            if aggregate == "account":
                if name == "Opened":
                    customers[row.originator_id] = state.get("customer_id")
                owner = customers.get(row.originator_id)
                values = [(owner, state.get(n)) for n in PERSONAL_FIELDS.get(name, ())]
            elif aggregate == "intake":
                document = state.get("document") or {}
                names = POS_PERSONAL_FIELDS.get(str(document.get("type")), ())
                values = [(state.get("customer_id"), document.get(n)) for n in names]
            for owner, value in values:
                shape = _shape(value)
                if shape is None:
                    continue
                report.fields[shape] += 1
                if shape == "plain" and owner:
                    report.plain_by_customer[owner] += 1
        if on_progress is not None and report.checked % 5_000 == 0:
            on_progress(report.checked, total)
    if on_progress is not None:
        on_progress(report.checked, total)
    if keys is not None:
        report.erased_customers = keys.erased(report.plain_by_customer)
    return report
