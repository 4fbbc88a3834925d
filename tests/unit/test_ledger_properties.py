"""Properties of the ledger over random histories (issue 2, item 7; SPEC §3, §4).

Hypothesis writes histories of every POS event type, mixed with re-sent and altered
events, refunds, admin decisions and adjustments, ticks at random times and late events,
sent one by one or in batches. Each history is recorded through a real `Ledger` on a
fresh in-memory store (the library's POPO recorder: no file per example), then the stored
events are read back and checked:

(a) no event is applied twice; (b) each customer's available + pending - debt equals their
customer postings; (c) all postings sum to zero; (d) a refund never reverses more than its
purchase earned; (e) a redemption only takes points that were available, unexpired and
there.

The same checks run on SQLite, for fewer examples, in
tests/integration/test_ledger_properties_on_sqlite.py (the store's own queries: duplicate
look-ups, versions, positions).
"""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.infrastructure.store import StoreURL
from services.ledger.adapters.contract import validate_event
from services.ledger.application.ledger import Ledger, Outcome
from services.ledger.domain import errors
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.clock import parse_ts
from services.ledger.domain.intake import IntakeRecord, fingerprint
from services.ledger.domain.lots import ADJUSTMENT_LOT
from services.ledger.domain.rules import ProgramRules

START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
CUSTOMERS = ("ana", "ben", "cem")
SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---- histories as data: each step refers to earlier ones by index, resolved when run ----
customer = st.integers(min_value=0, max_value=5)  # among the known customers (modulo)
pick = st.integers(min_value=0, max_value=30)  # "the k-th earlier one" (modulo)
money = st.one_of(
    st.integers(min_value=1, max_value=20_000),  # cents: everyday baskets
    st.integers(min_value=50_000, max_value=150_000),  # big ones: tiers move
)
STEPS: dict[str, st.SearchStrategy[tuple[Any, ...]]] = {
    "purchase": st.tuples(st.just("purchase"), customer, money),
    "tick": st.tuples(st.just("tick"), st.sampled_from([0, 1, 7, 15, 30, 90, 200, 400])),
    "redemption": st.tuples(
        st.just("redemption"), customer, st.integers(min_value=1, max_value=400)
    ),
    "refund": st.tuples(st.just("refund"), customer, pick, st.integers(min_value=1, max_value=120)),
    "redemption_cancel": st.tuples(st.just("redemption_cancel"), customer, pick),
    # referee, a new customer?, referrer
    "referral": st.tuples(st.just("referral"), customer, st.booleans(), customer),
    "review": st.tuples(st.just("review"), customer, st.integers(min_value=0, max_value=10)),
    "goodwill": st.tuples(
        st.just("goodwill"),
        customer,
        st.sampled_from([10, 300, 2500, 2501, 6000]),
        st.booleans(),  # as money instead of points
    ),
    "incident": st.tuples(st.just("incident"), customer),
    "resend": st.tuples(st.just("resend"), pick),
    "alter": st.tuples(st.just("alter"), pick),
    "decide": st.tuples(
        st.just("decide"), pick, st.sampled_from(["approve", "reject", "self-approve"])
    ),
    "adjust": st.tuples(st.just("adjust"), customer, st.integers(min_value=-1500, max_value=1500)),
    "decide_adjustment": st.tuples(
        st.just("decide_adjustment"), pick, st.sampled_from(["approve", "reject"])
    ),
    # SPEC §9: enrolment (a second is refused), paying with points, holds, donations.
    "enrolment": st.tuples(st.just("enrolment"), customer),
    "purchase_tender": st.tuples(
        st.just("purchase_tender"), customer, money, st.integers(min_value=0, max_value=120)
    ),
    "hold": st.tuples(
        st.just("hold"),
        customer,
        st.integers(min_value=1, max_value=400),
        # seconds: the rule's 900, short, long ones that outlive the next steps
        st.sampled_from([None, 60, 3600 * 30, 604_800, 604_800]),
    ),
    "capture": st.tuples(
        st.just("capture"), customer, pick, st.one_of(st.none(), st.none(), st.integers(1, 400))
    ),
    "void": st.tuples(st.just("void"), customer, pick),
    # a hold and, at once, its capture (all or part) or void, or nothing (the sweep's)
    "checkout": st.tuples(
        st.just("checkout"),
        customer,
        st.integers(min_value=1, max_value=200),
        st.sampled_from(["capture", "part", "void", "leave"]),
    ),
    "donation": st.tuples(st.just("donation"), customer, st.integers(min_value=1, max_value=300)),
}
# Weighted: purchases and ticks make the points that the other steps move.
WEIGHTS = {
    "purchase": 6,
    "tick": 3,
    "redemption": 4,
    "refund": 3,
    "redemption_cancel": 2,
    "enrolment": 2,  # welcome points are available at once: holds have something to hold
    "hold": 4,
    "capture": 2,
    "checkout": 4,
}
steps = st.sampled_from([kind for kind in STEPS for _ in range(WEIGHTS.get(kind, 1))]).flatmap(
    STEPS.__getitem__
)
timed_step = st.tuples(
    steps,
    st.integers(min_value=0, max_value=72),  # hours since the previous step
    st.sampled_from([0, 0, 0, 5, 30]),  # hours late (POS events only)
    st.booleans(),  # joins the current batch
)
CUSTOMER_STEPS = {
    "purchase",
    "refund",
    "referral",
    "review",
    "goodwill",
    "incident",
    "redemption",
    "redemption_cancel",
    "adjust",
    "enrolment",
    "purchase_tender",
    "hold",
    "capture",
    "void",
    "donation",
    "checkout",
}
histories = st.tuples(
    st.lists(timed_step, min_size=10, max_size=45),
    st.sampled_from([15, 60, 400]),  # days to a last tick (lots mature, and may expire)
)


