"""The upgrade canary: the library names the event store adapter relies on are still
there, with the signatures (and, where we override or repeat them, the bodies) it was
written against. An upgrade of `eventsourcing` that changes one fails here, naming it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import BaseAggregate
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from services.ledger.adapters.eventstore import surface
from services.ledger.adapters.eventstore.surface import SURFACE, Use, check

SERVICES = Path(__file__).parents[2] / "services"
ADAPTER = SERVICES / "ledger" / "adapters" / "eventstore"


@pytest.fixture
def instances() -> Iterator[dict[str, Any]]:
    """A live object of each library class whose attributes the adapter reads (all but
    PostgreSQL's, which need a server: tests/integration/test_eventstore_on_postgres.py)."""
    datastore = SQLiteDatastore(":memory:")
    try:
        recorder = SQLiteApplicationRecorder(datastore)
        with datastore.transaction(commit=False) as cursor:
            yield {
                "eventsourcing.application:ProcessingEvent": ProcessingEvent(),
                "eventsourcing.application:Repository": Application[Any]().repository,
                "eventsourcing.persistence:EventStore": Application[Any]().repository.event_store,
                "eventsourcing.domain:BaseAggregate": BaseAggregate,
                "eventsourcing.sqlite:SQLiteApplicationRecorder": recorder,
                "eventsourcing.sqlite:SQLiteCursor": cursor,
                "eventsourcing.popo:POPOApplicationRecorder": POPOApplicationRecorder(),
            }
    finally:
        datastore.close()


def test_every_library_name_the_adapter_relies_on_is_as_recorded(
    instances: dict[str, Any],
) -> None:
    assert check(instances) == []
    unchecked = {
        use.name.partition("#")[0]
        for use in SURFACE
        if use.how == "attribute" and use.name.partition("#")[0] not in instances
    }
    assert unchecked == {
        "eventsourcing.postgres:PostgresApplicationRecorder",
        "eventsourcing.postgres:PostgresDatastore",
    }


def test_a_changed_signature_body_or_name_is_named() -> None:
    changed = Use(
        "eventsourcing.postgres:PostgresApplicationRecorder._lock_table",
        "overrides",
        "postgres",
        "(self) -> 'None'",
        "0000000000000000",
    )
    gone = Use("eventsourcing.persistence:JSONTranscoder._encode_everything", "calls", "x", "()")
    no_attribute = Use("eventsourcing.application:ProcessingEvent#recordings", "attribute", "x")
    problems = check(
        {"eventsourcing.application:ProcessingEvent": ProcessingEvent()},
        (changed, gone, no_attribute),
    )
    assert len(problems) == 4
    assert problems[0].startswith(
        "eventsourcing.postgres:PostgresApplicationRecorder._lock_table changed signature "
        "(self) -> 'None' -> (self, curs: 'Cursor[DictRow]') -> 'None'"
    )
    assert problems[1].startswith(
        "eventsourcing.postgres:PostgresApplicationRecorder._lock_table changed its body"
    )
    assert problems[2].startswith("eventsourcing.persistence:JSONTranscoder._encode_everything")
    assert problems[3].startswith("eventsourcing.application:ProcessingEvent#recordings")


def test_the_record_printed_for_an_upgrade_is_the_record_kept() -> None:
    """`python -m ...eventstore.surface` prints what is kept here, on the tested version."""
    printed = surface.record()
    for use in SURFACE:
        assert repr(use.name) in printed
        if use.signature:
            assert repr(use.signature) in printed


def _private_names() -> set[str]:
    names = set()
    for use in SURFACE:
        last = re.split(r"[.#]", use.name)[-1]
        if last.startswith("_") and not last.startswith("__"):
            names.add(last)
    return names


def test_no_module_outside_the_adapter_touches_the_library_internals() -> None:
    """The adapter is the one place: its private names, the library's recorder setting,
    the SQLite cursor tweak and hand-built creation events appear nowhere else."""
    assert "_lock_table" in _private_names() and "_stored_events_index" in _private_names()
    words = [rf"\.{name}\b" for name in sorted(_private_names())]
    words += [r"\bAPPLICATION_RECORDER_TOPIC\b", r"\bsqlite_cursor\b", r"\boriginator_topic="]
    words += [r"\binsert_events_statement\b", r"\bProcessingEvent\b"]
    pattern = re.compile("|".join(words))
    offenders = [
        f"{path.relative_to(SERVICES)}: {match.group()}"
        for path in sorted(SERVICES.rglob("*.py"))
        if ADAPTER not in path.parents
        for match in pattern.finditer(path.read_text())
    ]
    assert offenders == []


def test_the_adapter_imports_nothing_of_the_ledger() -> None:
    """The domain imports the adapter (`writes.creation_event`): no cycle back."""
    importers = [
        path.name
        for path in sorted(ADAPTER.glob("*.py"))
        if re.search(r"^\s*(from|import) services\b", path.read_text(), re.MULTILINE)
    ]
    assert importers == []
