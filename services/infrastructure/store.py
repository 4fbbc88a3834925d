"""The event store's configuration and the few queries the library does not offer.

`LOYALTY_STORE` picks the store: `sqlite:///path` (the embedded default) or
`postgresql://user[:password]@host[:port]/db` (read by libpq: percent-encode `@`, `:`,
`/` and spaces in the password). Both are the `eventsourcing` library's
recorders (specialised in `services/ledger/adapters/eventstore/`, the one place that
touches the library's internals); this module only turns the URL into the library's
environment and adds the look-ups the library does not offer: by originator id in one
query (positions of version-1 events, which the batch path needs to find duplicates in one
query instead of one per event; current versions; one aggregate's events for the read
side's as-of answers). The read side and the audit reach the recorder through this module
alone: `open_recorder`, and `tuple_cursor` (the adapter's plain-tuple cursor on the
recorder's own connection, for reading the events table in bulk).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import orjson
from eventsourcing.persistence import ApplicationRecorder, InfrastructureFactory
from eventsourcing.utils import Environment

from services.ledger.adapters.eventstore import POSTGRES_FACTORY_TOPIC, SQLITE_FACTORY_TOPIC
from services.ledger.adapters.eventstore.reads import in_memory_index
from services.ledger.adapters.eventstore.reads import tuple_cursor as tuple_cursor
from services.ledger.domain import topics
from services.settings import ConfigurationError


@dataclass(frozen=True)
class StoreURL:
    kind: str  # "sqlite" | "postgres"
    path: str = ""
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = field(default="", repr=False)
    dbname: str = ""

    @classmethod
    def parse(cls, url: str) -> StoreURL:
        try:
            parts = urlsplit(url)
        except ValueError:
            raise ConfigurationError("LOYALTY_STORE is not a URL") from None
        if parts.scheme == "sqlite":
            path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else parts.path
            if not path:
                raise ConfigurationError(f"LOYALTY_STORE: no database file in {url!r}")
            return cls(kind="sqlite", path=path)
        if parts.scheme in ("postgresql", "postgres"):
            return cls._postgres(url)
        raise ConfigurationError(
            f"LOYALTY_STORE must be sqlite:///... or postgresql://..., not {_redacted(url)!r}"
        )

    @classmethod
    def _postgres(cls, url: str) -> StoreURL:
        """libpq reads the URL (percent-encoding included: a password with `@`, `:`, `/`
        or a space is written `%40`, `%3A`, `%2F`, `%20`), so it means what it means to
        psql."""
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(url)
        except ProgrammingError as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else "invalid"
            raise ConfigurationError(
                f"LOYALTY_STORE is not a PostgreSQL URL ({reason}); write "
                "postgresql://user:password@host:port/dbname with the password percent-encoded"
            ) from None
        unknown = sorted(set(params) - _POSTGRES_PARAMS)
        if unknown:
            raise ConfigurationError(
                f"LOYALTY_STORE: unsupported connection parameters: {', '.join(unknown)} "
                "(the event store's connections take only host, port, user, password and "
                "dbname; set the others as libpq environment variables, e.g. PGSSLMODE)"
            )
        try:
            port = int(params.get("port") or 5432)
        except ValueError:
            raise ConfigurationError(f"LOYALTY_STORE: bad port {params['port']!r}") from None
        return cls(
            kind="postgres",
            host=str(params.get("host") or "127.0.0.1"),
            port=port,
            user=str(params.get("user") or "postgres"),
            password=str(params.get("password") or ""),
            dbname=str(params.get("dbname") or "postgres"),
        )

    def conninfo(self) -> str:
        """The libpq connection string (psycopg quotes each value, so no password breaks
        it)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=self.dbname,
            password=self.password or None,
        )

    def eventsourcing_env(self) -> dict[str, str]:
        if self.kind == "sqlite":
            if self.path != ":memory:" and not self.path.startswith("file:"):
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            return {
                # The library's SQLite factory, with positions in a column of their own
                # (VACUUM cannot renumber them): adapters/eventstore/sqlite.py.
                "PERSISTENCE_MODULE": SQLITE_FACTORY_TOPIC,
                "SQLITE_DBNAME": self.path,
                "SQLITE_LOCK_TIMEOUT": "30",
            }
        return {
            # The library's PostgreSQL factory, inserting a batch with binary parameters:
            # adapters/eventstore/postgres.py.
            "PERSISTENCE_MODULE": POSTGRES_FACTORY_TOPIC,
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_POOL_SIZE": "5",
            "POSTGRES_MAX_OVERFLOW": "10",
            "POSTGRES_LOCK_TIMEOUT": "10",
            "POSTGRES_CONNECT_TIMEOUT": "10",
        }


