"""The event store adapter on PostgreSQL against the library's own path: the binary-batch
recorder, the orjson transcoder and the fast append store what the library's recorder,
`JSONTranscoder` and `save()` store; the log reader reads what `select_notifications`
reads; the recorder attributes the adapter uses are there (the canary's live half)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.infrastructure.store import StoreURL
from services.ledger.adapters.eventstore.postgres import BinaryBatchPostgresRecorder
from services.ledger.adapters.eventstore.surface import check
from services.ledger.application.ledger import Ledger
from services.ledger.domain import topics
from services.ledger.domain.rules import ProgramRules
from services.projections.runner import TOPICS
from tests.support import servers
from tests.support.eventstore import (
    LibraryLedger,
    assert_log_reader_reads_what_the_library_reads,
    frozen_library_clock,
    stored_log,
    story,
)


@pytest.fixture
def library_url(postgres_server_dsn: str) -> Iterator[str]:
    with servers.scratch_database(postgres_server_dsn, "library") as url:
        yield url


def test_the_ledger_on_postgres_stores_what_the_library_stores(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str, library_url: str
) -> None:
    library_env = StoreURL.parse(library_url).eventsourcing_env()
    library_env["PERSISTENCE_MODULE"] = "eventsourcing.postgres"
    with frozen_library_clock(monkeypatch):
        ours = Ledger(env=StoreURL.parse(postgres_url).eventsourcing_env(), rules=ProgramRules())
        library = LibraryLedger(env=library_env, rules=ProgramRules())
        try:
            our_answers, library_answers = story(ours), story(library)
            assert type(ours.recorder) is BinaryBatchPostgresRecorder
            assert type(library.recorder).__module__ == "eventsourcing.postgres"
            log = stored_log(ours.recorder)
            assert len(log) > 20
            assert log == stored_log(library.recorder)
            assert our_answers == library_answers
        finally:
            ours.close()
            library.close()


def test_the_log_reader_on_postgres_reads_what_select_notifications_reads(
    postgres_url: str,
) -> None:
    ledger = Ledger(env=StoreURL.parse(postgres_url).eventsourcing_env(), rules=ProgramRules())
    try:
        story(ledger)
        assert len(assert_log_reader_reads_what_the_library_reads(ledger.recorder, TOPICS)) > 20
        some = [topics.OPENED]
        read_some = assert_log_reader_reads_what_the_library_reads(ledger.recorder, some)
        assert {topic for _, _, topic, _ in read_some} == {topics.OPENED}
    finally:
        ledger.close()


def test_the_postgres_attributes_the_adapter_reads_are_there(postgres_url: str) -> None:
    ledger = Ledger(env=StoreURL.parse(postgres_url).eventsourcing_env(), rules=ProgramRules())
    try:
        recorder = ledger.recorder
        instances = {
            "eventsourcing.postgres:PostgresApplicationRecorder": recorder,
            "eventsourcing.postgres:PostgresDatastore": recorder.datastore,  # type: ignore[attr-defined]
        }
        assert check(instances) == []
    finally:
        ledger.close()
