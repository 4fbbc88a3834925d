"""What the ledger's commands answer: an outcome per POS event, a rule change, a sweep."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from services.ledger.domain import errors
from services.ledger.domain.account import Effect
from services.ledger.domain.effects import Parked
from services.ledger.domain.intake import IntakeRecord
from services.ledger.domain.rules import ProgramRules

# A stored intake verdict (services/ledger/application/parking.py names it too).
Verdict = IntakeRecord.Accepted | IntakeRecord.Refused | IntakeRecord.Parked

Status = Literal["accepted", "duplicate", "rejected", "parked"]
# What an outcome says the event did: a typed effect (`domain/effects.py`) for a POS event
# judged now, the stored JSON object for a repeat, the account's answer for an admin's
# decision. The edges send `effects.as_json(effect)`.
Answer = Mapping[str, Any]


@dataclass
class Outcome:
    """What happened to one submitted event: the HTTP and Kafka answers are built from it.

    A `rejected` outcome with `repeat` set is a repeat of a refusal recorded earlier (the
    same verdict, not judged again); `first_source` is where that refusal's message came
    from (None: not from Kafka)."""

    event_id: str
    status: Status
    position: int | None = None
    effect: Answer = field(default_factory=dict)
    error: errors.LedgerError | None = None
    customer_id: str | None = None
    repeat: bool = False
    first_source: dict[str, Any] | None = None
    late: bool = False  # a repeat of a parked event refused later: its letter is a late one


@dataclass(frozen=True)
class RuleChange:
    """A rule change's answer: the rules in force, and the request when it waits."""

    rules: ProgramRules
    request_id: str | None = None
    loosened: list[str] = field(default_factory=list)


@dataclass
class TickResult:
    now: str
    recorded: list[Effect]  # empty when the sweep was asked for its counts only
    position: int
    counts: dict[str, int] = field(default_factory=dict)  # what was recorded, by action

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def repeat_of(
    earlier: IntakeRecord | Verdict,
    print_: str,
    position: int | None,
) -> Outcome:
    if earlier.fingerprint != print_:
        conflict = errors.EventIdConflict(
            f"event_id {earlier.event_id!r} was recorded with other content; "
            "a retry must resend the same event",
            field="event_id",
        )
        return Outcome(
            earlier.event_id, "rejected", error=conflict, customer_id=earlier.customer_id
        )
    if isinstance(earlier, IntakeRecord.Parked) or getattr(earlier, "parked", False):
        return Outcome(
            earlier.event_id,
            "parked",
            position=position,
            effect=Parked(original_event_id=getattr(earlier, "original_event_id", None)),
            customer_id=earlier.customer_id,
        )
    refusal = getattr(earlier, "refusal", None)
    if refusal is not None:
        return Outcome(
            earlier.event_id,
            "rejected",
            error=errors.refusal(refusal["slug"], refusal["detail"], refusal["field"]),
            customer_id=earlier.customer_id,
            repeat=True,
            first_source=getattr(earlier, "source", None),
            late=getattr(earlier, "refused_late", False),
        )
    return Outcome(
        earlier.event_id,
        "duplicate",
        position=position,
        effect=getattr(earlier, "effect", None) or {},
        customer_id=earlier.customer_id,
    )
