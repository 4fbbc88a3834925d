"""The read side's tables, beside the event store in the same database (both dialects):
`ProjectionTables` makes them (the columns are `schema.py`'s), tracks the position and
writes and reads their rows.

Every table name starts with a prefix (default `proj_`), so the same projections can be
rebuilt into other tables (e.g. `replay_`) and compared row by row with the live ones:
`ProjectionTables.compared()` names the tables a replay must reproduce exactly,
`rows(key)` reads one in primary-key order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from services.infrastructure.sql import Cursor, Database, code_point_order
from services.projections.schema import (
    BIG,
    BY_KEY,
    LATER_COLUMNS,
    OUTBOX_COLUMNS,
    TABLES,
    TEXT,
    Table,
    copy_types,
)

TRACKING_NAME = "projections"
_PREFIX = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_BULK = 200  # above this many rows, PostgreSQL gets COPY instead of executemany
# The tables whose rows each batch rewrites (a customer's rows, every time they are
# touched) leave a quarter of each page free on PostgreSQL: the new row version then fits
# in the same page, and the update skips the primary key ("HOT"): ~12% less database CPU
# for the live projections. A rebuild (loaded once, `indexes=False`) packs them full.
_REWRITTEN = ("customers", "balance", "tier", "segment", "trust", "ltv", "lots", "purchases")
# (campaign_credits is rewritten too, but only for the few customers campaigns touch.)
_FILLFACTOR = 75


class ProjectionTables:
    """The projection tables under one prefix: DDL, tracking, writes and full reads."""

    def __init__(self, db: Database, prefix: str = "proj_") -> None:
        if not _PREFIX.match(prefix):
            raise ValueError(f"table prefix {prefix!r}: lowercase letters, digits and _")
        self.db = db
        self.prefix = prefix
        self._upserts = {t.key: self._upsert_sql(t) for t in TABLES}

    # ---- names ------------------------------------------------------------------------------
    def name(self, key: str) -> str:
        return self.prefix + key

    def keys(self) -> list[str]:
        """Every table's key, the outbox last."""
        return [t.key for t in TABLES] + ["outbox"]

    def names(self) -> list[str]:
        return [self.name(key) for key in self.keys()]

    def compared(self) -> list[str]:
        """The keys of the tables a rebuild reproduces exactly (not tracking, not outbox)."""
        return [t.key for t in TABLES if t.compared]

    def columns(self, key: str) -> list[str]:
        if key == "outbox":
            return ["id", *OUTBOX_COLUMNS, "published_at"]
        return BY_KEY[key].column_names

    # ---- DDL --------------------------------------------------------------------------------
    def create(self, *, indexes: bool = True) -> None:
        """Create what is missing (idempotent) and the tracking row at position 0.

        `indexes=False` (a rebuild into fresh tables on PostgreSQL) leaves out the keys
        and indexes: loading first and indexing once at the end (`create_indexes`, in
        the same transaction) is several times faster than keeping them up to date."""
        with self.db.schema() as cur:
            for table in TABLES:
                keyed = indexes or table.key == "tracking"
                columns = [self._column(table, name, kind) for name, kind in table.columns]
                if keyed:
                    columns.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
                    columns += [c for c in table.indexes if c.startswith("UNIQUE")]
                storage = ""
                if keyed and self.db.dialect == "postgres" and table.key in _REWRITTEN:
                    storage = f" WITH (fillfactor = {_FILLFACTOR})"
                cur.execute(
                    f"CREATE TABLE IF NOT EXISTS {self.name(table.key)} "
                    f"({', '.join(columns)}){storage}"
                )
                self._add_later_columns(cur, table)
                if keyed:
                    self._indexes(cur, table)
            outbox = self.name("outbox")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {outbox} (id {self.db.serial_pk}, "
                "message_id TEXT NOT NULL UNIQUE, customer_id TEXT NOT NULL, "
                "kind TEXT NOT NULL, payload TEXT NOT NULL, position BIGINT NOT NULL, "
                "created_at TEXT NOT NULL, published_at TEXT NULL)"
            )
            cur.execute(
                f"CREATE INDEX IF NOT EXISTS {outbox}_unpublished ON {outbox} (id) "
                "WHERE published_at IS NULL"
            )
            cur.execute(
                f"INSERT INTO {self.name('tracking')} (name, position) VALUES (?, 0) "
                "ON CONFLICT (name) DO NOTHING",
                (TRACKING_NAME,),
            )

    def create_indexes(self, cur: Cursor) -> None:
        """The keys and indexes `create(indexes=False)` left out (PostgreSQL)."""
        if self.db.dialect == "postgres":
            cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for table in TABLES:
            if table.key == "tracking":
                continue
            name = self.name(table.key)
            cur.execute(f"ALTER TABLE {name} ADD PRIMARY KEY ({', '.join(table.primary_key)})")
            for constraint in table.indexes:
                if constraint.startswith("UNIQUE"):
                    cur.execute(f"ALTER TABLE {name} ADD {constraint}")
            self._indexes(cur, table)

    def _indexes(self, cur: Cursor, table: Table) -> None:
        collate = code_point_order(self.db.dialect)
        for number, index in enumerate(table.indexes):
            if not index.startswith("UNIQUE"):
                cur.execute(
                    f"CREATE INDEX IF NOT EXISTS {self.name(table.key)}_i{number} "
                    f"ON {self.name(table.key)} {index.replace('{C}', collate)}"
                )

    def _add_later_columns(self, cur: Cursor, table: Table) -> None:
        """Columns added after a deployment made its tables (`LATER_COLUMNS`, counters
        that start at 0): a table made before gets them, so a restart keeps its rows."""
        later = LATER_COLUMNS.get(table.key)
        if not later:
            return
        name = self.name(table.key)
        if self.db.dialect == "postgres":
            for column in later:
                cur.execute(f"ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {column} {BIG} DEFAULT 0")
            return
        present = {row[1] for row in cur.execute(f"PRAGMA table_info({name})").fetchall()}
        for column in later:
            if column not in present:
                cur.execute(f"ALTER TABLE {name} ADD COLUMN {column} {BIG} DEFAULT 0")

    def _column(self, table: Table, name: str, kind: str) -> str:
        # Keys compare byte by byte on PostgreSQL as on SQLite: one order for both stores,
        # and index builds without locale rules.
        if self.db.dialect == "postgres" and name in table.primary_key and kind == TEXT:
            return f'{name} TEXT COLLATE "C" NOT NULL'
        return f"{name} {kind}"

    def drop(self) -> None:
        with self.db.schema() as cur:
            for name in self.names():
                cur.execute(f"DROP TABLE IF EXISTS {name}")

    def exists(self) -> bool:
        table = self.name("tracking")
        with self.db.reading() as cur:
            if self.db.dialect == "postgres":
                row = cur.execute("SELECT to_regclass(?)", (table,)).fetchone()
                return bool(row and row[0])
            row = cur.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone()
            return row is not None

    # ---- tracking -----------------------------------------------------------------------------
    def position(self, cur: Cursor, *, lock: bool = False) -> int:
        """The position processed; `lock` holds the tracking row until the transaction
        ends (PostgreSQL; on SQLite `BEGIN IMMEDIATE` already serializes writers)."""
        sql = f"SELECT position FROM {self.name('tracking')} WHERE name = ?"
        if lock and self.db.dialect == "postgres":
            sql += " FOR UPDATE"
        row = cur.execute(sql, (TRACKING_NAME,)).fetchone()
        return int(row[0]) if row else 0

    def set_position(self, cur: Cursor, position: int) -> None:
        cur.execute(
            f"UPDATE {self.name('tracking')} SET position = ? WHERE name = ?",
            (position, TRACKING_NAME),
        )

    def read_position(self) -> int:
        with self.db.reading() as cur:
            return self.position(cur)

    # ---- writes ------------------------------------------------------------------------------
    def _upsert_sql(self, table: Table) -> str:
        names = table.column_names
        updates = ", ".join(f"{n} = excluded.{n}" for n in names if n not in table.primary_key)
        return (
            f"INSERT INTO {self.name(table.key)} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' * len(names))}) "
            f"ON CONFLICT ({', '.join(table.primary_key)}) DO UPDATE SET {updates}"
        )

    def upsert(self, cur: Cursor, key: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        table = BY_KEY[key]
        if self.db.dialect == "postgres" and len(rows) > _BULK:
            stage = f"stage_{self.name(key)}"
            names = ", ".join(table.column_names)
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
                f"(LIKE {self.name(key)}) ON COMMIT DELETE ROWS"
            )
            self._copy(cur, stage, table.column_names, copy_types(key), rows)
            updates = ", ".join(
                f"{n} = excluded.{n}" for n in table.column_names if n not in table.primary_key
            )
            cur.execute(
                f"INSERT INTO {self.name(key)} ({names}) SELECT {names} FROM {stage} "
                f"ON CONFLICT ({', '.join(table.primary_key)}) DO UPDATE SET {updates}"
            )
            cur.execute(f"TRUNCATE {stage}")
            return
        cur.executemany(self._upserts[key], rows)

    def append(self, cur: Cursor, key: str, rows: Sequence[Sequence[Any]]) -> None:
        """Insert new rows (an existing key is an error: these tables only grow)."""
        if not rows:
            return
        names = list(OUTBOX_COLUMNS) if key == "outbox" else BY_KEY[key].column_names
        if self.db.dialect == "postgres" and len(rows) > _BULK:
            self._copy(cur, self.name(key), names, copy_types(key), rows)
            return
        cur.executemany(
            f"INSERT INTO {self.name(key)} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' * len(names))})",
            rows,
        )

    @staticmethod
    def _copy(
        cur: Cursor, table: str, names: list[str], types: list[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        # Binary COPY with the columns' types declared: a third less CPU than text COPY for
        # the rows a rebuild writes (bench/replay.py).
        sql = f"COPY {table} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)"
        with cur.raw.copy(sql) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)

    # ---- full reads (the replay comparison) -----------------------------------------------
    def rows(self, key: str) -> list[tuple[Any, ...]]:
        """Every row of one table in primary-key order (the outbox by id)."""
        return list(self.iter_rows(key))

    def order_by(self, key: str) -> str:
        """Primary-key order, text compared byte by byte on both dialects."""
        if key == "outbox":
            return "id"
        table = BY_KEY[key]
        kinds = dict(table.columns)
        collate = code_point_order(self.db.dialect)
        return ", ".join(
            name + (collate if kinds[name].startswith("TEXT") else "") for name in table.primary_key
        )

    def iter_rows(self, key: str, page: int = 10_000) -> Iterator[tuple[Any, ...]]:
        order = self.order_by(key)
        columns = ", ".join(self.columns(key))
        with self.db.reading() as cur:
            cur.execute(f"SELECT {columns} FROM {self.name(key)} ORDER BY {order}")
            while True:
                chunk = cur.raw.fetchmany(page)
                if not chunk:
                    return
                for row in chunk:
                    yield tuple(row)

    def count(self, key: str) -> int:
        with self.db.reading() as cur:
            row = cur.execute(f"SELECT COUNT(*) FROM {self.name(key)}").fetchone()
            return int(row[0]) if row else 0
