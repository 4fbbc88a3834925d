"""For random histories recorded through the real ledger (SQLite, a temporary file), every
projection equals a straightforward fold of the stored events written here, apart from
the projection code: the events are decoded with the library's own mapper, the open lots
come from the write side's aggregates, and the standings are computed from scratch at
the customer's clock. A rebuild into other tables gives the same rows as the live runner.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.infrastructure.sql import Database
from services.infrastructure.store import StoreURL
from services.ledger.application.ledger import Ledger
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.rules import ProgramRules
from services.ledger.domain.tiers import tier_at
from services.projections.lot_pages import LotPage
from services.projections.queries import ProjectionQueries
from services.projections.runner import ProjectionRunner, weight
from services.projections.tables import ProjectionTables
from services.projections.views import answers

START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
CUSTOMERS = ["ann", "bob", "cid", "dee"]
KINDS = [
    "purchase",
    "purchase",
    "purchase",
    "refund",
    "review",
    "incident",
    "goodwill",
    "redemption",
    "redemption_cancel",
    "referral",
    "enrolment",
    "redemption_hold",
    "redemption_capture",
    "redemption_void",
    "donation",
    "tick",
]

step = st.tuples(
    st.sampled_from(KINDS),
    st.integers(0, len(CUSTOMERS) - 1),
    st.integers(0, 24 * 40),  # hours forward
    st.integers(1, 1500),  # an amount or points
    st.integers(0, 10),  # a rating
)


class History:
    """POS events (and ticks) from the drawn steps; the ledger decides what is accepted."""

    def __init__(self) -> None:
        self.now = START
        self.n = 0
        self.purchases: dict[str, list[str]] = defaultdict(list)
        self.redemptions: dict[str, list[str]] = defaultdict(list)
        self.incidents: dict[str, list[str]] = defaultdict(list)
        self.holds: dict[str, list[str]] = defaultdict(list)

    def doc(self, kind: str, customer: str, **fields: Any) -> dict[str, Any]:
        self.n += 1
        return {
            "event_id": f"ev-{self.n}",
            "type": kind,
            "customer_id": customer,
            "occurred_at": self.now.isoformat(),
            "store_id": f"store-{self.n % 3}",
            "schema_version": 1,
            **fields,
        }

    def event(self, kind: str, who: int, amount: int, rating: int) -> dict[str, Any] | None:
        customer = CUSTOMERS[who]
        money = {"value": f"{amount}.{rating:02d}", "currency": "EUR"}
        if kind == "purchase" or (kind == "refund" and not self.purchases[customer]):
            doc = self.doc("purchase", customer, receipt_id=f"r{self.n}", amount=money)
            self.purchases[customer].append(doc["event_id"])
            return doc
        if kind == "refund":
            original = self.purchases[customer][amount % len(self.purchases[customer])]
            small = {"value": f"{amount % 300}.50", "currency": "EUR"}
            return self.doc("refund", customer, original_event_id=original, amount=small)
        if kind == "review":
            return self.doc(
                "review", customer, rating=rating, touchpoint=["sales", "service"][amount % 2]
            )
        if kind == "incident":
            doc = self.doc("incident", customer, severity="high", description="late")
            self.incidents[customer].append(doc["event_id"])
            return doc
        if kind == "goodwill":
            linked = self.incidents[customer][-1:] if amount % 2 else []
            fields: dict[str, Any] = {
                "points": amount * 2,
                "reason_code": "sorry",
                "issued_by": "a1",
            }
            if linked:
                fields["incident_id"] = linked[0]
            return self.doc("goodwill", customer, **fields)
        if kind == "redemption":
            doc = self.doc("redemption", customer, points=amount % 400 + 1, reward_id="coffee")
            self.redemptions[customer].append(doc["event_id"])
            return doc
        if kind == "redemption_cancel" and self.redemptions[customer]:
            original = self.redemptions[customer].pop()
            return self.doc("redemption_cancel", customer, original_event_id=original)
        if kind == "referral":
            referrer = CUSTOMERS[(who + 1 + amount % 3) % len(CUSTOMERS)]
            return self.doc("referral", f"new-{self.n}", referrer_id=referrer)
        if kind == "enrolment":  # a second one is refused (already-enrolled)
            return self.doc("enrolment", customer, channel="store")
        if kind == "redemption_hold":  # some expire before the next step (hours forward)
            doc = self.doc(
                "redemption_hold",
                customer,
                points=amount % 300 + 1,
                reward_id="mug",
                hold_seconds=3600 * (1 + rating),
            )
            self.holds[customer].append(doc["event_id"])
            return doc
        if kind in ("redemption_capture", "redemption_void") and self.holds[customer]:
            original = self.holds[customer].pop()
            fields = (
                {"points": amount % 200 + 1} if kind == "redemption_capture" and rating % 2 else {}
            )
            return self.doc(kind, customer, original_event_id=original, **fields)
        if kind == "donation":
            return self.doc(
                "donation", customer, points=amount % 150 + 1, charity_id="c" + str(who % 2)
            )
        return None


def record(ledger: Ledger, steps: list[tuple[str, int, int, int, int]], chunk: int) -> None:
    history = History()
    batch: list[dict[str, Any]] = []
    known: set[str] = set()
    for kind, who, hours, amount, rating in steps:
        history.now += timedelta(hours=hours)
        if kind == "tick":
            ledger.record_batch(batch) if batch else None
            batch = []
            ledger.tick(history.now, sorted(known))
            continue
        doc = history.event(kind, who, amount, rating)
        if doc is not None:
            batch.append(doc)
            known.add(doc["customer_id"])
            if doc.get("referrer_id"):
                known.add(doc["referrer_id"])
        if len(batch) >= chunk:
            ledger.record_batch(batch)
            batch = []
    if batch:
        ledger.record_batch(batch)


# ---- the independent fold ----------------------------------------------------------------
def moment(name: str, e: Any) -> str | None:
    if name == "GoodwillGranted":
        return str(e.granted_at)
    found = getattr(e, "occurred_at", None) or getattr(e, "decided_at", None)
    return str(found) if found else None


def expected_views(ledger: Ledger, rules: ProgramRules) -> dict[str, dict[str, Any]]:
    owner: dict[Any, str] = {}
    facts: dict[str, dict[str, Any]] = {}
    start = 1
    while True:
        page = ledger.recorder.select_notifications(start, 500)
        for n in page:
            e = ledger.mapper.to_domain_event(n)
            if not isinstance(e, CustomerAccount.Event | CustomerAccount.Opened):
                continue
            name = type(e).__name__
            if name == "Opened":
                owner[e.originator_id] = e.customer_id
                facts[e.customer_id] = defaultdict(list, {"positions": []})
                continue
            f = facts[owner[e.originator_id]]
            f["positions"].append(n.id)
            f["events"].append((name, e))
        if len(page) < 500:
            break
        start = page[-1].id + 1
    out = {}
    for customer, f in facts.items():
        legs: dict[str, int] = defaultdict(int)
        clock = None
        purchases: dict[str, list[Any]] = {}
        good = bad = 0
        incidents: dict[str, datetime] = {}
        grants: list[tuple[str | None, datetime]] = []
        promoter = None
        referrals = 0
        for name, e in f["events"]:
            for account, points in getattr(e, "postings", ()):
                legs[account] += points
            when = moment(name, e)
            clock = when if clock is None or (when and when > clock) else clock
            if name == "PurchaseRecorded":
                purchases[e.event_id] = [datetime.fromisoformat(e.occurred_at), Decimal(e.amount)]
                good += 1
            elif name == "RefundRecorded":
                purchases[e.original_event_id][1] -= Decimal(e.amount)
            elif name == "ReviewRecorded":
                good += e.rating >= 9
                bad += e.rating <= 6
                if e.rating >= 9:
                    at = datetime.fromisoformat(e.occurred_at)
                    promoter = at if promoter is None else max(promoter, at)
            elif name == "IncidentReported":
                bad += 1
                incidents[e.event_id] = datetime.fromisoformat(e.occurred_at)
            elif name == "GoodwillGranted":
                grants.append((e.incident_id, datetime.fromisoformat(e.granted_at)))
            elif name == "ReferralRewarded":
                referrals += 1
        restored = sum(
            1
            for incident_id, at in incidents.items()
            if any(
                i == incident_id and timedelta(0) <= g - at <= timedelta(hours=48)
                for i, g in grants
            )
        )
        at = datetime.fromisoformat(clock) if clock else None
        entries = [(w, net) for w, net in purchases.values()]
        year = [net for w, net in entries if net > 0 and at and at - timedelta(days=365) < w <= at]
        sold = any(net > 0 for _, net in entries)
        promoter_recent = (
            promoter is not None and at is not None and at - timedelta(days=365) < promoter
        )
        segment = (
            "visitor"
            if not sold
            else "buyer"
            if len(year) < 3
            else "advocate"
            if referrals or promoter_recent
            else "client"
        )
        deposit = good - 10 * bad + 5 * restored
        out[customer] = {
            "balance": (
                legs["customer:available"],
                legs["customer:pending"],
                -legs["customer:debt"],
                -legs["program:issued"],
                legs["program:redeemed"],
                legs["program:expired"],
                legs["customer:held"],
            ),
            "donated": {
                a[len("charity:") :]: p for a, p in legs.items() if a.startswith("charity:")
            },
            "trust": (
                deposit,
                # `new` only before any interaction (SPEC §3)
                "new" if at is None else "forgiving" if deposit > 0 else "at_risk",
                good,
                bad,
            ),
            "tier": tier_at(entries, at, rules).step.name if at else "bronze",
            "segment": segment,
            "ltv": (str(sum(year, Decimal(0)) * rules.ltv_lifetime_years), len(year)),
            "timeline": f["positions"],
            "clock": clock,
        }
    return out


def open_lots(ledger: Ledger, customer: str) -> list[tuple[str, int, str]]:
    account = ledger.find_account(customer)
    assert account is not None
    return sorted(
        (lot.lot_id, lot.remaining, "pending" if lot.pending else "available")
        for lot in account.lots.values()
        if lot.remaining > 0
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    steps=st.lists(step, min_size=1, max_size=45),
    chunk=st.integers(1, 8),
    page=st.integers(1, 40),
    commit=st.integers(1, 120),
    lapse=st.integers(0, 500),
    # What the runner's cache may hold (views' items): from one, so that every view leaves
    # after each batch and is loaded again from the tables, to all of them.
    cache=st.sampled_from([1, 3, 25, 1_000_000]),
)
def test_every_projection_equals_a_straightforward_fold_of_the_events(
    steps: list[tuple[str, int, int, int, int]],
    chunk: int,
    page: int,
    commit: int,
    lapse: int,
    cache: int,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = StoreURL.parse(f"sqlite:///{Path(tmp) / 'ledger.db'}")
        rules = ProgramRules().with_version(0)
        ledger = Ledger(env=store.eventsourcing_env(), rules=rules)
        db = Database(store)
        try:
            record(ledger, steps, chunk)
            tables = ProjectionTables(db)
            tables.create()
            runner = ProjectionRunner(
                ledger.recorder, tables, page_size=page, commit_every=commit, cache_items=cache
            )
            assert runner.catch_up() == ledger.position()
            cached = runner._started().customers.values()
            assert runner.cached_items == sum(weight(view) for view in cached) <= cache
            check(ledger, tables, runner)
            check_lot_pages(ledger, tables, runner, page, timedelta(days=lapse))
            runner.rebuild("replay_", page_size=page * 3, commit_every=commit * 2)
            replayed = ProjectionTables(db, "replay_")
            for key in tables.compared():
                assert tables.rows(key) == replayed.rows(key), key
        finally:
            db.close()
            ledger.close()


def every_lot(read: Callable[[LotPage], dict[str, Any]], limit: int) -> dict[str, Any]:
    """The balance with its lots read a page of `limit` at a time, joined."""
    lots: list[dict[str, Any]] = []
    after = None
    while True:
        answer = read(LotPage(limit, after))
        lots += answer["lots"]
        assert len(answer["lots"]) <= limit
        after = answer["next_lots"]
        if after is None:
            return {**answer, "lots": lots}


def check_lot_pages(
    ledger: Ledger, tables: ProjectionTables, runner: ProjectionRunner, limit: int, lapse: timedelta
) -> None:
    """The live balance read from the rows a page at a time, at a moment when some lots have
    lapsed, is the folded view's full answer, and so is the as-of answer's pages; the live
    tier then is the folded one."""
    queries = ProjectionQueries(ledger.recorder, tables, runner)
    for customer in CUSTOMERS:
        if ledger.find_account(customer) is None:
            continue
        folded = queries.customer(customer)
        clock = folded.view.clock
        assert clock is not None
        later = datetime.fromisoformat(clock) + lapse
        queries.clock = lambda: later  # noqa: B023 (used in this iteration only)
        whole = answers.balance_answer(folded.view, later)
        live = every_lot(lambda page: queries.balance(customer, lots=page), limit)  # noqa: B023
        assert {**live, "lots_count": len(live["lots"])} == {
            **whole,
            "lots_count": live["lots_count"],
            "expiring_next": live["expiring_next"],
            "next_lots": None,
            "position": live["position"],
        }
        available = [lot for lot in whole["lots"] if lot["status"] == "available"]
        soonest = min((lot["expires_at"] for lot in available), default=None)
        assert live["expiring_next"] == (
            soonest
            and {
                "expires_at": soonest,
                "points": sum(
                    lot["remaining"] for lot in available if lot["expires_at"] == soonest
                ),
            }
        )
        as_of = every_lot(
            lambda page: queries.balance(customer, lots=page, as_of=later),  # noqa: B023
            limit,
        )
        assert as_of == {**live, "position": as_of["position"]}
        # the live tier reads only the purchases the window and grace period can see
        tier = queries.tier(customer, as_of=later)
        assert queries.tier(customer) == {**tier, "position": live["position"]}


def check(ledger: Ledger, tables: ProjectionTables, runner: ProjectionRunner) -> None:
    rules = ledger.rules
    expected = expected_views(ledger, rules)
    balance = {row[0]: row[1:] for row in tables.rows("balance")}
    trust = {row[0]: row[1:5] for row in tables.rows("trust")}
    tier = {row[0]: row[1] for row in tables.rows("tier")}
    segment = {row[0]: row[1] for row in tables.rows("segment")}
    ltv = {row[0]: (row[1], row[4]) for row in tables.rows("ltv")}
    lots: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    for row in tables.rows("lots"):
        if row[8] > 0:
            lots[row[0]].append((row[1], row[8], row[3]))
    timeline: dict[str, list[int]] = defaultdict(list)
    for row in tables.rows("timeline"):
        timeline[row[0]].append(row[1])
    assert set(balance) == set(expected)
    for customer, want in expected.items():
        available, pending, debt, _, lifetime, redeemed, expired, held = balance[customer]
        assert (available, pending, debt, lifetime, redeemed, expired, held) == want["balance"]
        assert available >= 0 and held >= 0  # a hold never makes available negative
        assert trust[customer] == want["trust"]
        assert tier[customer] == want["tier"]
        assert segment[customer] == want["segment"]
        assert (Decimal(ltv[customer][0]), ltv[customer][1]) == (
            Decimal(want["ltv"][0]),
            want["ltv"][1],
        )
        assert sorted(lots[customer]) == open_lots(ledger, customer)
        assert timeline[customer] == want["timeline"]
    # program-wide: liability is the sum of the customers' points
    ((_, pending, available, debt, outstanding, customers, held),) = tables.rows("liability")
    assert customers == len(expected)
    assert outstanding == sum(
        b[0] + b[1] + b[6] - b[2] for b in (w["balance"] for w in expected.values())
    )
    assert (available, pending, debt, held) == tuple(
        sum(w["balance"][i] for w in expected.values()) for i in (0, 1, 2, 6)
    )
    donated: dict[str, int] = defaultdict(int)
    for want in expected.values():
        for charity, points in want["donated"].items():
            donated[charity] += points
    by_charity: dict[str, int] = defaultdict(int)
    for charity, _, points, _ in tables.rows("donations"):
        by_charity[charity] += points
    assert by_charity == donated
    # the live answers, at the customers' clocks, are the rows
    queries = ProjectionQueries(
        ledger.recorder, tables, runner, clock=lambda: datetime(2000, 1, 1, tzinfo=UTC)
    )
    for customer, want in expected.items():
        assert queries.tier(customer)["tier"] == want["tier"]
        assert queries.segment(customer)["segment"] == want["segment"]
        assert queries.trust(customer)["deposit"] == want["trust"][0]
        as_of = queries.balance(customer, as_of_position=ledger.position())
        assert as_of == {**queries.balance(customer), "position": ledger.position()}
