"""Connections to the store's own database, for the tables beside the event store
(projections, outbox, hash chain). One small adapter for both dialects:

- SQL is written once with `?` placeholders; on PostgreSQL they become `%s`.
- `transaction()` is a unit of work: it commits on success, rolls back on error. On SQLite
  it starts with `BEGIN IMMEDIATE` (one writer at a time, no upgrade deadlocks); on
  PostgreSQL connections come from a small pool.
- `dialect` lets callers pick the few statements that differ (column types, `RETURNING`).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
from eventsourcing.persistence import InterfaceError, OperationalError

from services.infrastructure.store import StoreURL

# A lost connection (a restarted server), a deadlock, a busy SQLite file: the same work
# can succeed on another try, so a long-running process waits and tries again instead of
# stopping. Anything else is a bug and stops it.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    InterfaceError,
    OperationalError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg.errors.IdleInTransactionSessionTimeout,  # the server ended an idle transaction
    psycopg_pool.PoolTimeout,
    sqlite3.OperationalError,
)

_PLACEHOLDER = re.compile(r"\?")
# The advisory lock key every DDL of the ledger's own tables takes (see `Database.schema`).
SCHEMA_LOCK = 0x6C6F79616C7479  # "loyalty"


def code_point_order(dialect: str) -> str:
    """The COLLATE clause that compares text by code point, as SQLite and Python do:
    `COLLATE "C"` on PostgreSQL (whatever the database's locale), nothing on SQLite."""
    return ' COLLATE "C"' if dialect == "postgres" else ""


class Cursor:
    """A DB-API cursor that speaks `?` placeholders on both dialects."""

    def __init__(self, raw: Any, dialect: str) -> None:
        self.raw = raw
        self.dialect = dialect

    def _sql(self, sql: str) -> str:
        return _PLACEHOLDER.sub("%s", sql) if self.dialect == "postgres" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        self.raw.execute(self._sql(sql), params)
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.raw.executemany(self._sql(sql), rows)

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self.raw.fetchone()
        return tuple(row) if row is not None else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.raw.fetchall()]

    @property
    def rowcount(self) -> int:
        return int(self.raw.rowcount)


SQLITE_BUSY_SECONDS = 30


def _wal(conn: sqlite3.Connection) -> None:
    """Put the file in WAL mode (it stays so). The switch takes the file's exclusive
    lock and, unlike other statements, does not wait for it: connections opened at once
    on a new file (`make run` starts the API, the projections and the chain follower
    together) failed with "database is locked". So: retry while it is busy."""
    deadline = time.monotonic() + SQLITE_BUSY_SECONDS
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class Database:
    def __init__(self, store: StoreURL, *, pool_size: int = 4) -> None:
        self.store = store
        self.dialect = store.kind
        self._local = threading.local()
        self._pool: Any = None
        self._pool_size = pool_size
        self._lock = threading.Lock()

    # ---- connections -------------------------------------------------------------------
    def _sqlite(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.store.path not in (":memory:",):
                Path(self.store.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.store.path,
                timeout=SQLITE_BUSY_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
            _wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def _postgres_pool(self) -> Any:
        with self._lock:
            if self._pool is None:
                from psycopg_pool import ConnectionPool

                self._pool = ConnectionPool(
                    self.store.conninfo(),
                    min_size=1,
                    max_size=self._pool_size,
                    open=True,
                    timeout=30,
                )
            return self._pool

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """A read-write unit of work."""
        if self.dialect == "sqlite":
            conn = self._sqlite()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield Cursor(conn.cursor(), "sqlite")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return
        with self._postgres_pool().connection() as conn, conn.transaction():
            yield Cursor(conn.cursor(), "postgres")

    @contextmanager
    def schema(self) -> Iterator[Cursor]:
        """A unit of work for DDL. On PostgreSQL it first takes a transaction-level advisory
        lock: `CREATE TABLE IF NOT EXISTS` from two processes starting together (compose
        starts serve, consume, project and relay at once) fails with a duplicate key in
        pg_type. On SQLite, `BEGIN IMMEDIATE` already lets one writer in at a time."""
        with self.transaction() as cur:
            if self.dialect == "postgres":
                cur.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))
            yield cur

    @contextmanager
    def reading(self) -> Iterator[Cursor]:
        """A read-only snapshot (one transaction, so several queries agree)."""
        if self.dialect == "sqlite":
            conn = self._sqlite()
            conn.execute("BEGIN")
            try:
                yield Cursor(conn.cursor(), "sqlite")
            finally:
                conn.execute("ROLLBACK")
            return
        with self._postgres_pool().connection() as conn:
            conn.read_only = True
            try:
                with conn.transaction():
                    yield Cursor(conn.cursor(), "postgres")
            finally:
                conn.read_only = False

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # ---- the few differences ------------------------------------------------------------
    @property
    def serial_pk(self) -> str:
        """An auto-increment primary key column type."""
        return (
            "BIGSERIAL PRIMARY KEY"
            if self.dialect == "postgres"
            else "INTEGER PRIMARY KEY AUTOINCREMENT"
        )

    @property
    def blob(self) -> str:
        return "BYTEA" if self.dialect == "postgres" else "BLOB"
