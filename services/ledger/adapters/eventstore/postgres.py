"""A PostgreSQL application recorder that inserts a batch with binary parameters.

The library's recorder sends a batch as one array of a composite type in text format,
so every event's state bytes are regex-escaped on the client: on a 500-event batch that
escaping cost more than the insert itself. This subclass keeps everything else of the
library (the table lock that keeps positions in commit order, NOTIFY, the schema) and
only sends four typed arrays, binary-encoded, to the same INSERT ... SELECT FROM unnest.
`LedgerPostgresFactory` is the library's PostgreSQL factory with this recorder: `StoreURL`
names it in the library's `PERSISTENCE_MODULE` setting.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import (
    InterfaceError,
    InternalError,
    OperationalError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore, PostgresFactory
from eventsourcing.utils import retry
from psycopg import Connection, Cursor
from psycopg.errors import IdleInTransactionSessionTimeout
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

# pg_advisory_lock key serializing the event store's DDL ("ledger" as an int).
SCHEMA_LOCK = 0x6C6564676572


class BinaryBatchPostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # %b, not %s: with %s psycopg dumps these lists as TEXT arrays, hex-encoding and
        # regex-escaping every state (6x slower on a 4,000-event batch).
        self._insert_binary = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))

    def create_table(self) -> None:
        """The library's DDL, one process at a time. Its statements (CREATE TABLE IF NOT
        EXISTS, types, indexes, functions) are not safe to run concurrently: processes
        starting together on one database (compose, a consumer group) failed with
        duplicate keys in pg_type / pg_class or "tuple concurrently updated"."""
        with self.datastore.get_connection() as conn:  # autocommit: a session lock
            conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
            try:
                super().create_table()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """The library's insert without its pipeline mode. psycopg's pipeline ignores a
        partial flush of the last message and then waits for a result the server cannot
        send: a batch of a few MB written while the server does not read (another writer
        holds the table lock, or the server is starved of CPU) hung for ever, the server
        in ClientRead. Outside a pipeline psycopg flushes until everything is sent; it
        costs two more round trips (lock, notify) per batch."""
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as curs,  # the ids as tuples, not dicts
        ):
            if not stored_events:
                return None
            self._insert_stored_events(curs, stored_events, **kwargs)
            ids = [row[0] for row in curs.fetchall()]
            if len(ids) != len(stored_events):
                raise ProgrammingError(f"got {len(ids)} notification ids for {len(stored_events)}")
            return ids

    def _insert_stored_events(
        self, curs: Cursor[Any], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self._insert_binary,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
            binary=True,
        )


class LedgerPostgresDatastore(PostgresDatastore):
    """The library's datastore, but a transaction the server ended for idling is a lost
    connection (OperationalError, tried again), not an InternalError that stops a process.

    The library sets `idle_in_transaction_session_timeout` (5 s): a client that stalls
    inside a transaction does not hold the events table's lock for ever. The server then
    ends the session before it reads the COMMIT, so nothing of the transaction is kept
    and the same write may run again. The fault soak's consumer, frozen 20 s on an
    overloaded host between its insert and its commit, exited 1 on it."""

    @contextmanager
    def get_connection(self) -> Iterator[Connection[Any]]:
        try:
            with super().get_connection() as conn:
                yield conn
        except InternalError as error:
            if isinstance(error.__cause__, IdleInTransactionSessionTimeout):
                raise OperationalError(str(error)) from error.__cause__
            raise


class LedgerPostgresFactory(PostgresFactory):
    application_recorder_class = BinaryBatchPostgresRecorder

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The library builds its datastore in here; this one is the same with one more rule.
        self.datastore.__class__ = LedgerPostgresDatastore
