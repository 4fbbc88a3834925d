"""Typed from the edge in: a valid POS document becomes its command once, the ledger runs
commands only, and a command's typed effect is the JSON the intake record stores and the
API sends (domain/commands.py, domain/effects.py, application/intake.py)."""

from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.ledger.adapters.contract import (
    EVENT_TYPES,
    ContractViolation,
    parse_command,
    schema_dir,
    validate_command,
)
from services.ledger.application.commands import HANDLERS
from services.ledger.application.intake import Intake, Invalid
from services.ledger.application.ledger import Ledger
from services.ledger.application.outcomes import Outcome, Status
from services.ledger.domain import errors
from services.ledger.domain.commands import (
    COMMANDS,
    LATEST_OCCURRED_AT,
    PosCommand,
    RecordPurchase,
    RecordRefund,
    UnknownEventType,
    command_of,
)
from services.ledger.domain.effects import (
    FollowUpsApplied,
    Parked,
    PosEffect,
    PurchaseEffect,
    as_json,
)
from services.ledger.domain.intake import IntakeRecord
from services.ledger.domain.rules import ProgramRules

EXAMPLES = sorted((schema_dir() / "examples").glob("*.json"))
# Purchases first, then what follows up on them, so that every example is accepted.
ORDER = ("enrolment", "purchase", "referral", "review", "goodwill", "incident", "redemption")


def example(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(path.read_bytes())
    return document


def ledger() -> Ledger:
    return Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, rules=ProgramRules())