@dataclass
class Recorded:
    """What a history did, as the ledger answered it."""

    ledger: Ledger
    start: int
    customers: set[str] = field(default_factory=set)
    accepted: dict[str, tuple[str, int]] = field(default_factory=dict)  # id: (print, position)
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)  # id: accepted document
    refused: dict[str, tuple[str, str]] = field(default_factory=dict)  # id: (print, slug)
    # SPEC §8: follow-ups of an original never sent ("no-such-..."), waiting for it
    parked: dict[str, str] = field(default_factory=dict)  # id: print


def conflict(outcome: Outcome) -> bool:
    return isinstance(outcome.error, errors.EventIdConflict)


class HistoryRunner:
    def __init__(self, ledger: Ledger, tag: str) -> None:
        self.ledger = ledger
        self.tag = tag
        self.now = START
        self.n = 0
        self.sent: list[dict[str, Any]] = []
        self.by_type: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.accepted_by_type: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.adjustments: list[tuple[str, str]] = []
        self.batch: list[dict[str, Any]] = []
        self.recorded = Recorded(ledger, ledger.position(), set(CUSTOMERS))
        self.known = list(CUSTOMERS)

    # -- sending ---------------------------------------------------------------------
    def flush(self) -> None:
        if not self.batch:
            return
        batch, self.batch = self.batch, []
        before = self.ledger.position()
        outcomes = self.ledger.record_batch(batch)
        assert len(outcomes) == len(batch)
        seen = dict(self.recorded.accepted)
        for doc, outcome in zip(batch, outcomes, strict=True):
            self.check_answer(doc, outcome, seen)
        news = [o for o in outcomes if o.status == "accepted" or not (o.repeat or conflict(o))]
        if not news:
            assert self.ledger.position() == before, "a batch without news stored something"

    def check_answer(
        self, doc: dict[str, Any], outcome: Outcome, seen: dict[str, tuple[str, int | None]]
    ) -> None:
        """(a), as each answer comes: a repeat is a duplicate with the original position."""
        event_id, print_ = doc["event_id"], fingerprint(doc)
        assert outcome.event_id == event_id
        refused = self.recorded.refused.get(event_id)
        if refused is not None:  # a refusal is final: the same verdict, or a conflict
            assert outcome.status == "rejected" and outcome.error is not None, (doc, outcome)
            if refused[0] == print_:
                assert outcome.repeat and outcome.error.slug == refused[1], (doc, outcome)
            else:
                assert conflict(outcome), (doc, outcome)
            return
        waiting = self.recorded.parked.get(event_id)
        if waiting is not None:  # parked: parked again, or refused once it waited too long
            if waiting != print_:
                assert conflict(outcome), (doc, outcome)
            elif outcome.status == "rejected":
                assert outcome.error is not None and outcome.repeat, (doc, outcome)
                assert outcome.error.slug == "unknown-original-event", (doc, outcome)
            else:
                assert outcome.status == "parked", (doc, outcome)
            return
        if outcome.status == "parked":
            assert doc["original_event_id"].startswith("no-such-"), (doc, outcome)
            self.recorded.parked[event_id] = print_
            return
        earlier = seen.get(event_id)
        if earlier is not None and earlier[0] == print_:
            assert outcome.status == "duplicate", (doc, outcome)
            if earlier[1] is not None:
                assert outcome.position == earlier[1]
            return
        if earlier is not None:
            assert outcome.status == "rejected" and isinstance(
                outcome.error, errors.EventIdConflict
            ), (doc, outcome)
            return
        assert outcome.status in ("accepted", "rejected"), outcome
        if outcome.status == "rejected":
            assert isinstance(outcome.error, errors.RuleViolation), outcome.error
            assert not outcome.repeat
            self.recorded.refused[event_id] = (print_, outcome.error.slug)
            return
        assert outcome.position is not None and outcome.position > self.recorded.start
        seen[event_id] = (print_, outcome.position)
        self.recorded.accepted[event_id] = (print_, outcome.position)
        self.recorded.docs[event_id] = doc
        self.accepted_by_type[(doc["type"], doc["customer_id"])].append(event_id)
        self.recorded.customers.add(doc["customer_id"])
        if doc["type"] == "referral":
            self.recorded.customers.add(doc["referrer_id"])

    def send(self, doc: dict[str, Any], batched: bool) -> None:
        validate_event(doc)  # every history is one the POS contract admits
        self.sent.append(doc)
        self.by_type[(doc["type"], doc["customer_id"])].append(doc["event_id"])
        self.batch.append(doc)
        if not batched:
            self.flush()

    def event(self, kind: str, who: str, late_hours: int, **fields: Any) -> dict[str, Any]:
        self.n += 1
        return {
            "event_id": f"{self.tag}-{kind[:3]}-{self.n}",
            "type": kind,
            "customer_id": who,
            "occurred_at": (self.now - timedelta(hours=late_hours)).isoformat(),
            "store_id": "s-1",
            "schema_version": 1,
            **fields,
        }

    @contextmanager
    def unchanged_on_refusal(self) -> Iterator[None]:
        before = self.ledger.position()
        try:
            yield
        except errors.LedgerError:
            assert self.ledger.position() == before, "a refused decision stored something"

    # -- one step ----------------------------------------------------------------------
    def step(self, step: tuple[Any, ...], late: int, batched: bool) -> None:
        kind, *args = step
        if kind in CUSTOMER_STEPS:
            args[0] = self.known[args[0] % len(self.known)]
        if kind == "purchase":
            who, cents = args
            amount = {"value": str(Decimal(cents) / 100), "currency": "EUR"}
            doc = self.event("purchase", who, late, receipt_id=f"r{self.n + 1}", amount=amount)
            self.send(doc, batched)
        elif kind == "refund":
            who, k, percent = args
            purchases = self.by_type[("purchase", who)]
            original = purchases[k % len(purchases)] if purchases else "no-such-purchase"
            bought = next((d for d in self.sent if d["event_id"] == original), None)
            paid = Decimal(bought["amount"]["value"]) if bought else Decimal("10")
            value = max(Decimal("0.01"), (paid * percent / 100).quantize(Decimal("0.01")))
            amount = {"value": str(value), "currency": "EUR"}
            doc = self.event("refund", who, late, original_event_id=original, amount=amount)
            self.send(doc, batched)
        elif kind == "referral":
            referee, new_referee, referrer_index = args
            referrer = self.known[referrer_index % len(self.known)]
            if new_referee:
                referee = f"{self.tag}-new{self.n}"
                self.known.append(referee)
            self.send(self.event("referral", referee, late, referrer_id=referrer), batched)
        elif kind == "review":
            who, rating = args
            self.send(self.event("review", who, late, rating=rating, touchpoint="sales"), batched)
        elif kind == "goodwill":
            who, points, as_money = args
            grant: dict[str, Any] = (
                {"amount": {"value": str(Decimal(points) / 100), "currency": "EUR"}}
                if as_money
                else {"points": points}
            )
            doc = self.event("goodwill", who, late, reason_code="late", issued_by="clerk", **grant)
            self.send(doc, batched)
        elif kind == "incident":
            (who,) = args
            doc = self.event("incident", who, late, severity="high", description="broken")
            self.send(doc, batched)
        elif kind == "redemption":
            who, points = args
            self.send(self.event("redemption", who, late, points=points, reward_id="mug"), batched)
        elif kind == "redemption_cancel":
            who, k = args
            redemptions = self.accepted_by_type[("redemption", who)]
            original = redemptions[k % len(redemptions)] if redemptions else "no-such-redemption"
            doc = self.event("redemption_cancel", who, late, original_event_id=original)
            self.send(doc, batched)
        elif kind == "enrolment":
            (who,) = args
            self.send(self.event("enrolment", who, late, channel="store"), batched)
        elif kind == "purchase_tender":
            who, cents, percent = args  # above 100%: refused (points-tender-exceeds-amount)
            paid = Decimal(cents) / 100
            tender = (paid * percent / 100).quantize(Decimal("0.01"))
            doc = self.event(
                "purchase",
                who,
                late,
                receipt_id=f"r{self.n + 1}",
                amount={"value": str(paid), "currency": "EUR"},
                points_tender={"value": str(tender), "currency": "EUR"},
            )
            self.send(doc, batched)
        elif kind == "hold":
            who, points, seconds = args
            fields: dict[str, Any] = {"points": points, "reward_id": "mug"}
            if seconds:
                fields["hold_seconds"] = seconds
            self.send(self.event("redemption_hold", who, late, **fields), batched)
        elif kind in ("capture", "void"):
            who, k, *points = args
            holds = self.accepted_by_type[("redemption_hold", who)]
            original = holds[-1 - k % len(holds)] if holds else "no-such-hold"  # recent first
            extra = {"points": points[0]} if points and points[0] is not None else {}
            kind_ = "redemption_capture" if kind == "capture" else "redemption_void"
            self.send(self.event(kind_, who, late, original_event_id=original, **extra), batched)
        elif kind == "checkout":
            who, points, then = args
            hold = self.event("redemption_hold", who, late, points=points, reward_id="tv")
            self.send(hold, batched=False)
            if then != "leave":
                follow = "redemption_void" if then == "void" else "redemption_capture"
                extra = {"points": max(1, points // 3)} if then == "part" else {}
                doc = self.event(follow, who, late, original_event_id=hold["event_id"], **extra)
                self.send(doc, batched)
        elif kind == "donation":
            who, points = args
            doc = self.event("donation", who, late, points=points, charity_id="red-cross")
            self.send(doc, batched)
        elif kind == "resend" and self.sent:
            self.send(dict(self.sent[args[0] % len(self.sent)]), batched)
        elif kind == "alter" and self.sent:
            self.send({**self.sent[args[0] % len(self.sent)], "store_id": "s-other"}, batched)
        elif kind == "decide":
            self.flush()
            self.decide_goodwill(*args)
        elif kind == "adjust":
            self.flush()
            self.adjust(*args)
        elif kind == "decide_adjustment":
            self.flush()
            self.decide_adjustment(*args)
        elif kind == "tick":
            self.flush()
            self.now += timedelta(days=args[0])
            self.tick(self.now)

    def decide_goodwill(self, k: int, decision: str) -> None:
        grants = [d for d in self.sent if d["type"] == "goodwill"]
        if not grants:
            return
        event_id = grants[k % len(grants)]["event_id"]
        with self.unchanged_on_refusal():
            if decision == "reject":
                self.ledger.reject_goodwill(
                    event_id, rejected_by="sup", note=None, decided_at=self.now
                )
            else:
                who = "clerk" if decision == "self-approve" else "sup"
                self.ledger.approve_goodwill(event_id, approved_by=who, decided_at=self.now)
                assert decision != "self-approve", "maker-checker let the issuer approve"

    def adjust(self, who: str, points: int) -> None:
        adjustment_id = f"{self.tag}-adj-{len(self.adjustments)}"
        with self.unchanged_on_refusal():
            outcome = self.ledger.adjust(
                customer_id=who,
                adjustment_id=adjustment_id,
                points=points,
                reason="support",
                requested_by="admin-a",
                occurred_at=self.now,
            )
            self.adjustments.append((who, adjustment_id))
            assert outcome.effect["status"] in ("applied", "awaiting_approval")

    def decide_adjustment(self, k: int, decision: str) -> None:
        if not self.adjustments:
            return
        who, adjustment_id = self.adjustments[k % len(self.adjustments)]
        with self.unchanged_on_refusal():
            if decision == "approve":
                self.ledger.approve_adjustment(
                    customer_id=who,
                    adjustment_id=adjustment_id,
                    approved_by="admin-b",
                    decided_at=self.now,
                )
            else:
                self.ledger.reject_adjustment(
                    customer_id=who,
                    adjustment_id=adjustment_id,
                    rejected_by="admin-b",
                    note=None,
                    decided_at=self.now,
                )

    def tick(self, now: datetime) -> None:
        customers = sorted(self.recorded.customers)
        self.ledger.tick(now, customers)
        position = self.ledger.position()
        assert self.ledger.tick(now, customers).recorded == []
        assert self.ledger.position() == position

    def run(self, history: tuple[list[Any], int]) -> Recorded:
        timed_steps, last_tick_days = history
        for step, hours, late, batched in timed_steps:
            self.now += timedelta(hours=hours)
            self.step(step, late, batched)
        self.flush()
        self.now += timedelta(days=last_tick_days)
        self.tick(self.now)
        for e in stored_events(self.ledger, self.recorded.start):  # what the history covered
            event(type(e).__name__)
            if getattr(e, "debt_added", 0):
                event("debt")
        return self.recorded


IN_MEMORY = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


@contextmanager
def fresh_ledger(sqlite: bool = False) -> Iterator[Ledger]:
    """A new ledger on the in-memory store, or (`sqlite`) on a new SQLite file."""
    with tempfile.TemporaryDirectory(prefix="ledger-props-") as directory:
        url = f"sqlite:///{Path(directory) / 'ledger.db'}"
        env = StoreURL.parse(url).eventsourcing_env() if sqlite else IN_MEMORY
        ledger = Ledger(env=env, rules=ProgramRules().with_version(0))
        try:
            yield ledger
        finally:
            ledger.close()


def stored_events(ledger: Ledger, after: int = 0) -> list[Any]:
    found: list[Any] = []
    start = after + 1
    while True:
        page = ledger.recorder.select_notifications(start=start, limit=1000)
        found += [ledger.mapper.to_domain_event(n) for n in page]
        if len(page) < 1000:
            return found
        start = page[-1].id + 1


def owners(events: list[Any]) -> dict[Any, str]:
    return {e.originator_id: e.customer_id for e in events if isinstance(e, CustomerAccount.Opened)}


# ---- (a) ---------------------------------------------------------------------------------
@SETTINGS
@given(history=histories)
def test_no_event_is_applied_twice(history: tuple[list[Any], int]) -> None:
    with fresh_ledger() as ledger:
        check_no_event_is_applied_twice(ledger, history)


def check_no_event_is_applied_twice(ledger: Ledger, history: tuple[list[Any], int]) -> None:
    recorded = HistoryRunner(ledger, "h").run(history)
    events = stored_events(ledger)

    intake_ids = [e.event_id for e in events if isinstance(e, IntakeRecord.Accepted)]
    assert len(intake_ids) == len(set(intake_ids))
    assert set(intake_ids) == set(recorded.accepted)
    # Each POS event left its business event once (a referral: once on each account).
    effects = Counter(
        (type(e).__name__, e.originator_id, e.event_id)
        for e in events
        # (a hold released by the sweep has no event_id: it is the sweep's, once per hold)
        if isinstance(e, CustomerAccount.Event) and getattr(e, "event_id", None) is not None
    )
    assert all(count == 1 for count in effects.values()), effects.most_common(3)

    # Re-sending every accepted event, in one batch, changes nothing.
    position = ledger.position()
    docs = list(recorded.docs.values())
    if docs:
        outcomes = ledger.record_batch(docs)
        assert [o.status for o in outcomes] == ["duplicate"] * len(docs)
        assert [o.position for o in outcomes] == [recorded.accepted[d["event_id"]][1] for d in docs]
    assert ledger.position() == position


# ---- (b) and (c) ---------------------------------------------------------------------------
@SETTINGS
@given(history=histories)
def test_balances_are_the_customer_postings_and_all_postings_sum_to_zero(
    history: tuple[list[Any], int],
) -> None:
    with fresh_ledger() as ledger:
        check_balances_are_the_customer_postings_and_all_postings_sum_to_zero(ledger, history)


def check_balances_are_the_customer_postings_and_all_postings_sum_to_zero(
    ledger: Ledger, history: tuple[list[Any], int]
) -> None:
    recorded = HistoryRunner(ledger, "h").run(history)
    events = stored_events(ledger)
    owner = owners(events)
    held: dict[str, int] = defaultdict(int)  # the customer's legs
    on_hold: dict[str, int] = defaultdict(int)  # ... on customer:held
    total = 0
    for e in events:
        postings = getattr(e, "postings", ())
        assert sum(int(points) for _, points in postings) == 0, e  # each event balances
        for name, points in postings:
            total += int(points)
            if str(name).startswith("customer:"):
                held[owner[e.originator_id]] += int(points)
            if name == "customer:held":
                on_hold[owner[e.originator_id]] += int(points)
    assert total == 0  # with holds and donations (a charity's account is one more leg)
    for customer_id in recorded.customers:
        account = ledger.find_account(customer_id)
        if account is None:
            assert held.get(customer_id, 0) == 0
            continue
        assert (
            account.available + account.pending + account.held - account.debt == held[customer_id]
        ), (customer_id, account.available, account.pending, account.held, account.debt)
        assert account.debt >= 0 and account.pending >= 0
        # A hold never makes available negative, and holds only what it set aside.
        assert account.available >= 0 and account.held == on_hold[customer_id] >= 0


# ---- (d) and (e) ---------------------------------------------------------------------------
@dataclass
class LotModel:
    remaining: int
    pending: bool
    expires_at: datetime


def replay_lots(events: list[Any]) -> Iterator[tuple[Any, dict[str, LotModel]]]:
    """The lots of every account, rebuilt from the stored events' own fields, yielded with
    each event *before* it is applied."""
    lots: dict[Any, dict[str, LotModel]] = defaultdict(dict)

    def credit(e: Any, lot_id: str, points: int, expires_at: str) -> None:
        if points:
            lots[e.originator_id][lot_id] = LotModel(
                points - e.debt_repaid, False, parse_ts(expires_at)
            )

    def give_back(mine: dict[str, LotModel], allocation: Any, debt_repaid: int) -> None:
        for lot_id, points in allocation:
            mine[lot_id].remaining += points
        left = debt_repaid
        for lot_id, _ in allocation:
            take = min(left, max(mine[lot_id].remaining, 0))
            mine[lot_id].remaining -= take
            left -= take

    for e in events:
        mine = lots[e.originator_id]
        yield e, mine
        match e:
            case CustomerAccount.CustomerEnrolled():
                credit(e, e.event_id, e.points, e.expires_at)
            case CustomerAccount.PointsHeld() | CustomerAccount.PointsDonated():
                for lot_id, points in e.allocation:
                    mine[lot_id].remaining -= points
            case CustomerAccount.HoldCaptured():
                give_back(mine, e.released_allocation, e.debt_repaid)
            case CustomerAccount.HoldReleased():
                give_back(mine, e.allocation, e.debt_repaid)
            case CustomerAccount.PurchaseRecorded():
                mine[e.event_id] = LotModel(e.points, True, parse_ts(e.expires_at))
            case CustomerAccount.PointsMatured():
                mine[e.lot_id].pending = False
                mine[e.lot_id].remaining -= e.debt_repaid
            case CustomerAccount.PointsExpired():
                mine[e.lot_id].remaining -= e.points
            case CustomerAccount.RefundRecorded():
                for lot_id, kind, points in e.takes:
                    if kind != "expired":
                        mine[lot_id].remaining -= points
            case CustomerAccount.PointsRedeemed():
                for lot_id, points in e.allocation:
                    mine[lot_id].remaining -= points
            case CustomerAccount.RedemptionCancelled():
                for lot_id, points in e.allocation:
                    mine[lot_id].remaining += points
                left = e.debt_repaid
                for lot_id, _ in e.allocation:
                    take = min(left, max(mine[lot_id].remaining, 0))
                    mine[lot_id].remaining -= take
                    left -= take
            case CustomerAccount.ReferralRewarded():
                credit(e, e.lot_id, e.points, e.expires_at)
            case CustomerAccount.ReviewRecorded() | CustomerAccount.GoodwillGranted():
                credit(e, e.event_id, e.points, e.expires_at)
            case CustomerAccount.PointsAdjusted() if e.points >= 0:
                credit(
                    e, ADJUSTMENT_LOT.format(adjustment_id=e.adjustment_id), e.points, e.expires_at
                )
            case CustomerAccount.PointsAdjusted():
                for lot_id, points in e.allocation:
                    mine[lot_id].remaining -= points


@SETTINGS
@given(history=histories)
def test_refunds_and_redemptions_never_take_more_than_was_there(
    history: tuple[list[Any], int],
) -> None:
    with fresh_ledger() as ledger:
        check_refunds_and_redemptions_never_take_more_than_was_there(ledger, history)


def check_refunds_and_redemptions_never_take_more_than_was_there(
    ledger: Ledger, history: tuple[list[Any], int]
) -> None:
    HistoryRunner(ledger, "h").run(history)
    events = stored_events(ledger)

    # (d) a purchase's refunds reverse at most what it earned.
    earned = {
        e.event_id: e.points for e in events if isinstance(e, CustomerAccount.PurchaseRecorded)
    }
    reversed_: dict[str, int] = defaultdict(int)
    for e in events:
        if isinstance(e, CustomerAccount.RefundRecorded):
            assert e.points_reversed >= 0
            assert sum(points for _, _, points in e.takes) + e.debt_added == e.points_reversed
            reversed_[e.original_event_id] += e.points_reversed
    for purchase_id, points in reversed_.items():
        assert points <= earned[purchase_id], (purchase_id, points, earned[purchase_id])

    # (e) a redemption (and a hold, a donation) takes from lots that were available,
    # unexpired and held enough; a capture takes no more than its hold.
    holds = {e.event_id: e.points for e in events if isinstance(e, CustomerAccount.PointsHeld)}
    for e in events:
        if isinstance(e, CustomerAccount.HoldCaptured):
            assert e.points + e.released == holds.pop(e.original_event_id)
        elif isinstance(e, CustomerAccount.HoldReleased):
            assert e.points == holds.pop(e.original_event_id)
    redeemed = 0
    spending = (
        CustomerAccount.PointsRedeemed,
        CustomerAccount.PointsHeld,
        CustomerAccount.PointsDonated,
    )
    for e, lots in replay_lots(events):
        if not isinstance(e, spending):
            continue
        moment = parse_ts(e.occurred_at)
        assert sum(points for _, points in e.allocation) == e.points
        assert len({lot_id for lot_id, _ in e.allocation}) == len(e.allocation)
        for lot_id, points in e.allocation:
            lot = lots[lot_id]
            assert not lot.pending, (e.event_id, lot_id, "pending")
            assert lot.expires_at > moment, (e.event_id, lot_id, "expired")
            assert 0 < points <= lot.remaining, (e.event_id, lot_id, points, lot.remaining)
        redeemed += e.points
    assert redeemed >= 0
