"""Rows to views: `load_customers` and `load_program` rebuild views from the rows that
`persistence.py` wrote, so that the fold continues exactly where it stopped."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson

from services.infrastructure.sql import Cursor
from services.projections.persistence import PROGRAM_NAME
from services.projections.tables import ProjectionTables
from services.projections.views.common import parse
from services.projections.views.customer import CustomerView, HoldRow, Lot
from services.projections.views.program import ProgramView, rules_from
from services.projections.views.watch import Watch
from services.projections.views.windows import Purchase

_CHUNK = 500


def load_program(cur: Cursor, tables: ProjectionTables) -> ProgramView:
    program = ProgramView()
    row = cur.execute(
        f"SELECT rule_version, rules FROM {tables.name('program')} WHERE program = ?",
        (PROGRAM_NAME,),
    ).fetchone()
    if row is not None:
        document = orjson.loads(row[1])
        program.rules = rules_from("RulesChanged", {"rules": document, "rule_version": row[0]})
        program.rules_document = document
        program.stored.add("program")
    row = cur.execute(
        f"SELECT pending, available, debt, customers, held FROM {tables.name('liability')} "
        "WHERE program = ?",
        (PROGRAM_NAME,),
    ).fetchone()
    if row is not None:
        (program.pending, program.available, program.debt, program.customers, program.held) = map(
            int, row
        )
        program.stored.add("liability")
    for charity_id, month, points, donations in cur.execute(
        f"SELECT charity_id, month, points, donations FROM {tables.name('donations')}"
    ).fetchall():
        program.donations[charity_id, month] = [int(points), int(donations)]
        program.stored.add(f"donation:{charity_id}:{month}")
    for store, touchpoint, *counts in cur.execute(
        f"SELECT store_id, touchpoint, promoters, passives, detractors "
        f"FROM {tables.name('nps_totals')}"
    ).fetchall():
        program.nps[store, touchpoint] = [int(c) for c in counts]
        program.stored.add(f"nps:{store}:{touchpoint}")
    for month, points, grants in cur.execute(
        f"SELECT month, points, grants FROM {tables.name('goodwill_months')}"
    ).fetchall():
        program.goodwill[month] = [int(points), int(grants)]
        program.stored.add(f"goodwill:{month}")
    return program


def _select_in(cur: Cursor, sql: str, values: Sequence[str]) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        found += cur.execute(
            sql.replace("(?)", f"({', '.join('?' * len(chunk))})"), chunk
        ).fetchall()
    return found


def load_customers(
    cur: Cursor,
    tables: ProjectionTables,
    *,
    originator_ids: Sequence[str] = (),
    customer_ids: Sequence[str] = (),
    watched: bool = False,
    books: bool = True,
) -> dict[str, CustomerView]:
    """The views of the given accounts that the tables hold, by originator id (text);
    `watched` (the live runner) also restores what the change feed last reported. Without
    `books` the views have no lots, holds or campaign credits: enough for the standings
    (tier, segment, trust, value), which a read of them need not pay for."""
    name = tables.name
    if originator_ids:
        heads = _select_in(
            cur,
            f"SELECT originator_id, customer_id, opened_position, last_position, clock, "
            f"rules_version FROM {name('customers')} WHERE originator_id IN (?)",
            list(originator_ids),
        )
    else:
        heads = _select_in(
            cur,
            f"SELECT originator_id, customer_id, opened_position, last_position, clock, "
            f"rules_version FROM {name('customers')} WHERE customer_id IN (?)",
            list(customer_ids),
        )
    views: dict[str, CustomerView] = {}
    for originator, cid, opened, last, clock, rules_version in heads:
        view = CustomerView(cid, originator, int(opened), Watch() if watched else None)
        view.stored = True
        view.last_position = int(last)
        view.clock = clock
        if view.watch is not None:
            view.watch.rules_version = int(rules_version)
        views[cid] = view
    if not views:
        return {}
    ids = list(views)
    for cid, *values in _select_in(
        cur,
        f"SELECT customer_id, available, pending, debt, lifetime_earned, redeemed, expired, "
        f"held FROM {name('balance')} WHERE customer_id IN (?)",
        ids,
    ):
        view = views[cid]
        (
            view.available,
            view.pending,
            view.debt,
            view.lifetime_earned,
            view.redeemed,
            view.expired,
            view.held,
        ) = map(int, values)
    if books:
        _load_books(cur, tables, views)
    purchases = [
        (cid, Purchase(event_id, occurred_at, store_id, Decimal(amount), Decimal(refunded)))
        for cid, event_id, occurred_at, store_id, amount, refunded in _select_in(
            cur,
            f"SELECT customer_id, event_id, occurred_at, store_id, amount, refunded "
            f"FROM {name('purchases')} WHERE customer_id IN (?)",
            ids,
        )
    ]
    for cid, purchase in sorted(purchases, key=lambda found: found[1]):
        view = views[cid]
        view.purchases[purchase.event_id] = purchase
        if view.watch is not None:
            view.watch.windows.add(purchase)  # summed at the next event's clock
    for cid, tier in _select_in(
        cur, f"SELECT customer_id, tier FROM {name('tier')} WHERE customer_id IN (?)", ids
    ):
        if views[cid].watch is not None:
            views[cid].watch.tier = tier  # type: ignore[union-attr]
    for cid, segment, last_promoter_at, referrals in _select_in(
        cur,
        f"SELECT customer_id, segment, last_promoter_at, referrals_rewarded "
        f"FROM {name('segment')} WHERE customer_id IN (?)",
        ids,
    ):
        view = views[cid]
        if view.watch is not None:
            view.watch.segment = segment
        view.last_promoter_at, view.referrals_rewarded = last_promoter_at, int(referrals)
        view.promoter_dt = parse(last_promoter_at) if last_promoter_at else None
    for (
        cid,
        status,
        good_jobs,
        mistakes,
        restored,
        flagged,
        grants,
        incidents,
        resolving,
        resolved,
    ) in _select_in(
        cur,
        f"SELECT customer_id, status, good_jobs, mistakes, restored, flagged, "
        f"goodwill_grants, incidents, resolving, resolved FROM {name('trust')} "
        "WHERE customer_id IN (?)",
        ids,
    ):
        view = views[cid]
        if view.watch is not None:
            view.watch.status, view.watch.flagged = status, bool(flagged)
        view.good_jobs, view.mistakes, view.restored = int(good_jobs), int(mistakes), int(restored)
        view.grants = orjson.loads(grants)
        view.grant_times = sorted(map(parse, view.grants))
        view.incidents = orjson.loads(incidents)
        view.resolving = orjson.loads(resolving)
        view.resolved = set(orjson.loads(resolved))
    return {view.originator_id: view for view in views.values()}


def _load_books(cur: Cursor, tables: ProjectionTables, views: dict[str, CustomerView]) -> None:
    """The lots, holds and campaign credits of `views` (by customer id)."""
    name = tables.name
    ids = list(views)
    for cid, *row in _select_in(
        cur,
        f"SELECT customer_id, {HoldRow.COLUMNS} FROM {name('holds')} WHERE customer_id IN (?)",
        ids,
    ):
        hold = HoldRow.from_row(row)
        views[cid].holds[hold.hold_id] = hold
    for cid, *row in _select_in(
        cur,
        f"SELECT customer_id, {Lot.COLUMNS} FROM {name('lots')} WHERE customer_id IN (?)",
        ids,
    ):
        lot = Lot.from_row(row)
        views[cid].lots[lot.lot_id] = lot
    for cid, campaign_id, points, stamps in _select_in(
        cur,
        f"SELECT customer_id, campaign_id, points, stamps FROM {name('campaign_credits')} "
        "WHERE customer_id IN (?)",
        ids,
    ):
        views[cid].campaigns[campaign_id] = [int(points), None if stamps is None else int(stamps)]
