"""Views to rows: what one projection batch writes (`loading.py` reads them back).

Inside the batch's transaction, `append_rows` writes the new timeline rows, NPS
responses and outbox messages, and `save_views` every touched customer's rows (the
answers at the customer's clock, the changed lots and purchases) and the program-wide
rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson

from services.infrastructure.sql import Cursor
from services.projections.projector import Output
from services.projections.tables import ProjectionTables
from services.projections.views.answers import standings_at_clock
from services.projections.views.customer import CustomerView
from services.projections.views.program import ProgramView

PROGRAM_NAME = "default"
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
