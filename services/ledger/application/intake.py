"""The one way a POS event comes in: check, build the command, record, answer in order.

`POST /v1/events`, `POST /v1/events:batch` (`api/events.py`) and the Kafka consumer
(`ingest/kafka_consumer.py`) all call `Intake.submit` with what they received (bytes, a
batch's decoded items, messages) and the edge's own way of reading one item into a
command (`contract.parse_command`, `contract.validate_item`, the consumer's `parse`). An
item the contract refuses never reaches the ledger: its result is `Invalid` with the
`ContractViolation`. All valid ones are recorded with ONE `Ledger.record_batch` (one
transaction), and each result is in the position of its item. What an edge answers
(a response body, a dead letter) and counts on `/metrics` stays with the edge.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from services.ledger.adapters.contract import ContractViolation
from services.ledger.application.outcomes import Outcome
from services.ledger.domain.commands import PosCommand

if TYPE_CHECKING:
    from services.ledger.application.ledger import Ledger

Item = TypeVar("Item")
Source = dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Invalid:
    """An item the contract refused: nothing was read from or written to the store."""

    violation: ContractViolation


Result = Outcome | Invalid


class Intake:
    """Validate → command → `Ledger.record_batch` → results in the items' order."""

    def __init__(self, ledger: Ledger, *, patience: float = 0.0) -> None:
        self.ledger = ledger
        self.patience = patience  # seconds a batch may keep losing races (record_batch)

    def submit(
        self,
        items: Sequence[Item],
        parse: Callable[[Item], PosCommand],
        sources: Callable[[Item], Source] | None = None,
        timed: Callable[[float], None] | None = None,
    ) -> list[Result]:
        """One result per item. `parse` reads an item into its command or raises
        `ContractViolation`; `sources` says where an item came from (kept with a
        refusal); `timed` is told how long the ledger took (when it was called)."""
        results: list[Result | None] = [None] * len(items)
        commands: list[PosCommand] = []
        at: list[int] = []
        for index, item in enumerate(items):
            try:
                commands.append(parse(item))
            except ContractViolation as violation:
                results[index] = Invalid(violation)
                continue
            at.append(index)
        if commands:
            started = time.perf_counter()
            outcomes = self.ledger.record_batch(
                commands,
                [sources(items[i]) for i in at] if sources else None,
                patience=self.patience,
            )
            if timed is not None:
                timed(time.perf_counter() - started)
            for index, outcome in zip(at, outcomes, strict=True):
                results[index] = outcome
        return [result for result in results if result is not None]
