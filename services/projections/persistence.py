"""Views to rows and back: what one projection batch writes, and how a view is loaded.

Inside the batch's transaction, `append_rows` writes the new timeline rows, NPS
responses and outbox messages, and `save_views` every touched customer's rows (the
answers at the customer's clock, the changed lots and purchases) and the program-wide
rows. `load_customers`
rebuilds views from the rows so that the fold continues exactly where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

import orjson

from services.infrastructure.sql import Cursor
from services.projections.projector import Output
from services.projections.tables import ProjectionTables
from services.projections.views.answers import standings_at_clock
from services.projections.views.common import parse
from services.projections.views.customer import CustomerView, HoldRow, Lot
from services.projections.views.program import ProgramView, rules_from
from services.projections.views.watch import Watch
from services.projections.views.windows import Purchase

PROGRAM_NAME = "default"
_CHUNK = 500
ROWS_CHUNK = 2000  # customers' rows computed and written per job


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


# ---- views to rows --------------------------------------------------------------------------
def customer_rows(view: CustomerView, program: ProgramView) -> dict[str, list[tuple[Any, ...]]]:
    """One customer's rows, the standings evaluated at the customer's clock with the rules
    of the customer's last event."""
    rules = view.rules or program.rules
    cid = view.customer_id
    tier, segment, trust, ltv = standings_at_clock(view, rules)
    lots = view.lots
    dirty_lots = (
        lots.values()
        if len(view.dirty_lots) == len(lots)
        else map(lots.__getitem__, view.dirty_lots)
    )
    purchases = view.purchases
    dirty_purchases = (
        purchases.values()
        if len(view.dirty_purchases) == len(purchases)
        else map(purchases.__getitem__, view.dirty_purchases)
    )
    return {
        "customers": [
            (
                view.originator_id,
                cid,
                view.opened_position,
                view.last_position,
                view.clock,
                rules.version,
            )
        ],
        "balance": [
            (
                cid,
                view.available,
                view.pending,
                view.debt,
                view.available + view.pending + view.held - view.debt,
                view.lifetime_earned,
                view.redeemed,
                view.expired,
                view.held,
            )
        ],
        "lots": [lot.row(cid) for lot in dirty_lots],
        "holds": [view.holds[hold_id].row(cid) for hold_id in sorted(view.dirty_holds)],
        "campaign_credits": [
            (cid, campaign_id, view.campaigns[campaign_id][0], view.campaigns[campaign_id][1])
            for campaign_id in sorted(view.dirty_campaigns)
        ],
        "purchases": [p.row(cid) for p in dirty_purchases],
        "tier": [
            (
                cid,
                tier["tier"],
                tier["multiplier"],
                tier["rolling_spend"],
                tier["next_tier"],
                tier["missing_spend"],
                int(tier["held_by_grace"]),
                tier["why"],
                view.clock,
            )
        ],
        "segment": [
            (
                cid,
                segment["segment"],
                segment["why"],
                segment["purchases_12m"],
                view.last_promoter_at,
                view.referrals_rewarded,
                view.clock,
            )
        ],
        "trust": [
            (
                cid,
                trust["deposit"],
                trust["status"],
                view.good_jobs,
                view.mistakes,
                view.restored,
                int(trust["flagged"]),
                _json(view.grants),
                _json(view.incidents),
                _json(view.resolving),
                _json(sorted(view.resolved)),
            )
        ],
        "ltv": [
            (
                cid,
                ltv["ltv"],
                ltv["realised"],
                ltv["m"],
                ltv["a"],
                ltv["t"],
                ltv["currency"],
                view.clock,
            )
        ],
    }


def append_rows(cur: Cursor, tables: ProjectionTables, output: Output, created_at: str) -> None:
    """A batch's new rows: timeline, NPS responses, outbox messages (in position order)."""
    tables.append(cur, "timeline", output.timeline)
    tables.append(cur, "nps_responses", output.responses)
    tables.append(cur, "outbox", [(*m, created_at) for m in output.messages])


Rows = dict[str, list[tuple[Any, ...]]]


@dataclass
class ViewRows:
    """Rows to write: inserted (new keys: COPY on PostgreSQL) or upserted."""

    inserts: Rows = field(default_factory=dict)
    upserts: Rows = field(default_factory=dict)


def view_rows(views: Iterable[CustomerView], program: ProgramView) -> ViewRows:
    """The customers' rows as the views hold them now; the views count as saved after."""
    rows = ViewRows()
    for view in views:
        # A view never saved has no rows yet: plain inserts, no upserts.
        target = rows.upserts if view.stored else rows.inserts
        for key, found in customer_rows(view, program).items():
            target.setdefault(key, []).extend(found)
        view.dirty_lots.clear()
        view.dirty_purchases.clear()
        view.dirty_holds.clear()
        view.dirty_campaigns.clear()
        view.stored = True
    return rows


