"""The read side's answers (SPEC §6), from the tables or, as of a time or a position, from
the events themselves folded by the same `Projector` (`as_of.py`). A live balance and
tier read only the rows they show (`lot_pages.py`): a customer's history is not loaded
for them.

Every answer carries `position`: the store position it reflects (the projection's
tracking position for live answers, the store's position read for as-of answers).
Time-dependent standings (tier, segment, trust flag, LTV) are evaluated at
`max(now, the customer's clock)` for a live answer, at `as_of` for an as-of answer, and
at the folded clock for `as_of_position`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NoReturn

import orjson
from eventsourcing.persistence import ApplicationRecorder

from services.infrastructure.store import versions_of
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.clock import iso, utcnow
from services.ledger.domain.errors import UnknownCustomer
from services.ledger.domain.privacy import Keyring, Revealer
from services.ledger.domain.rules import ProgramRules
from services.ledger.domain.tiers import tier_at
from services.projections.as_of import Folded, fold_customer, liability_as_of
from services.projections.loading import load_customers, load_program
from services.projections.lot_pages import LotPage, live_balance, page_folded, window_entries
from services.projections.persistence import PROGRAM_NAME
from services.projections.runner import TOPICS, ProjectionRunner
from services.projections.source import LogReader
from services.projections.tables import ProjectionTables
from services.projections.views import answers
from services.projections.views.common import (
    parse,
)
from services.projections.views.effects import effect_of
from services.projections.views.program import ProgramView, nps_answer, rules_from

Answer = dict[str, Any]


class ProjectionBehind(Exception):
    """The projection has not reached the position asked for (or the customer's first
    event) within the wait: answer 503 with Retry-After."""

    def __init__(self, position: int, wanted: int | None, detail: str) -> None:
        super().__init__(detail)
        self.position = position
        self.wanted = wanted
        self.detail = detail


class ProjectionQueries:
    def __init__(
        self,
        recorder: ApplicationRecorder,
        tables: ProjectionTables,
        runner: ProjectionRunner,
        *,
        read_wait_seconds: float = 2.0,
        clock: Callable[[], datetime] = utcnow,
        keys: Keyring | None = None,
    ) -> None:
        self.recorder = recorder
        self.keys = keys  # the customers' keys: personal fields open with them (SPEC §11)
        self.tables = tables
        self.db = tables.db
        self.runner = runner
        self.reader = LogReader(recorder, TOPICS)
        self.read_wait_seconds = read_wait_seconds
        self.clock = clock

    # ---- freshness ------------------------------------------------------------------------------
    def wait_for(self, min_position: int | None) -> None:
        """Read-your-writes: wait (bounded) until the projection reflects `min_position`."""
        if min_position is None or min_position <= 0:
            return
        before = self.runner.position()
        if not self.runner.wait_for(min_position, self.read_wait_seconds):
            position = self.runner.position()
            hint = "retry shortly"
            if position == before:  # nothing moved them while we waited
                hint = (
                    "the projections are not running: start them with `loyalty project` "
                    "(or run them inside serve with LOYALTY_PROJECTIONS_IN_PROCESS=true)"
                )
            raise ProjectionBehind(
                position,
                min_position,
                f"the projections are at position {position}, not yet {min_position} "
                f"(waited {self.read_wait_seconds:g} s); {hint}",
            )

    # ---- one customer ---------------------------------------------------------------------------
    def customer(
        self,
        customer_id: str,
        *,
        as_of: datetime | None = None,
        as_of_position: int | None = None,
        min_position: int | None = None,
        books: bool = True,
    ) -> Folded:
        """The customer's view; without `books` (a live standing's read) no lots, holds or
        campaign credits, which a hot customer has by the thousand."""
        if as_of is not None or as_of_position is not None:
            return fold_customer(self.recorder, self.runner, customer_id, as_of, as_of_position)
        self.wait_for(min_position)
        with self.db.reading() as cur:
            position = self.tables.position(cur)
            found = load_customers(cur, self.tables, customer_ids=[customer_id], books=books)
            rules = self._rules(cur)
        if not found:
            self._unknown(customer_id, position)
        view = next(iter(found.values()))
        clock = answers.clock_of(view)
        now = self.clock()
        return Folded(view, max(now, clock) if clock else now, rules, position)

    def _unknown(self, customer_id: str, position: int) -> NoReturn:
        if versions_of(self.recorder, [CustomerAccount.create_id(customer_id)]):
            raise ProjectionBehind(
                position,
                None,
                f"customer {customer_id!r} is in the ledger but not yet in the projections "
                f"(at position {position}); retry shortly or send min_position",
            )
        raise UnknownCustomer(f"the ledger has never seen customer {customer_id!r}")

    def _rules(self, cur: Any) -> ProgramRules:
        row = cur.execute(
            f"SELECT rule_version, rules FROM {self.tables.name('program')} WHERE program = ?",
            (PROGRAM_NAME,),
        ).fetchone()
        if row is None:
            return ProgramView().rules
        return rules_from("RulesChanged", {"rules": orjson.loads(row[1]), "rule_version": row[0]})

    def balance(
        self,
        customer_id: str,
        *,
        lots: LotPage = LotPage(),
        as_of: datetime | None = None,
        as_of_position: int | None = None,
        min_position: int | None = None,
    ) -> Answer:
        """The balance with one page of its open lots (`lot_pages`). A live answer reads
        only the rows it shows; an as-of answer folds the events and pages the result."""
        if as_of is not None or as_of_position is not None:
            f = fold_customer(self.recorder, self.runner, customer_id, as_of, as_of_position)
            answer = page_folded(answers.balance_answer(f.view, f.at), f.view, lots)
            return {**answer, "position": f.position}
        self.wait_for(min_position)
        found = None
        with self.db.reading() as cur:
            position = self.tables.position(cur)
            at = self._live_moment(cur, customer_id)
            if at is not None:
                found = live_balance(cur, self.tables, customer_id, iso(at), lots)
        if found is None:
            self._unknown(customer_id, position)
        return {**found, "position": position}

    def campaigns(self, customer_id: str, **read: Any) -> Answer:
        f = self.customer(customer_id, **read)
        return {**answers.campaigns_answer(f.view), "position": f.position}

    def tier(
        self,
        customer_id: str,
        *,
        as_of: datetime | None = None,
        as_of_position: int | None = None,
        min_position: int | None = None,
    ) -> Answer:
        """The tier at the moment asked. A live answer reads only the purchases the tier
        can see (the rolling window and the grace period before it: `tier_at` looks no
        further back), as (time, net) pairs: a daily buyer's years of purchases are not
        loaded for it."""
        if as_of is not None or as_of_position is not None:
            f = fold_customer(self.recorder, self.runner, customer_id, as_of, as_of_position)
            found = answers.tier_answer(f.view, f.at, f.rules)
            position = f.position
        else:
            self.wait_for(min_position)
            with self.db.reading() as cur:
                position = self.tables.position(cur)
                at = self._live_moment(cur, customer_id)
                rules = self._rules(cur)
                if at is not None:
                    entries = window_entries(cur, self.tables, customer_id, at, rules)
            if at is None:
                self._unknown(customer_id, position)
            found = answers.tier_fields(tier_at(entries, at, rules), at, rules)
        found.pop("held_by_grace")
        return {**found, "position": position}

    def _live_moment(self, cur: Any, customer_id: str) -> datetime | None:
        """`max(now, the customer's clock)`, None for a customer the tables do not hold."""
        head = cur.execute(
            f"SELECT clock FROM {self.tables.name('customers')} WHERE customer_id = ?",
            (customer_id,),
        ).fetchone()
        if head is None:
            return None
        now = self.clock()
        return max(now, parse(head[0])) if head[0] else now

    def segment(self, customer_id: str, **read: Any) -> Answer:
        f = self.customer(customer_id, books=False, **read)
        found = answers.segment_answer(f.view, f.at)
        return {"segment": found["segment"], "why": found["why"], "position": f.position}

    def trust(self, customer_id: str, **read: Any) -> Answer:
        f = self.customer(customer_id, books=False, **read)
        return {**answers.trust_answer(f.view, f.at, f.rules), "position": f.position}

    def ltv(self, customer_id: str, **read: Any) -> Answer:
        f = self.customer(customer_id, books=False, **read)
        return {**answers.ltv_answer(f.view, f.at, f.rules), "position": f.position}

    def timeline(
        self,
        customer_id: str,
        *,
        limit: int = 50,
        after_position: int = 0,
        min_position: int | None = None,
    ) -> Answer:
        self.wait_for(min_position)
        name = self.tables.name
        with self.db.reading() as cur:
            position = self.tables.position(cur)
            known = cur.execute(
                f"SELECT 1 FROM {name('customers')} WHERE customer_id = ?", (customer_id,)
            ).fetchone()
            rows = cur.execute(
                f"SELECT position, type, event_id, occurred_at, recorded_at, available, "
                f"pending, debt, trust, held FROM {name('timeline')} "
                "WHERE customer_id = ? AND position > ? ORDER BY position LIMIT ?",
                (customer_id, after_position, limit + 1),
            ).fetchall()
        if known is None:
            self._unknown(customer_id, position)
        page = rows[:limit]
        states = self.reader.states([int(row[0]) for row in page])
        revealer = Revealer(self.keys)
        items = [
            {
                "position": int(row[0]),
                "type": row[1],
                "event_id": row[2],
                "occurred_at": row[3],
                "recorded_at": row[4],
                "effect": effect_of(
                    row[1],
                    revealer.event(row[1], orjson.loads(states[row[0]]), customer_id),
                    (row[5], row[6], row[7], row[9]),
                    row[8],
                ),
            }
            for row in page
        ]
        more = len(rows) > limit
        return {
            "customer_id": customer_id,
            "items": items,
            "next": items[-1]["position"] if more else None,
            "position": position,
        }

    # ---- program-wide ---------------------------------------------------------------------------
    def nps(
        self,
        *,
        store_id: str | None = None,
        touchpoint: str | None = None,
        from_: datetime | None = None,
        to: datetime | None = None,
        min_position: int | None = None,
    ) -> Answer:
        """NPS over the reviews matching the filters; `from` inclusive, `to` exclusive."""
        self.wait_for(min_position)
        where, params = [], []
        if store_id is not None:
            where.append("store_id = ?")
            params.append(store_id)
        if touchpoint is not None:
            where.append("touchpoint = ?")
            params.append(touchpoint)
        windowed = from_ is not None or to is not None
        if from_ is not None:
            where.append("occurred_at >= ?")
            params.append(iso(from_))
        if to is not None:
            where.append("occurred_at < ?")
            params.append(iso(to))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        if windowed:
            sql = (
                "SELECT COALESCE(SUM(CASE WHEN rating >= 9 THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN rating BETWEEN 7 AND 8 THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN rating <= 6 THEN 1 ELSE 0 END), 0) "
                f"FROM {self.tables.name('nps_responses')}{clause}"
            )
        else:
            sql = (
                "SELECT COALESCE(SUM(promoters), 0), COALESCE(SUM(passives), 0), "
                f"COALESCE(SUM(detractors), 0) FROM {self.tables.name('nps_totals')}{clause}"
            )
        with self.db.reading() as cur:
            position = self.tables.position(cur)
            row = cur.execute(sql, params).fetchone()
        promoters, passives, detractors = (int(v) for v in row or (0, 0, 0))
        return {**nps_answer(promoters, passives, detractors), "position": position}

    def liability(
        self, *, as_of: datetime | None = None, min_position: int | None = None
    ) -> Answer:
        if as_of is not None:
            return liability_as_of(self.recorder, as_of)
        self.wait_for(min_position)
        with self.db.reading() as cur:
            position = self.tables.position(cur)
            program = load_program(cur, self.tables)
        return {**program.liability_answer(), "position": position}

    # ---- the sweep's candidates -----------------------------------------------------------------
    def due_customers(self, now: datetime) -> list[str]:
        """Customers with a pending lot due to mature, an available lot due to expire or an
        open hold due to be released."""
        moment = iso(now)
        lots = self.tables.name("lots")
        holds = self.tables.name("holds")
        with self.db.reading() as cur:
            rows = cur.execute(
                f"SELECT customer_id FROM {lots} WHERE status = 'pending' AND matures_at <= ? "
                f"UNION SELECT customer_id FROM {lots} "
                "WHERE status = 'available' AND expires_at <= ? "
                f"UNION SELECT customer_id FROM {holds} "
                "WHERE status = 'open' AND expires_at <= ? ORDER BY 1",
                (moment, moment, moment),
            ).fetchall()
        return [row[0] for row in rows]
