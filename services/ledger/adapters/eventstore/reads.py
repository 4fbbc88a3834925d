"""Reading the recorder's own tables, faster than its API.

`tuple_cursor` hands out a cursor on the recorder's own connection that returns plain
tuples on both dialects (the library's return dicts, and a `Notification` per row from
`select_notifications`); `in_memory_index` is the in-memory recorder's private index.
Callers write their SQL against `events_table(recorder)`, whose columns are the
library's (`originator_id, originator_version, topic, state`, and the position:
`notification_id` on PostgreSQL, `rowid` on SQLite).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import ApplicationRecorder


@contextmanager
def tuple_cursor(recorder: ApplicationRecorder, *, postgres: bool) -> Iterator[Any]:
    """A cursor whose rows are tuples, in a read-only unit: on PostgreSQL a binary
    cursor of a pooled connection (autocommit: each statement its own snapshot), on
    SQLite the library's read transaction with the row factory taken off."""
    datastore: Any = recorder.datastore  # type: ignore[attr-defined]
    if postgres:
        from psycopg.rows import tuple_row

        with (
            datastore.get_connection() as conn,
            conn.cursor(binary=True, row_factory=tuple_row) as curs,
        ):
            yield curs
        return
    with datastore.transaction(commit=False) as curs:
        curs.sqlite_cursor.row_factory = None  # the library's sqlite3.Row costs per row
        yield curs


def in_memory_index(recorder: ApplicationRecorder) -> dict[str, dict[int, int]] | None:
    """The in-memory (POPO) recorder's index: version -> list index, by originator id
    (None for another recorder)."""
    from eventsourcing.popo import POPOApplicationRecorder

    if isinstance(recorder, POPOApplicationRecorder):
        return recorder._stored_events_index
    return None
