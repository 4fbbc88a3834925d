"""The embedded store's recorder: the library's SQLite application recorder, with positions
that nothing can renumber.

The library's `stored_events` table has no INTEGER PRIMARY KEY, so an event's position
(its notification id) is SQLite's implicit `rowid`, which `VACUUM` may renumber (SQLite's
documentation says so for every table without one). The positions are the ledger's
public clock: every answer names one, the hash chain links them, exports carry them. This
recorder declares the position as a column of its own, named `rowid` and INTEGER PRIMARY
KEY: it IS the rowid then (every query that reads `rowid` reads it, the library's
`SELECT rowid, *` included), but declared, so `VACUUM`, `.backup` and `.dump` keep it.
(originator_id, originator_version) stays unique, as before.

`LedgerSQLiteFactory` is the library's SQLite factory with this recorder: `StoreURL` names
it in the library's `PERSISTENCE_MODULE` setting.

A store created before has the old table: `migrate_positions` copies it once into the new
shape, each row at the position it had, in one transaction (`loyalty store migrate`).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore, SQLiteFactory

POSITION = "rowid"  # declared: see above


def _create_table(table: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {table} ("
        "originator_id TEXT, "
        "originator_version INTEGER, "
        "topic TEXT, "
        "state BLOB, "
        f"{POSITION} INTEGER PRIMARY KEY, "
        "UNIQUE (originator_id, originator_version))"
    )


class StablePositionsSQLiteRecorder(SQLiteApplicationRecorder):
    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name)
        self.insert_events_statement = (
            f"INSERT INTO {self.events_table_name} "
            "(originator_id, originator_version, topic, state) VALUES (?,?,?,?)"
        )

    def construct_create_table_statements(self) -> list[str]:
        return [_create_table(self.events_table_name)]


class LedgerSQLiteFactory(SQLiteFactory):
    application_recorder_class = StablePositionsSQLiteRecorder


def has_stable_positions(connection: Any, table: str = "stored_events") -> bool:
    """True when `table` declares its positions (or is not there yet)."""
    columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
    return not columns or POSITION in columns


def migrate_positions(path: str, table: str = "stored_events") -> int:
    """Copy an old-shape `table` into the stable shape, every row at its position; returns
    the rows copied (0: it had the new shape already). One transaction: all or nothing."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        if has_stable_positions(connection, table):
            return 0
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(_create_table(f"{table}_positions"))
        copied = connection.execute(
            f"INSERT INTO {table}_positions "
            f"(originator_id, originator_version, topic, state, {POSITION}) "
            f"SELECT originator_id, originator_version, topic, state, rowid FROM {table}"
        ).rowcount
        connection.execute(f"DROP TABLE {table}")
        connection.execute(f"ALTER TABLE {table}_positions RENAME TO {table}")
        connection.execute("COMMIT")
        return int(copied)
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    finally:
        connection.close()
