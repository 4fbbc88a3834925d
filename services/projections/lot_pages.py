"""A balance in bounded time and size (SPEC §6): the open lots a page at a time.

A customer who buys every day holds thousands of open lots, and the balance used to
answer every one of them (344 KB and up to 161 ms for one such customer). The answer now
carries one page of lots, soonest expiring first (the order a redemption spends them),
with `lots_count` (all the open lots), `expiring_next` (the soonest expiry of available
points, and how many) and `next_lots`: the `lots_after` of the next page, null at the end.

The cursor is a lot id: the next page starts after that lot's place in the order
(expires_at, earned_at, lot_id), so a lot spent between two pages moves nothing.

A live answer reads only the rows it shows (`live_balance`: the balance row, a few
aggregates and one page of lots, by the lots table's key); an as-of answer folds the
events and pages the folded lots the same way (`page_folded`). The two are held equal
by a test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from services.infrastructure.sql import Cursor, code_point_order
from services.ledger.domain.clock import iso
from services.ledger.domain.rules import ProgramRules
from services.projections.tables import ProjectionTables
from services.projections.views.answers import lot_answer
from services.projections.views.customer import CustomerView
from services.projections.views.lots import HoldRow, Lot

DEFAULT_LOTS = 100
MAX_LOTS = 1000

Answer = dict[str, Any]
SortKey = tuple[str, str, str]


class UnknownLot(LookupError):
    """`lots_after` names no lot of this customer: a 422."""


@dataclass(frozen=True)
class LotPage:
    limit: int = DEFAULT_LOTS
    after: str | None = None


def sort_key(lot: Lot | Answer) -> SortKey:
    if isinstance(lot, Lot):
        return (lot.expires_at, lot.earned_at, lot.lot_id)
    return (lot["expires_at"], lot["earned_at"], lot["lot_id"])


def _unknown(lot_id: str, customer_id: str) -> UnknownLot:
    return UnknownLot(f"customer {customer_id!r} has no lot {lot_id!r} (lots_after)")


def _summary(open_lots: list[Answer]) -> Answer | None:
    available = [lot for lot in open_lots if lot["status"] == "available"]
    if not available:
        return None
    soonest = min(lot["expires_at"] for lot in available)
    points = sum(lot["remaining"] for lot in available if lot["expires_at"] == soonest)
    return {"expires_at": soonest, "points": points}


def page_folded(answer: Answer, view: CustomerView, page: LotPage) -> Answer:
    """A folded balance answer (every open lot, in order) cut to one page."""
    lots: list[Answer] = answer["lots"]
    start = 0
    if page.after is not None:
        after = view.lots.get(page.after)
        if after is None:
            raise _unknown(page.after, view.customer_id)
        key = sort_key(after)
        start = next((i for i, lot in enumerate(lots) if sort_key(lot) > key), len(lots))
    shown = lots[start : start + page.limit]
    more = start + page.limit < len(lots)
    return {
        **answer,
        "lots": shown,
        "lots_count": len(lots),
        "expiring_next": _summary(lots),
        "next_lots": shown[-1]["lot_id"] if more and shown else None,
    }


# ---- the live answer, from the rows -----------------------------------------------------------
def rows_of(cur: Cursor, sql: str, params: Sequence[Any], columns: str) -> list[tuple[Any, ...]]:
    """The rows of `sql`; on SQLite fetched as one row (a JSON array of them), not in any
    order. The sqlite3 module lets go of the GIL for every row it steps through and must
    take it back after: beside a busy writer thread (the embedded default runs the
    ingest and the projections in the same process) each row waited for it, and a read of
    5,000 rows took 80 ms at p99 (bench/reads_under_load.py). One row is one wait."""
    if cur.dialect != "sqlite":
        return cur.execute(sql, params).fetchall()
    found = cur.execute(
        f"SELECT json_group_array(json_array({columns})) FROM ({sql})", params
    ).fetchone()
    return [tuple(row) for row in orjson.loads(found[0])] if found else []


def live_balance(
    cur: Cursor, tables: ProjectionTables, customer_id: str, at: str, page: LotPage
) -> Answer | None:
    """The balance at `at` (ISO, the stored form) from the rows, None for a customer the
    tables do not hold. Same answer as `balance_answer` + `page_folded` on the full view:
    an available lot past its expiry at `at` counts as expired (SPEC §8)."""
    name = tables.name
    row = cur.execute(
        f"SELECT available, pending, debt, lifetime_earned, redeemed, expired, held "
        f"FROM {name('balance')} WHERE customer_id = ?",
        (customer_id,),
    ).fetchone()
    if row is None:
        return None
    available, pending, debt, lifetime_earned, redeemed, expired, held = map(int, row)
    lots = name("lots")
    # text compares as the stored ISO strings do in Python, whatever the database's collation
    c = code_point_order(cur.dialect)
    lapsed = f"status = 'available' AND expires_at{c} <= ?"
    # By the index of the customer's open lots in their order: the lapsed ones (an
    # expiry the sweep has not recorded yet: few), the soonest expiry after `at`, the
    # points then; only the count reads every open lot's index entry.
    (open_count,) = cur.execute(
        f"SELECT COUNT(*) FROM {lots} WHERE customer_id = ? AND remaining > 0", (customer_id,)
    ).fetchone() or (0,)
    lapsed_points, lapsed_count = cur.execute(
        f"SELECT COALESCE(SUM(remaining), 0), COUNT(*) FROM {lots} "
        f"WHERE customer_id = ? AND remaining > 0 AND {lapsed}",
        (customer_id, at),
    ).fetchone() or (0, 0)
    count = int(open_count) - int(lapsed_count)
    soonest = cur.execute(
        f"SELECT expires_at FROM {lots} WHERE customer_id = ? AND remaining > 0 "
        f"AND status = 'available' AND expires_at{c} > ? ORDER BY expires_at{c} LIMIT 1",
        (customer_id, at),
    ).fetchone()
    expiring = None
    if soonest is not None:
        (points,) = cur.execute(
            f"SELECT SUM(remaining) FROM {lots} WHERE customer_id = ? AND remaining > 0 "
            f"AND status = 'available' AND expires_at{c} = ?",
            (customer_id, soonest[0]),
        ).fetchone() or (0,)
        expiring = {"expires_at": soonest[0], "points": int(points)}
    open_where = f"customer_id = ? AND remaining > 0 AND NOT ({lapsed})"
    after_sql, after_params = "", ()
    if page.after is not None:
        key = cur.execute(
            f"SELECT expires_at, earned_at, lot_id FROM {lots} "
            "WHERE customer_id = ? AND lot_id = ?",
            (customer_id, page.after),
        ).fetchone()
        if key is None:
            raise _unknown(page.after, customer_id)
        after_sql = f" AND (expires_at{c}, earned_at{c}, lot_id{c}) > (?, ?, ?)"
        after_params = tuple(key)
    rows = rows_of(
        cur,
        f"SELECT {Lot.COLUMNS} FROM {lots} WHERE {open_where}{after_sql} "
        f"ORDER BY expires_at{c}, earned_at{c}, lot_id{c} LIMIT ?",
        (customer_id, at, *after_params, page.limit + 1),
        Lot.COLUMNS,
    )
    found = sorted(map(Lot.from_row, rows), key=sort_key)  # SQLite's JSON row has no order
    shown = [lot_answer(lot) for lot in found[: page.limit]]
    holds = [
        HoldRow.from_row(row)
        for row in cur.execute(
            f"SELECT {HoldRow.COLUMNS} FROM {name('holds')} "
            "WHERE customer_id = ? AND status = 'open'",
            (customer_id,),
        ).fetchall()
    ]
    holds.sort(key=lambda h: (h.held_at, h.hold_id))
    return {
        "customer_id": customer_id,
        "available": available - int(lapsed_points),
        "pending": pending,
        "debt": debt,
        "held": held,
        "lifetime_earned": lifetime_earned,
        "redeemed": redeemed,
        "expired": expired + int(lapsed_points),
        "lots": shown,
        "holds": [hold.answer() for hold in holds],
        "lots_count": int(count),
        "expiring_next": expiring,
        "next_lots": shown[-1]["lot_id"] if len(rows) > page.limit and shown else None,
    }


def window_entries(
    cur: Cursor, tables: ProjectionTables, customer_id: str, at: datetime, rules: ProgramRules
) -> list[tuple[datetime, Decimal]]:
    """The (time, net) spend entries `tier_at(entries, at, rules)` looks at: the purchases
    after the grace period's window began, from the rows."""
    oldest = at - timedelta(days=rules.tier_window_days + rules.tier_grace_days)
    c = code_point_order(cur.dialect)
    rows = rows_of(
        cur,
        f"SELECT occurred_at, net FROM {tables.name('purchases')} "
        f"WHERE customer_id = ? AND occurred_at{c} > ?",
        (customer_id, iso(oldest)),
        "occurred_at, net",
    )
    return [(datetime.fromisoformat(when), Decimal(net)) for when, net in rows]
