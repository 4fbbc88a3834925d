"""The console's lists that the read API has no query for (SPEC §10), read from the
projection tables; everything else the console shows comes from `ProjectionQueries` and
the read side's own answer functions, so a page and the API cannot disagree.

- `search`: customers whose id starts with (or contains) what was typed;
- `customer_page`: one fold of a customer, the five answers the API gives separately;
- `timeline_window`: which page of the API's timeline to ask for (newest first, as of a date);
- `waiting_requests`: goodwill grants and adjustments waiting for a second person;
- `points_by_month`: points issued, redeemed, expired and donated per month, and the liability at
  each month's end (the running sum of the same moves);
- `nps_breakdown`: NPS per store and per touchpoint, each by the API's own `nps` query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from services.ledger.domain.clock import iso
from services.projections.queries import Answer, ProjectionQueries
from services.projections.views import answers

# The timeline's types, by what they do to the program's outstanding points.
ISSUED = (
    "PurchaseRecorded",
    "RefundRecorded",
    "ReviewRecorded",
    "GoodwillGranted",
    "ReferralRewarded",
    "PointsAdjusted",
    "CustomerEnrolled",
    "OpeningBalanceImported",
    "CampaignPointsGranted",
)
# A hold moves points from available to held and a release back: neither changes the
# outstanding points; a capture redeems what it captures.
REDEEMED = ("PointsRedeemed", "RedemptionCancelled", "HoldCaptured")
EXPIRED = ("PointsExpired",)
DONATED = ("PointsDonated",)
# A request and the decisions that close it (maker-checker, SPEC §3).
REQUESTS = {
    "GoodwillRequested": ("goodwill", ("GoodwillGranted", "GoodwillRejected")),
    "AdjustmentRequested": ("adjustment", ("PointsAdjusted", "AdjustmentRejected")),
    "ErasureRequested": ("erasure", ("CustomerErased", "ErasureRejected")),
}


@dataclass(frozen=True)
class CustomerPage:
    """The API's five customer answers from ONE fold (a 10,000-event customer is folded
    once per page, not five times), plus the position they reflect."""

    balance: Answer
    tier: Answer
    segment: Answer
    trust: Answer
    ltv: Answer
    position: int
    evaluated_at: datetime | None
    campaigns: list[dict[str, Any]]  # SPEC §9: per campaign, its points and stamp card


def customer_page(
    queries: ProjectionQueries, customer_id: str, as_of: datetime | None = None
) -> CustomerPage:
    f = queries.customer(customer_id, as_of=as_of)
    return CustomerPage(
        balance=answers.balance_answer(f.view),
        tier=answers.tier_answer(f.view, f.at, f.rules),
        segment=answers.segment_answer(f.view, f.at),
        trust=answers.trust_answer(f.view, f.at, f.rules),
        ltv=answers.ltv_answer(f.view, f.at, f.rules),
        position=f.position,
        evaluated_at=f.at,
        campaigns=answers.campaigns_answer(f.view)["campaigns"],
    )


def search(queries: ProjectionQueries, text: str, limit: int = 50) -> list[dict[str, Any]]:
    """Customers whose id starts with `text` first, then those that contain it."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    name = queries.tables.name
    sql = (
        f"SELECT c.customer_id, b.available, b.pending, b.debt, t.tier, s.segment, c.clock "
        f"FROM {name('customers')} c "
        f"LEFT JOIN {name('balance')} b ON b.customer_id = c.customer_id "
        f"LEFT JOIN {name('tier')} t ON t.customer_id = c.customer_id "
        f"LEFT JOIN {name('segment')} s ON s.customer_id = c.customer_id "
        "WHERE c.customer_id LIKE ? ESCAPE '\\' "
        "ORDER BY CASE WHEN c.customer_id LIKE ? ESCAPE '\\' THEN 0 ELSE 1 END, c.customer_id "
        "LIMIT ?"
    )
    with queries.db.reading() as cur:
        rows = cur.execute(sql, (f"%{escaped}%", f"{escaped}%", limit)).fetchall()
    keys = ("customer_id", "available", "pending", "debt", "tier", "segment", "clock")
    return [dict(zip(keys, row, strict=True)) for row in rows]


@dataclass(frozen=True)
class TimelineWindow:
    """Which page of the API's timeline to ask for: `limit` rows after `after_position`
    hold the customer's newest `wanted` events (that occurred by `as_of`, below
    `before_position`), and perhaps a few that occurred later (recorded in between: to
    be left out); `older` is the `before_position` of the page before (None: no more)."""

    after_position: int
    limit: int
    older: int | None


def timeline_window(
    queries: ProjectionQueries,
    customer_id: str,
    *,
    wanted: int,
    before_position: int | None = None,
    as_of: datetime | None = None,
) -> TimelineWindow:
    where = ["customer_id = ?"]
    params: list[Any] = [customer_id]
    if before_position is not None:
        where.append("position < ?")
        params.append(before_position)
    if as_of is not None:
        where.append("COALESCE(occurred_at, recorded_at) <= ?")
        params.append(iso(as_of))
    table = queries.tables.name("timeline")
    with queries.db.reading() as cur:
        rows = cur.execute(
            f"SELECT position FROM {table} WHERE {' AND '.join(where)} "
            "ORDER BY position DESC LIMIT ?",
            (*params, wanted + 1),
        ).fetchall()
        positions = [int(row[0]) for row in rows]
        if not positions:
            return TimelineWindow(0, 1, None)
        more = len(positions) > wanted
        after = positions[wanted] if more else positions[-1] - 1
        # every row in (after, newest wanted]: later-occurring ones recorded in between too
        span = cur.execute(
            f"SELECT COUNT(*) FROM {table} WHERE customer_id = ? AND position > ? "
            "AND position <= ?",
            (customer_id, after, positions[0]),
        ).fetchone()
    limit = int(span[0]) if span else len(positions)
    return TimelineWindow(after, max(limit, 1), positions[wanted - 1] if more else None)


