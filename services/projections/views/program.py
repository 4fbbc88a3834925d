"""Program-wide views (no I/O): the rules in force, NPS and the program's liability.

- rules: `Program.Started` / `RulesChanged` events, so a replay evaluates tiers with the
  rules the ledger had at that position, not with today's file.
- NPS (seed 003): promoters 9-10, passives 7-8, detractors 0-6, NPS = %promoters -
  %detractors; counted per (store, touchpoint), so overall and per-store answers are sums.
  Time windows are answered from the responses themselves (one row per review).
- liability: outstanding points = pending + available + held - debt over all customers
  (the customer legs of every posting), goodwill points granted per month, and points
  donated per charity and month (the `charity:<id>` legs, SPEC §9).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from services.ledger.domain.lots import HELD
from services.ledger.domain.rules import ProgramRules
from services.projections.views.common import Data

PROMOTER, PASSIVE, DETRACTOR = 0, 1, 2
HOLD_EVENTS = frozenset({"PointsHeld", "HoldCaptured", "HoldReleased"})


def nps_class(rating: int) -> int:
    if rating >= 9:
        return PROMOTER
    return PASSIVE if rating >= 7 else DETRACTOR


def nps_score(promoters: int, passives: int, detractors: int) -> float | None:
    """%promoters - %detractors, to one decimal; None without any response."""
    responses = promoters + passives + detractors
    if not responses:
        return None
    score = Decimal(100 * (promoters - detractors)) / Decimal(responses)
    return float(score.quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN))


def nps_answer(promoters: int, passives: int, detractors: int) -> dict[str, Any]:
    return {
        "nps": nps_score(promoters, passives, detractors),
        "promoters": promoters,
        "passives": passives,
        "detractors": detractors,
        "responses": promoters + passives + detractors,
    }


def rules_from(kind: str, data: Data) -> ProgramRules:
    version = 1 if kind == "Started" else int(data["rule_version"])
    return ProgramRules.from_document(data["rules"], version=version)


@dataclass
class ProgramView:
    rules: ProgramRules = field(default_factory=lambda: ProgramRules().with_version(1))
    rules_document: dict[str, Any] | None = None
    pending: int = 0
    available: int = 0
    debt: int = 0
    held: int = 0  # points set aside by open checkout holds: still the customers'
    customers: int = 0
    # (charity_id, "YYYY-MM") -> [points, donations] (SPEC §9)
    donations: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    dirty_donations: set[tuple[str, str]] = field(default_factory=set)
    # (store_id or "", touchpoint) -> [promoters, passives, detractors]
    nps: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    # "YYYY-MM" -> [points, grants]
    goodwill: dict[str, list[int]] = field(default_factory=dict)
    dirty_nps: set[tuple[str, str]] = field(default_factory=set)
    dirty_goodwill: set[str] = field(default_factory=set)
    rules_changed: bool = False
    stored: set[str] = field(default_factory=set)  # the rows the tables already hold

    @property
    def outstanding(self) -> int:
        return self.pending + self.available + self.held - self.debt

    def apply_program(self, kind: str, data: Data) -> None:
        self.rules = rules_from(kind, data)
        self.rules_document = data["rules"]
        self.rules_changed = True

    def apply_account(self, kind: str, data: Data, available: int, pending: int, debt: int) -> None:
        """The program-wide share of one account event (and its moves on the customer's
        available, pending and owed points)."""
        self.available += available
        self.pending += pending
        self.debt += debt
        if kind == "ReviewRecorded":
            key = (data.get("store_id") or "", data["touchpoint"])
            counts = self.nps.get(key)
            if counts is None:
                counts = self.nps[key] = [0, 0, 0]
            counts[nps_class(data["rating"])] += 1
            self.dirty_nps.add(key)
        elif kind == "GoodwillGranted":
            month = data["granted_at"][:7]
            totals = self.goodwill.get(month)
            if totals is None:
                totals = self.goodwill[month] = [0, 0]
            totals[0] += data["points"]
            totals[1] += 1
            self.dirty_goodwill.add(month)
        elif kind == "Opened":
            self.customers += 1
        elif kind in HOLD_EVENTS:
            self.held += sum(int(p) for a, p in data["postings"] if a == HELD)
        elif kind == "PointsDonated":
            key = (data["charity_id"], data["occurred_at"][:7])
            given = self.donations.get(key)
            if given is None:
                given = self.donations[key] = [0, 0]
            given[0] += data["points"]
            given[1] += 1
            self.dirty_donations.add(key)

    @classmethod
    def summed(cls, shares: Sequence[ProgramView]) -> ProgramView:
        """The view of a log folded in shares of accounts (a parallel rebuild). Every share
        folded every program event, so their rules agree; the rest are sums."""
        first = shares[0]
        total = cls(
            rules=first.rules,
            rules_document=first.rules_document,
            rules_changed=any(share.rules_changed for share in shares),
        )
        for share in shares:
            total.pending += share.pending
            total.available += share.available
            total.debt += share.debt
            total.held += share.held
            total.customers += share.customers
            for key, given in share.donations.items():
                mine = total.donations.setdefault(key, [0, 0])
                mine[0] += given[0]
                mine[1] += given[1]
            total.dirty_donations |= share.dirty_donations
            for key, counts in share.nps.items():
                mine = total.nps.setdefault(key, [0, 0, 0])
                for index, count in enumerate(counts):
                    mine[index] += count
            for month, totals in share.goodwill.items():
                mine = total.goodwill.setdefault(month, [0, 0])
                mine[0] += totals[0]
                mine[1] += totals[1]
            total.dirty_nps |= share.dirty_nps
            total.dirty_goodwill |= share.dirty_goodwill
        return total

    def liability_answer(self) -> dict[str, Any]:
        return {
            "outstanding_points": self.outstanding,
            "pending": self.pending,
            "available": self.available,
            "debt": self.debt,
            "held": self.held,
            "goodwill_points_by_month": {
                month: totals[0] for month, totals in sorted(self.goodwill.items())
            },
            "donated_points_by_charity": self.donated_by_charity(),
        }

    def donated_by_charity(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for (charity_id, _), (points, _) in sorted(self.donations.items()):
            found[charity_id] = found.get(charity_id, 0) + points
        return found

    def donated_by_month(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for (_, month), (points, _) in sorted(self.donations.items(), key=lambda i: i[0][1]):
            found[month] = found.get(month, 0) + points
        return found

    def clean(self) -> None:
        self.dirty_nps.clear()
        self.dirty_goodwill.clear()
        self.dirty_donations.clear()
        self.rules_changed = False
