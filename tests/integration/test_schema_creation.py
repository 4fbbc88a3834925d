"""Processes that start together on one new database (compose starts serve, consume,
project and relay at once) each create the ledger's own tables: none of them may fail."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from services.audit.chain import ChainTable
from services.ledger.adapters.sql import Database
from services.ledger.adapters.store import StoreURL
from services.projections.tables import ProjectionTables

STARTERS = 6


def start_together(url: str, create: Callable[[Database], None]) -> list[BaseException]:
    """`STARTERS` threads, each with its own connection, run `create` at the same moment."""
    barrier = threading.Barrier(STARTERS)
    failures: list[BaseException] = []
    databases = [Database(StoreURL.parse(url), pool_size=1) for _ in range(STARTERS)]

    def starter(db: Database) -> None:
        with db.reading() as cur:  # the connection is open before the race starts
            cur.execute("SELECT 1")
        barrier.wait()
        try:
            create(db)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=starter, args=(db,)) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for db in databases:
        db.close()
    return failures


@pytest.mark.parametrize("attempt", range(3))
def test_projection_and_chain_tables_created_at_once_by_many(store_url: str, attempt: int) -> None:
    prefix = f"race{attempt}_"

    def create(db: Database) -> None:
        ProjectionTables(db, prefix).create()
        ChainTable(db, f"race{attempt}_chain").create()

    assert start_together(store_url, create) == []
    db = Database(StoreURL.parse(store_url))
    try:
        tables = ProjectionTables(db, prefix)
        assert tables.exists() and tables.read_position() == 0
        assert ChainTable(db, f"race{attempt}_chain").head() is None
    finally:
        db.close()