@dataclass
class WaitingRequest:
    kind: str  # goodwill, adjustment or erasure
    customer_id: str
    request_id: str  # the goodwill's event_id, the adjustment_id, the erasure's erase-…
    position: int
    points: int | None  # none for an erasure
    requested_by: str
    reason: str
    waits_because: str | None  # goodwill: above-small-money-limit or trust-tester-flagged
    occurred_at: str | None
    recorded_at: str
    details: dict[str, Any] = field(default_factory=dict)


def waiting_requests(queries: ProjectionQueries, limit: int = 500) -> list[WaitingRequest]:
    """Requests with no decision yet, oldest first: one pass over the timeline's request
    and decision rows (a decision closes the request with its customer and id)."""
    closes = {d: request for request, (_, decided) in REQUESTS.items() for d in decided}
    kinds = [*REQUESTS, *closes]
    sql = (
        "SELECT customer_id, position, type, event_id, occurred_at, recorded_at "
        f"FROM {queries.tables.name('timeline')} WHERE type IN ({', '.join('?' * len(kinds))}) "
        "ORDER BY position"
    )
    with queries.db.reading() as cur:
        found = cur.execute(sql, kinds).fetchall()
    waiting: dict[tuple[str, str, str], tuple[Any, ...]] = {}
    for row in found:
        customer_id, _, kind, request_id = row[:4]
        if kind in REQUESTS:
            waiting[customer_id, request_id, kind] = row
        else:
            waiting.pop((customer_id, request_id, closes[kind]), None)
    rows = sorted(waiting.values(), key=lambda row: int(row[1]))[:limit]
    states = queries.reader.states([int(row[1]) for row in rows])
    requests = []
    for customer_id, position, kind, request_id, occurred_at, recorded_at in rows:
        data = orjson.loads(states[position])
        goodwill = kind == "GoodwillRequested"
        requests.append(
            WaitingRequest(
                kind=REQUESTS[kind][0],
                customer_id=customer_id,
                request_id=request_id,
                position=int(position),
                points=int(data["points"]) if "points" in data else None,
                requested_by=str(data["issued_by"] if goodwill else data["requested_by"]),
                reason=str(data["reason_code"] if goodwill else data["reason"]),
                waits_because=data.get("waits_because"),
                occurred_at=occurred_at,
                recorded_at=recorded_at,
                details={k: data.get(k) for k in ("store_id", "incident_id", "amount", "currency")},
            )
        )
    return requests


@dataclass
class MonthlyPoints:
    month: str  # YYYY-MM (UTC)
    issued: int = 0
    redeemed: int = 0
    expired: int = 0
    donated: int = 0
    liability: int = 0  # outstanding points at the month's end


def points_by_month(queries: ProjectionQueries) -> list[MonthlyPoints]:
    """Per month (by when the event occurred, UTC): points issued net of reversals,
    redeemed net of cancellations, expired, donated; and the outstanding points at each month's end
    (the running sum of every move: it ends at the liability answer's outstanding points)."""
    sql = (
        "SELECT SUBSTR(COALESCE(occurred_at, recorded_at), 1, 7) AS month, type, "
        "SUM(available + pending + held - debt) "
        f"FROM {queries.tables.name('timeline')} GROUP BY 1, 2 ORDER BY 1"
    )
    with queries.db.reading() as cur:
        rows = cur.execute(sql).fetchall()
    months: dict[str, MonthlyPoints] = {}
    for month, kind, moved in rows:
        entry = months.setdefault(month, MonthlyPoints(month))
        moved = int(moved or 0)
        entry.liability += moved
        if kind in ISSUED:
            entry.issued += moved
        elif kind in REDEEMED:
            entry.redeemed -= moved
        elif kind in EXPIRED:
            entry.expired -= moved
        elif kind in DONATED:
            entry.donated -= moved
    running = 0
    ordered = [months[m] for m in sorted(months)]
    for entry in ordered:
        running += entry.liability
        entry.liability = running
    return ordered


def nps_breakdown(queries: ProjectionQueries) -> tuple[list[tuple[str, Answer]], ...]:
    """NPS per store and per touchpoint (the API's `nps` query for each)."""
    totals = queries.tables.name("nps_totals")
    with queries.db.reading() as cur:
        stores = cur.execute(f"SELECT DISTINCT store_id FROM {totals} ORDER BY 1").fetchall()
        points = cur.execute(f"SELECT DISTINCT touchpoint FROM {totals} ORDER BY 1").fetchall()
    by_store = [(s, queries.nps(store_id=s)) for (s,) in stores]
    by_touchpoint = [(t, queries.nps(touchpoint=t)) for (t,) in points]
    return by_store, by_touchpoint
