"""The PostgreSQL recorder under the conditions of several ledger processes on one
database: processes starting at once, and a writer waiting for another's table lock."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from services.infrastructure.store import StoreURL
from services.ledger.application.ledger import Ledger
from services.ledger.domain.rules import ProgramRules
from tests.integration.kafka_support import purchase

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

EVENTS = 10_000  # ~10 MB of stored events: more than the socket buffers hold
LOCK_SECONDS = 2.0


def test_a_big_batch_waits_for_the_table_lock_and_commits(postgres_url: str) -> None:
    ledger = Ledger(env=StoreURL.parse(postgres_url).eventsourcing_env(), rules=ProgramRules())
    documents = [purchase(f"c{n % 3000}", f"e-{n}", "10.00", n) for n in range(EVENTS)]
    locked = threading.Event()

    def hold_the_table_lock() -> None:
        with psycopg.connect(postgres_url) as conn:
            conn.execute("LOCK TABLE ledger_events IN EXCLUSIVE MODE")
            locked.set()
            time.sleep(LOCK_SECONDS)

    holder = threading.Thread(target=hold_the_table_lock)
    holder.start()
    assert locked.wait(10)
    outcome: list[int] = []
    saver = threading.Thread(
        target=lambda: outcome.append(len(ledger.record_batch(documents))), daemon=True
    )
    saver.start()
    saver.join(timeout=60)
    holder.join()
    try:
        assert outcome == [EVENTS], "record_batch hung after the lock was released"
    finally:
        if not saver.is_alive():
            ledger.close()


def test_ledgers_starting_at_once_on_an_empty_database_all_start(postgres_url: str) -> None:
    """Four processes' first start (e.g. `docker compose up`, a consumer group) ran the
    event store's DDL concurrently; all but one failed on duplicate pg_type/pg_class keys."""
    env = StoreURL.parse(postgres_url).eventsourcing_env()
    barrier = threading.Barrier(4)
    started: list[Ledger] = []
    failed: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            started.append(Ledger(env=dict(env), rules=ProgramRules()))
        except BaseException as error:
            failed.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for ledger in started:
        ledger.close()
    assert failed == []
    assert len(started) == 4
