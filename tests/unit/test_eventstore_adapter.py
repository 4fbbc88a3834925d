"""Each shortcut of the event store adapter against the library's own path: the fast
append stores what `Application.save` would, the hand-built intake events are what the
aggregate's constructor makes, the orjson transcoder writes `JSONTranscoder`'s bytes,
the stable-positions SQLite recorder the library recorder's log, and the projections'
log reader returns what `select_notifications` returns (PostgreSQL:
tests/integration/test_eventstore_on_postgres.py)."""

from __future__ import annotations

import copy
import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder
from eventsourcing.utils import get_topic

from services.infrastructure.store import StoreURL
from services.ledger.adapters.eventstore import TRANSCODER_TOPIC
from services.ledger.adapters.eventstore.sqlite import StablePositionsSQLiteRecorder
from services.ledger.adapters.eventstore.transcoder import OrjsonTranscoder
from services.ledger.adapters.eventstore.writes import append
from services.ledger.application.ledger import Ledger
from services.ledger.domain import errors, topics
from services.ledger.domain.intake import IntakeRecord
from services.ledger.domain.program import Program
from services.ledger.domain.rules import ProgramRules
from services.projections.runner import TOPICS
from tests.support.eventstore import (
    LibraryLedger,
    assert_log_reader_reads_what_the_library_reads,
    frozen_library_clock,
    stored_log,
    story,
)

IN_MEMORY = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


def told_twice(
    monkeypatch: pytest.MonkeyPatch, ours_env: dict[str, str], library_env: dict[str, str]
) -> tuple[Ledger, Ledger, list[Any], list[Any]]:
    with frozen_library_clock(monkeypatch):
        ours = Ledger(env=ours_env, rules=ProgramRules())
        library = LibraryLedger(env=library_env, rules=ProgramRules())
        return ours, library, story(ours), story(library)


def test_the_in_memory_ledger_stores_what_the_librarys_save_stores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ours, library, our_answers, library_answers = told_twice(monkeypatch, IN_MEMORY, IN_MEMORY)
    assert isinstance(ours.mapper.transcoder, OrjsonTranscoder)
    assert type(library.mapper.transcoder) is JSONTranscoder
    log = stored_log(ours.recorder)
    assert len(log) > 20
    assert log == stored_log(library.recorder)
    assert our_answers == library_answers


def test_the_embedded_ledger_stores_what_the_library_stores(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Our recorder and transcoder and `_append` on one file, the library's on another:
    the same events at the same positions, the same bytes."""
    ours_env = StoreURL.parse(f"sqlite:///{tmp_path / 'ours.db'}").eventsourcing_env()
    library_env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite"}
    library_env["SQLITE_DBNAME"] = str(tmp_path / "library.db")
    ours, library, our_answers, library_answers = told_twice(monkeypatch, ours_env, library_env)
    assert type(ours.recorder) is StablePositionsSQLiteRecorder
    assert type(library.recorder).__module__ == "eventsourcing.sqlite"
    log = stored_log(ours.recorder)
    assert {topic for _, _, _, topic, _ in log} >= {
        topics.OPENED,
        get_topic(IntakeRecord.Accepted),
        get_topic(IntakeRecord.Refused),
    }
    assert log == stored_log(library.recorder)
    assert our_answers == library_answers


def test_the_log_reader_reads_what_select_notifications_reads(tmp_path: Path) -> None:
    ledger = Ledger(
        env=StoreURL.parse(f"sqlite:///{tmp_path / 'ours.db'}").eventsourcing_env(),
        rules=ProgramRules(),
    )
    story(ledger)
    read = assert_log_reader_reads_what_the_library_reads(ledger.recorder, TOPICS)
    assert len(read) > 20
    some = [topics.OPENED, get_topic(IntakeRecord.Accepted)]
    read_some = assert_log_reader_reads_what_the_library_reads(ledger.recorder, some)
    assert 0 < len(read_some) < len(stored_log(ledger.recorder))
    assert {topic for _, _, topic, _ in read_some} == set(some)


FIELDS = {
    "event_id": "pos-1",
    "customer_id": "anna",
    "type": "purchase",
    "fingerprint": "ab" * 32,
    "document": {"event_id": "pos-1", "amount": {"value": "1.00", "currency": "EUR"}},
}


def test_a_hand_built_acceptance_is_what_the_constructor_makes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    effect = {"points": 1, "lot": "pos-1"}
    with frozen_library_clock(monkeypatch):
        built = IntakeRecord.accepted(**FIELDS, effect=effect)
        (constructed,) = IntakeRecord(**FIELDS, effect=effect).collect_events()
    assert type(built) is type(constructed) is IntakeRecord.Accepted
    assert built == constructed
    assert built.originator_topic == constructed.originator_topic
    assert built.timestamp == constructed.timestamp


def test_a_hand_built_refusal_is_what_the_constructor_makes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    error = errors.InsufficientPoints("only 3 points", field="points")
    source = {"topic": "pos", "partition": 1, "offset": 7}
    with frozen_library_clock(monkeypatch):
        built = IntakeRecord.refused(**FIELDS, error=error, source=source)
        constructed_record = IntakeRecord._create(
            IntakeRecord.Refused,
            id=IntakeRecord.create_id(FIELDS["event_id"]),
            **FIELDS,
            refusal={"slug": error.slug, "detail": error.detail, "field": error.field},
            source=source,
        )
        (constructed,) = constructed_record.collect_events()
    assert type(built) is type(constructed) is IntakeRecord.Refused
    assert built == constructed
    record = built.mutate(None)
    assert (record.refusal, record.source) == (constructed_record.refusal, source)


def test_hand_built_events_store_as_the_constructors_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the ledger's mapper, the same stored event (topic, state, version)."""
    ledger = Ledger(env=IN_MEMORY, rules=ProgramRules())
    with frozen_library_clock(monkeypatch):
        built = ledger.mapper.to_stored_event(IntakeRecord.accepted(**FIELDS, effect={"n": 1}))
        (event,) = IntakeRecord(**FIELDS, effect={"n": 1}).collect_events()
        constructed = ledger.mapper.to_stored_event(event)
    assert built == constructed
    assert built.topic == get_topic(IntakeRecord.Accepted)


def test_append_answers_each_originators_last_position_as_save_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An aggregate with several pending events and a bare event, saved once each way."""
    env = {**IN_MEMORY, "TRANSCODER_TOPIC": TRANSCODER_TOPIC}
    with frozen_library_clock(monkeypatch):
        program = Program("default", ProgramRules().to_document(), "program file")
        for rate in ("2", "3"):
            rules = dataclasses.replace(ProgramRules(), earn_rate=Decimal(rate))
            assert program.change_rules(rules, changed_by="ivan", reason="spring")
        objs = [program, IntakeRecord.accepted(**FIELDS, effect={})]
        copies = copy.deepcopy(objs)
        ours, library = Application[UUID](env), Application[UUID](env)
        positions = append(ours.mapper, ours.recorder, objs)
        recordings = library.save(*copies)
    assert stored_log(ours.recorder) == stored_log(library.recorder)
    assert len(stored_log(ours.recorder)) == 4
    assert positions == {r.notification.originator_id: r.notification.id for r in recordings}
    assert positions[program.id] == 3
    assert program.collect_events() == []  # collected, as save collects them