_POSTGRES_PARAMS = {"host", "port", "user", "password", "dbname"}


def _redacted(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def open_recorder(store: StoreURL, app_name: str = "Ledger") -> tuple[ApplicationRecorder, Any]:
    """The ledger's recorder without the ledger application (which would write the
    program's first event): for loading an export into an empty store.
    Returns the recorder and the factory, whose `close()` releases its connections."""
    env = Environment(app_name, {**os.environ, **store.eventsourcing_env()})
    factory = InfrastructureFactory.construct(env)
    return factory.application_recorder(), factory


# Ids per `IN (...)` on SQLite, well below its limit on bound parameters.
SQLITE_IN_CHUNK = 500


def events_table(recorder: ApplicationRecorder) -> str:
    return str(recorder.events_table_name)  # type: ignore[attr-defined]


def is_postgres(recorder: ApplicationRecorder) -> bool:
    from eventsourcing.postgres import PostgresApplicationRecorder

    return isinstance(recorder, PostgresApplicationRecorder)


def positions_of(recorder: ApplicationRecorder, originator_ids: Iterable[UUID]) -> dict[UUID, int]:
    """Global positions of the first (creation) event of each given aggregate that exists."""
    ids = list(originator_ids)
    if not ids:
        return {}
    index = in_memory_index(recorder)
    if index is not None:  # positions are list indexes + 1
        return {i: index[str(i)][1] + 1 for i in ids if 1 in index.get(str(i), {})}
    return _one_per_originator(
        recorder,
        ids,
        ("notification_id", "rowid"),
        "AND originator_version = 1",
    )


def max_position(recorder: ApplicationRecorder) -> int:
    return recorder.max_notification_id() or 0


def all_customer_ids(recorder: ApplicationRecorder) -> list[str]:
    """Every customer with an account (the sweep's candidates when no lot index runs)."""
    topic = topics.OPENED
    table = events_table(recorder)
    datastore: Any = recorder.datastore  # type: ignore[attr-defined]
    marker = "%s" if is_postgres(recorder) else "?"
    with datastore.transaction(commit=False) as curs:
        curs.execute(f"SELECT state FROM {table} WHERE topic = {marker}", (topic,))
        rows = curs.fetchall()
    return [
        orjson.loads(bytes(row["state"] if is_postgres(recorder) else row[0]))["customer_id"]
        for row in rows
    ]


def versions_of(recorder: ApplicationRecorder, originator_ids: Iterable[UUID]) -> dict[UUID, int]:
    """The current version of each given aggregate that exists, in one query."""
    ids = list(originator_ids)
    if not ids:
        return {}
    index = in_memory_index(recorder)
    if index is not None:
        return {i: max(index[str(i)]) for i in ids if index.get(str(i))}
    if is_postgres(recorder):
        # One backward step down the primary key per aggregate: a `MAX(...) GROUP BY`
        # over `= ANY(...)` read every event of every account from the heap (58 ms a
        # batch of 2,000 once the accounts held ~20 events each; bench/kafka_ingest.py).
        table = events_table(recorder)
        datastore: Any = recorder.datastore  # type: ignore[attr-defined]
        with datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT ids.id AS originator_id, (SELECT e.originator_version FROM {table} e "
                "WHERE e.originator_id = ids.id ORDER BY e.originator_version DESC LIMIT 1) "
                "AS value FROM unnest(%b::uuid[]) AS ids(id)",
                (ids,),
            )
            return {
                row["originator_id"]: row["value"]
                for row in curs.fetchall()
                if row["value"] is not None
            }
    # SQLite: `MAX(...) ... GROUP BY` read every index entry of each account (33 ms a
    # record for a customer with 100,000 events, bench/account_history.py); a MAX per
    # account, correlated, is one step down the (originator_id, version) index.
    table = events_table(recorder)
    datastore = recorder.datastore  # type: ignore[attr-defined]
    found: dict[UUID, int] = {}
    with datastore.transaction(commit=False) as curs:
        for start in range(0, len(ids), SQLITE_IN_CHUNK):
            chunk = ids[start : start + SQLITE_IN_CHUNK]
            rows = ",".join(["(?)"] * len(chunk))
            curs.execute(
                f"WITH ids(id) AS (VALUES {rows}) SELECT id, (SELECT MAX(originator_version) "
                f"FROM {table} WHERE originator_id = ids.id) FROM ids",
                [i.hex for i in chunk],
            )
            for row in curs.fetchall():
                if row[1] is not None:
                    found[UUID(row[0])] = row[1]
    return found


def _one_per_originator(
    recorder: ApplicationRecorder, ids: list[UUID], value: tuple[str, str], tail: str
) -> dict[UUID, int]:
    """One integer per given aggregate, in one query on PostgreSQL (`= ANY`) and in chunks
    of `IN (...)` on SQLite: `value` is the column (PostgreSQL, SQLite), `tail` the rest of
    the WHERE clause and any GROUP BY."""
    table = events_table(recorder)
    datastore: Any = recorder.datastore  # type: ignore[attr-defined]
    if is_postgres(recorder):
        with datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT originator_id, {value[0]} AS value FROM {table} "
                f"WHERE originator_id = ANY(%b::uuid[]) {tail}",
                (ids,),
            )
            return {row["originator_id"]: row["value"] for row in curs.fetchall()}
    found: dict[UUID, int] = {}
    with datastore.transaction(commit=False) as curs:
        for start in range(0, len(ids), SQLITE_IN_CHUNK):
            chunk = ids[start : start + SQLITE_IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            curs.execute(
                f"SELECT originator_id, {value[1]} FROM {table} "
                f"WHERE originator_id IN ({marks}) {tail}",
                [i.hex for i in chunk],
            )
            for row in curs.fetchall():
                found[UUID(row[0])] = row[1]
    return found


def originator_events(
    recorder: ApplicationRecorder, originator_id: UUID, up_to: int | None = None
) -> list[tuple[int, str, bytes]]:
    """One aggregate's stored events as (position, topic, state), in order, up to a global
    position (the read side's as-of answers fold them)."""
    table = events_table(recorder)
    datastore: Any = recorder.datastore  # type: ignore[attr-defined]
    limit = up_to if up_to is not None else 2**62
    if is_postgres(recorder):
        with datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT notification_id, topic, state FROM {table} "
                "WHERE originator_id = %s AND notification_id <= %s ORDER BY originator_version",
                (originator_id, limit),
            )
            return [
                (row["notification_id"], row["topic"], bytes(row["state"]))
                for row in curs.fetchall()
            ]
    with datastore.transaction(commit=False) as curs:
        curs.execute(
            f"SELECT rowid, topic, state FROM {table} "
            "WHERE originator_id = ? AND rowid <= ? ORDER BY originator_version",
            (originator_id.hex, limit),
        )
        return [(row[0], row[1], bytes(row[2])) for row in curs.fetchall()]
