"""The stored events as auditors see them: rows of the event store, read in store order.

The library's `select_notifications` pages through the whole store on both kinds of store;
the few reads it does not offer (the events of a set of aggregates from a position on, with
their positions) are here, written once per dialect. A position is the store's own:
SQLite `rowid`, PostgreSQL `notification_id`; both grow in commit order (one writer at a
time on SQLite, a table lock on PostgreSQL), so paging by position is stable while others
write, and positions may have gaps (PostgreSQL burns sequence numbers on a rolled-back save).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Notification

from services.infrastructure.store import SQLITE_IN_CHUNK, events_table, is_postgres

PAGE = 5_000


@dataclass(frozen=True, slots=True)
class StoredRow:
    """One row of the events table, exactly as stored."""

    position: int
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes

    @classmethod
    def of(cls, notification: Notification) -> StoredRow:
        return cls(
            position=notification.id,
            originator_id=_uuid(notification.originator_id),
            originator_version=notification.originator_version,
            topic=notification.topic,
            state=as_bytes(notification.state),
        )


def as_bytes(value: Any) -> bytes:
    """A state as bytes; a row edited by hand may hold text (SQLite is not strict)."""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def iter_rows(
    recorder: ApplicationRecorder,
    *,
    after: int = 0,
    stop: int | None = None,
    page: int = PAGE,
) -> Iterator[StoredRow]:
    """Every stored event with `after < position <= stop`, in store order, page by page."""
    position = after
    while True:
        notes = recorder.select_notifications(
            start=position, limit=page, stop=stop, inclusive_of_start=False
        )
        for note in notes:
            yield StoredRow.of(note)
        if len(notes) < page:
            return
        position = notes[-1].id


def count_after(recorder: ApplicationRecorder, position: int) -> int:
    """How many stored events lie after `position`."""
    table = events_table(recorder)
    datastore: Any = recorder.datastore  # type: ignore[attr-defined]
    if is_postgres(recorder):
        sql = f"SELECT COUNT(*) AS n FROM {table} WHERE notification_id > %s"
    else:
        sql = f"SELECT COUNT(*) AS n FROM {table} WHERE rowid > ?"
    with datastore.transaction(commit=False) as curs:
        curs.execute(sql, (position,))
        row = curs.fetchone()
    return int(row["n"])


def select_of_originators(
    recorder: ApplicationRecorder, originator_ids: Iterable[UUID], *, after: int, limit: int
) -> list[StoredRow]:
    """The first `limit` events of the given aggregates with position > `after`, in order."""
    ids = list(dict.fromkeys(originator_ids))
    if not ids:
        return []
    table = events_table(recorder)
    datastore: Any = recorder.datastore  # type: ignore[attr-defined]
    if is_postgres(recorder):
        with datastore.transaction(commit=False) as curs:
            curs.execute(
                "SELECT notification_id AS position, originator_id, originator_version, topic, "
                f"state FROM {table} WHERE originator_id = ANY(%s) AND notification_id > %s "
                "ORDER BY notification_id LIMIT %s",
                (ids, after, limit),
            )
            return [_row(r) for r in curs.fetchall()]
    chunks: list[list[StoredRow]] = []
    with datastore.transaction(commit=False) as curs:
        for start in range(0, len(ids), SQLITE_IN_CHUNK):
            chunk = ids[start : start + SQLITE_IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            curs.execute(
                "SELECT rowid AS position, originator_id, originator_version, topic, state "
                f"FROM {table} WHERE originator_id IN ({marks}) AND rowid > ? "
                "ORDER BY rowid LIMIT ?",
                [*(i.hex for i in chunk), after, limit],
            )
            chunks.append([_row(r) for r in curs.fetchall()])
    return list(heapq.merge(*chunks, key=lambda r: r.position))[:limit]


def first_states(
    recorder: ApplicationRecorder, originator_ids: Iterable[UUID]
) -> dict[UUID, bytes]:
    """The state of the first (creation) event of each given aggregate that exists."""
    ids = list(dict.fromkeys(originator_ids))
    if not ids:
        return {}
    table = events_table(recorder)
    datastore: Any = recorder.datastore  # type: ignore[attr-defined]
    found: dict[UUID, bytes] = {}
    with datastore.transaction(commit=False) as curs:
        if is_postgres(recorder):
            curs.execute(
                f"SELECT originator_id, state FROM {table} "
                "WHERE originator_id = ANY(%s) AND originator_version = 1",
                (ids,),
            )
            rows = curs.fetchall()
        else:
            rows = []
            for start in range(0, len(ids), SQLITE_IN_CHUNK):
                chunk = ids[start : start + SQLITE_IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                curs.execute(
                    f"SELECT originator_id, state FROM {table} "
                    f"WHERE originator_id IN ({marks}) AND originator_version = 1",
                    [i.hex for i in chunk],
                )
                rows += curs.fetchall()
    for row in rows:
        found[_uuid(row["originator_id"])] = as_bytes(row["state"])
    return found


def _row(row: Any) -> StoredRow:
    return StoredRow(
        position=int(row["position"]),
        originator_id=_uuid(row["originator_id"]),
        originator_version=int(row["originator_version"]),
        topic=str(row["topic"]),
        state=as_bytes(row["state"]),
    )