def fresh(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The example dated an hour ago (the examples' dates are fixed; the ledger refuses a
    lot that expired before it was recorded)."""
    return {**document, "occurred_at": "2026-11-30T10:00:00+00:00", **changes}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_turns_into_the_command_of_its_type(path: Path) -> None:
    document = example(path)

    command = parse_command(path.read_bytes())

    assert type(command) is COMMANDS[document["type"]]
    assert command == validate_command(document) == command_of(document)
    assert (command.event_id, command.customer_id) == (
        document["event_id"],
        document["customer_id"],
    )
    assert command.occurred_at.tzinfo is UTC
    assert command.document == document, "the document travels as received"
    with pytest.raises(dataclasses.FrozenInstanceError):
        command.event_id = "other"  # type: ignore[misc]
    assert not hasattr(command, "__dict__"), "commands have slots"


def test_amounts_are_decimals_and_times_are_instants() -> None:
    command = parse_command(
        (schema_dir() / "examples" / "purchase-points-tender.json").read_bytes()
    )

    assert isinstance(command, RecordPurchase)
    assert isinstance(command.amount, Decimal) and isinstance(command.points_tender, Decimal)
    refund = parse_command((schema_dir() / "examples" / "refund.json").read_bytes())
    assert isinstance(refund, RecordRefund)
    assert refund.amount == Decimal("25.40") and refund.original == refund.original_event_id
    assert refund.occurred_at == datetime(2026, 3, 5, 10, 0, tzinfo=UTC)


def test_every_event_type_of_the_contract_has_a_command_and_a_handler() -> None:
    assert set(EVENT_TYPES) | {"opening_balance"} == set(COMMANDS)
    assert set(HANDLERS) == set(COMMANDS.values())
    assert all(issubclass(c, PosCommand) for c in COMMANDS.values())


def test_an_unknown_type_cannot_reach_the_ledger() -> None:
    document = {**example(schema_dir() / "examples" / "redemption.json"), "type": "lottery"}
    book = ledger()
    before = book.position()

    with pytest.raises(ContractViolation):
        validate_command(document)
    with pytest.raises(UnknownEventType):
        command_of(document)
    with pytest.raises(UnknownEventType):
        book.record_batch([document])
    assert book.position() == before, "nothing was stored"


def test_a_time_past_the_calendar_is_a_recorded_refusal_not_a_contract_error() -> None:
    document = fresh(example(schema_dir() / "examples" / "purchase.json"))
    document["occurred_at"] = "9999-12-31T23:59:59-23:59"
    command = validate_command(document)
    assert command.occurred_at == LATEST_OCCURRED_AT

    [outcome] = ledger().record_batch([command])

    assert outcome.status == "rejected"
    assert isinstance(outcome.error, errors.TimestampOutOfRange)
    assert str(outcome.error) == (
        "occurred_at '9999-12-31T23:59:59-23:59' is not before 9000-01-01"
    )


def test_each_accepted_effect_is_typed_and_is_the_stored_json_byte_for_byte() -> None:
    book = ledger()
    documents = sorted(
        (fresh(example(path)) for path in EXAMPLES),
        key=lambda d: ORDER.index(d["type"]) if d["type"] in ORDER else len(ORDER),
    )

    outcomes = book.record_batch([validate_command(d) for d in documents])

    accepted = [o for o in outcomes if o.status == "accepted"]
    assert len({type(o.effect) for o in accepted}) >= 10, [(o.event_id, o.error) for o in outcomes]
    typed = [o for o in accepted if isinstance(o.effect, PosEffect)]
    # A follow-up released by the same batch answers the JSON its record stores.
    assert len(typed) >= len(accepted) - 2
    for outcome in accepted:
        stored = book.repository.get(IntakeRecord.create_id(outcome.event_id)).effect
        assert orjson.dumps(as_json(outcome.effect)) == orjson.dumps(stored)
        assert outcome.effect == stored and dict(outcome.effect) == stored


def test_a_purchase_effect_leaves_out_what_only_campaigns_add() -> None:
    [outcome] = ledger().record_batch([fresh(example(schema_dir() / "examples" / "purchase.json"))])

    assert isinstance(outcome.effect, PurchaseEffect)
    assert list(outcome.effect.to_json()) == [
        "points",
        "earned_on",
        "status",
        "lot_id",
        "matures_at",
        "expires_at",
        "tier",
        "multiplier",
        "rule_version",
    ]
    with pytest.raises(TypeError):  # an answer of another shape fails loudly
        PurchaseEffect.of({**outcome.effect.to_json(), "bonus": 1})


def test_a_parked_follow_up_and_its_release_answer_their_documented_json() -> None:
    book = ledger()
    purchase = fresh(example(schema_dir() / "examples" / "purchase.json"))
    refund = fresh(example(schema_dir() / "examples" / "refund.json"))

    [parked] = book.record_batch([refund])
    [bought] = book.record_batch([purchase])

    assert parked.effect == Parked(original_event_id=purchase["event_id"])
    assert parked.effect.to_json() == {"original_event_id": purchase["event_id"]}
    assert isinstance(bought.effect, FollowUpsApplied)
    assert bought.effect.to_json()["applied_follow_ups"] == [refund["event_id"]]
    assert list(bought.effect.to_json())[:-1] == list(bought.effect.effect.to_json())


def test_the_intake_answers_in_the_items_order_and_keeps_refused_items_from_the_ledger() -> None:
    book = ledger()
    purchase = fresh(example(schema_dir() / "examples" / "purchase.json"))
    items = [b"not json", orjson.dumps(purchase), b'{"type": "lottery"}', orjson.dumps(purchase)]

    before = book.position()

    results = Intake(book).submit(items, parse_command)

    assert [type(r).__name__ for r in results] == ["Invalid", "Outcome", "Invalid", "Outcome"]
    first, second = results[1], results[3]
    assert isinstance(first, Outcome) and isinstance(second, Outcome)
    assert (first.status, second.status) == ("accepted", "duplicate")
    assert isinstance(results[0], Invalid) and results[0].violation.problem_type == "malformed-json"
    assert isinstance(results[2], Invalid) and results[2].violation.problem_type == "invalid-event"
    assert isinstance(first.effect, PurchaseEffect) and second.effect == first.effect
    alone = ledger()
    start = alone.position()
    alone.record_batch([purchase])
    assert book.position() - before == alone.position() - start, "the purchase alone was stored"


def test_an_outcome_status_is_one_of_four_words() -> None:
    assert typing.get_args(Status) == ("accepted", "duplicate", "rejected", "parked")


def test_an_effect_reads_as_its_json_object() -> None:
    [outcome] = ledger().record_batch([fresh(example(schema_dir() / "examples" / "purchase.json"))])
    effect = outcome.effect
    assert isinstance(effect, PurchaseEffect)

    assert {key: effect[key] for key in effect} == effect.to_json() == dict(effect)
    assert len(effect) == len(effect.to_json()) and "campaigns" not in effect
    with pytest.raises(KeyError):
        effect["campaigns"]  # left out: the ledger has no campaigns
    applied = FollowUpsApplied(effect=effect, applied_follow_ups=["r-1"])
    assert applied["points"] == effect.points and applied["applied_follow_ups"] == ["r-1"]
    assert dict(applied) == {**effect.to_json(), "applied_follow_ups": ["r-1"]}
