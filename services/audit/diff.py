"""Row-by-row comparison of two sets of projection tables (live and replayed).

Both sides are read in primary-key order (`ProjectionTables.order_by`: text compared byte
by byte on both dialects, which is Python's order for `str`), so the comparison is one
streaming merge join per table, whatever the size. `ReplayReport` is what a replay
(`replay.py`) answers with the differences it found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from services.infrastructure.sql import Cursor
from services.projections.schema import BY_KEY
from services.projections.tables import ProjectionTables

MISSING = "<no row>"
Rows = Callable[[str], Iterator[tuple[Any, ...]]]


@dataclass(frozen=True)
class Difference:
    table: str  # the table's key, e.g. "balance"
    key: dict[str, Any]  # its primary key's values
    column: str  # a column's name, or "*" when a whole row is missing on one side
    live: Any
    replayed: Any


@dataclass
class ReplayReport:
    position: int  # the one position both sides reflect
    events: int  # stored events replayed (positions 1..position; intake records skipped)
    folded: int  # account and program events folded
    seconds: float  # the fold alone
    differences: list[Difference] = field(default_factory=list)  # the first `shown`
    total_differences: int = 0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        return self.total_differences == 0


def snapshot_rows(cur: Cursor, tables: ProjectionTables) -> Rows:
    """Rows of `tables` read through one cursor (one snapshot), in primary-key order."""

    def rows(key: str) -> Iterator[tuple[Any, ...]]:
        cur.execute(
            f"SELECT {', '.join(tables.columns(key))} FROM {tables.name(key)} "
            f"ORDER BY {tables.order_by(key)}"
        )
        while chunk := cur.raw.fetchmany(10_000):
            for row in chunk:
                yield tuple(row)

    return rows


def differences(keys: Iterable[str], live: Rows, replayed: Rows) -> Iterator[Difference]:
    """Every difference between the tables `keys`, table by table, in key order."""
    for key in keys:
        yield from table_differences(key, live(key), replayed(key))


def table_differences(
    key: str, live: Iterator[tuple[Any, ...]], replayed: Iterator[tuple[Any, ...]]
) -> Iterator[Difference]:
    table = BY_KEY[key]
    columns = table.column_names
    pk = table.primary_key
    at = [columns.index(name) for name in pk]

    def key_of(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(row[i] for i in at)

    # A difference names the customer, not only a row key a reader cannot look up (the
    # customers table is keyed by the account's originator UUID).
    named_by_customer = "customer_id" in columns and "customer_id" not in pk
    customer = columns.index("customer_id") if named_by_customer else None

    def named(row: tuple[Any, ...]) -> dict[str, Any]:
        found = dict(zip(pk, key_of(row), strict=True))
        if customer is not None:
            return {"customer_id": row[customer], **found}
        return found

    a, b = next(live, None), next(replayed, None)
    while a is not None or b is not None:
        if b is None or (a is not None and key_of(a) < key_of(b)):
            assert a is not None
            yield Difference(key, named(a), "*", "row", MISSING)
            a = next(live, None)
        elif a is None or key_of(b) < key_of(a):
            yield Difference(key, named(b), "*", MISSING, "row")
            b = next(replayed, None)
        else:
            for name, x, y in zip(columns, a, b, strict=True):
                if x != y:
                    yield Difference(key, named(a), name, x, y)
            a, b = next(live, None), next(replayed, None)