def program_rows(program: ProgramView) -> ViewRows:
    """The program-wide rows that changed: liability, NPS totals, goodwill months, rules."""
    rows = ViewRows()
    liability = (
        PROGRAM_NAME,
        program.pending,
        program.available,
        program.debt,
        program.outstanding,
        program.customers,
        program.held,
    )
    _put(rows, program, "liability", "liability", liability)
    for charity_id, month in sorted(program.dirty_donations):
        given = (charity_id, month, *program.donations[charity_id, month])
        _put(rows, program, f"donation:{charity_id}:{month}", "donations", given)
    for store, touchpoint in sorted(program.dirty_nps):
        counts = program.nps[store, touchpoint]
        _put(rows, program, f"nps:{store}:{touchpoint}", "nps_totals", (store, touchpoint, *counts))
    for month in sorted(program.dirty_goodwill):
        months = (month, *program.goodwill[month])
        _put(rows, program, f"goodwill:{month}", "goodwill_months", months)
    if program.rules_changed and program.rules_document is not None:
        rules = (PROGRAM_NAME, program.rules.version, _json(program.rules_document))
        _put(rows, program, "program", "program", rules)
    program.clean()
    return rows


def write_rows(cur: Cursor, tables: ProjectionTables, rows: ViewRows) -> None:
    for key, found in rows.inserts.items():
        tables.append(cur, key, found)
    for key, found in rows.upserts.items():
        tables.upsert(cur, key, found)


def submit_view_rows(
    submit: Callable[[Callable[[Cursor], None]], None],
    tables: ProjectionTables,
    views: Sequence[CustomerView],
    program: ProgramView,
) -> None:
    """Every view's rows as write jobs, computed a chunk at a time, so that a pipelined
    writer writes one chunk while the next is computed."""
    for first in range(0, len(views), ROWS_CHUNK):
        rows = view_rows(views[first : first + ROWS_CHUNK], program)
        submit(partial(write_rows, tables=tables, rows=rows))


def save_views(
    cur: Cursor,
    tables: ProjectionTables,
    views: Iterable[CustomerView],
    program: ProgramView,
) -> None:
    """The touched customers' rows and the program-wide rows, as the views hold them now."""
    write_rows(cur, tables, view_rows(views, program))
    write_rows(cur, tables, program_rows(program))


def _put(
    rows: ViewRows, program: ProgramView, row_key: str, table: str, row: tuple[Any, ...]
) -> None:
    """A program-wide row: inserted the first time, updated after."""
    target = rows.upserts if row_key in program.stored else rows.inserts
    target.setdefault(table, []).append(row)
    program.stored.add(row_key)


# ---- rows to views ---------------------------------------------------------------------------
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
) -> dict[str, CustomerView]:
    """The views of the given accounts that the tables hold, by originator id (text);
    `watched` (the live runner) also restores what the change feed last reported."""
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
    for cid, hold_id, points, reward_id, held_at, expires_at, status, captured in _select_in(
        cur,
        f"SELECT customer_id, hold_id, points, reward_id, held_at, expires_at, status, captured "
        f"FROM {name('holds')} WHERE customer_id IN (?)",
        ids,
    ):
        views[cid].holds[hold_id] = HoldRow(
            hold_id, int(points), reward_id, held_at, expires_at, status, int(captured)
        )
    for (
        cid,
        lot_id,
        source,
        status,
        points,
        used,
        reversed_,
        expired,
        earned_at,
        matures_at,
        expires_at,
        rule_version,
    ) in _select_in(
        cur,
        f"SELECT customer_id, lot_id, source, status, points, used, reversed, expired, "
        f"earned_at, matures_at, expires_at, rule_version FROM {name('lots')} "
        "WHERE customer_id IN (?)",
        ids,
    ):
        views[cid].lots[lot_id] = Lot(
            lot_id,
            source,
            int(points),
            status == "pending",
            earned_at,
            matures_at,
            expires_at,
            int(rule_version),
            int(used),
            int(reversed_),
            int(expired),
        )
    for cid, campaign_id, points, stamps in _select_in(
        cur,
        f"SELECT customer_id, campaign_id, points, stamps FROM {name('campaign_credits')} "
        "WHERE customer_id IN (?)",
        ids,
    ):
        views[cid].campaigns[campaign_id] = [int(points), None if stamps is None else int(stamps)]
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
