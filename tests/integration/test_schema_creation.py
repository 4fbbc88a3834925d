"""Processes that start together on one new database (compose starts serve, consume,
project and relay at once) each create the ledger's own tables: none of them may fail."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from services.audit.chain import ChainTable
from services.infrastructure.sql import Database
from services.infrastructure.store import StoreURL
from services.projections.tables import ProjectionTables

STARTERS = 6


def start_together(url: str, create: Callable[[Database], None]) -> list[BaseException]:
    """`STARTERS` threads, each with its own connection, run `create` at the same moment."""
    barrier = threading.Barrier(STARTERS)
    failures: list[BaseException] = []
    databases = [Database(StoreURL.parse(url), pool_size=1) for _ in range(STARTERS)]

    def starter(db: Database) -> None:
        try:
            with db.reading() as cur:  # the connection is open before the race starts
                cur.execute("SELECT 1")
            barrier.wait(timeout=60)
            create(db)
        except BaseException as error:  # a starter that fails must not leave the others
            failures.append(error)  # waiting at the barrier for ever
            barrier.abort()

    threads = [threading.Thread(target=starter, args=(db,)) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for db in databases:
        db.close()
    return failures


def test_connections_opened_at_once_on_a_new_sqlite_file_all_work(tmp_path: Path) -> None:
    """Switching a new file to WAL takes its exclusive lock without waiting for it: one
    in ~50 connections opened together failed with "database is locked"."""
    for attempt in range(40):
        url = f"sqlite:///{tmp_path / f'new-{attempt}.db'}"
        assert start_together(url, lambda db: None) == []


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


def test_tables_made_before_holds_get_the_held_columns_and_keep_their_rows(
    store_url: str,
) -> None:
    """A deployment's tables from before SPEC §9 (no `held`): the next start adds the
    column (0 for the rows it holds), and the rows are read and written as before."""
    db = Database(StoreURL.parse(store_url), pool_size=1)
    tables = ProjectionTables(db, "old_")
    try:
        with db.schema() as cur:
            cur.execute(
                "CREATE TABLE old_balance (customer_id TEXT NOT NULL PRIMARY KEY, "
                "available BIGINT NOT NULL, pending BIGINT NOT NULL, debt BIGINT NOT NULL, "
                "outstanding BIGINT NOT NULL, lifetime_earned BIGINT NOT NULL, "
                "redeemed BIGINT NOT NULL, expired BIGINT NOT NULL)"
            )
            cur.execute("INSERT INTO old_balance VALUES ('anna', 5, 6, 0, 11, 11, 0, 0)")
        tables.create()
        tables.create()  # idempotent
        assert tables.rows("balance") == [("anna", 5, 6, 0, 11, 11, 0, 0, 0)]
        with db.transaction() as cur:
            tables.upsert(cur, "balance", [("anna", 1, 6, 0, 11, 11, 0, 0, 4)])
        assert tables.rows("balance") == [("anna", 1, 6, 0, 11, 11, 0, 0, 4)]
    finally:
        tables.drop()
        db.close()
