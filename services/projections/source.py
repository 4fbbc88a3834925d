"""The notification log as the projections read it: pages of plain tuples.

`select_notifications` of the library does the same job on both stores, but builds a
dict, a UUID and a `Notification` for every row, which costs more than the fold itself
on a full replay (target: a replay at >= 0.3x the speed of a raw SELECT of the same
rows). This reader asks the recorder's own connection for the same rows and columns, in
position order, only the topics the projections fold, and returns
`(position, originator_id, topic, state)` with the originator id as canonical UUID text
on both dialects (SQLite stores it as 32 hex digits).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from eventsourcing.persistence import ApplicationRecorder

from services.infrastructure.store import events_table, is_postgres, tuple_cursor

Row = tuple[int, str, str, bytes]

_SQLITE_UUID = (
    "substr(originator_id, 1, 8) || '-' || substr(originator_id, 9, 4) || '-' || "
    "substr(originator_id, 13, 4) || '-' || substr(originator_id, 17, 4) || '-' || "
    "substr(originator_id, 21)"
)


class LogReader:
    def __init__(
        self,
        recorder: ApplicationRecorder,
        topics: Sequence[str],
        *,
        share: tuple[int, int, Sequence[str]] | None = None,
    ) -> None:
        """`share=(k, n, shared_topics)` (PostgreSQL): only the accounts whose id's last
        byte is k modulo n, plus every event of `shared_topics` (a parallel rebuild)."""
        self.recorder = recorder
        self.topics = list(topics)
        self.postgres = is_postgres(recorder)
        self._params: tuple[Any, ...] = (self.topics,)
        table = events_table(recorder)
        if self.postgres:
            where = "topic = ANY(%s)"
            if share is not None:
                k, n, shared = share
                where += (
                    " AND (topic = ANY(%s) OR get_byte(uuid_send(originator_id), 15) %% %s = %s)"
                )
                self._params = (self.topics, list(shared), n, k)
            self._sql = (
                f"SELECT notification_id, originator_id::text, topic, state FROM {table} "
                f"WHERE notification_id > %s AND notification_id <= %s AND {where} "
                "ORDER BY notification_id"
            )
        else:
            if share is not None:
                raise ValueError("a shared read is for PostgreSQL")
            marks = ", ".join("?" * len(self.topics))
            self._sql = (
                f"SELECT rowid, {_SQLITE_UUID}, topic, state FROM {table} "
                f"WHERE rowid > ? AND rowid <= ? AND topic IN ({marks}) ORDER BY rowid"
            )

    def max_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def pages(
        self, after: int, stop: int, span: int, *, prefetch: bool = False
    ) -> Generator[tuple[int, list[Row]], None, None]:
        """(until, rows) for consecutive spans of positions from `after` to `stop`. With
        `prefetch`, a worker thread reads the next span while the caller folds this one
        (worth it on PostgreSQL: the server and the network work meanwhile)."""
        if not prefetch:
            while after < stop:
                until = min(stop, after + span)
                yield until, self.page(after, until)
                after = until
            return
        with ThreadPoolExecutor(1, thread_name_prefix="projection-read") as pool:
            until = min(stop, after + span)
            future = pool.submit(self.page, after, until)
            while True:
                rows, current = future.result(), until
                if current < stop:
                    until = min(stop, current + span)
                    future = pool.submit(self.page, current, until)
                yield current, rows
                if current >= stop:
                    return

    def page(self, after: int, until: int) -> list[Row]:
        """The rows with after < position <= until, in position order. Positions are dense,
        so a span of N positions holds at most N rows: a bounded range scan, no LIMIT (with
        the topic filter a LIMIT can make the planner sort the whole rest of the log)."""
        params = (after, until, *(self._params if self.postgres else self.topics))
        with tuple_cursor(self.recorder, postgres=self.postgres) as curs:
            curs.execute(self._sql, params)
            return curs.fetchall()  # type: ignore[no-any-return]

    def states(self, positions: Sequence[int]) -> dict[int, bytes]:
        """The stored state of the events at these positions (a timeline page's details)."""
        if not positions:
            return {}
        table = events_table(self.recorder)
        if self.postgres:
            sql = f"SELECT notification_id, state FROM {table} WHERE notification_id = ANY(%s)"
            params: Sequence[Any] = (list(positions),)
        else:
            marks = ", ".join("?" * len(positions))
            sql = f"SELECT rowid, state FROM {table} WHERE rowid IN ({marks})"
            params = positions
        with tuple_cursor(self.recorder, postgres=self.postgres) as curs:
            curs.execute(sql, params)
            return {row[0]: bytes(row[1]) for row in curs.fetchall()}
