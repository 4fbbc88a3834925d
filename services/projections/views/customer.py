"""One customer's read-side state, folded from their account's events (no I/O).

`CustomerView.apply` takes one stored event's kind and decoded fields and keeps:
- the balance (from the double-entry postings: `customer:*` and `program:*` legs);
- the lots, with the same bookkeeping as the account (used, reversed, expired);
- the purchases (net of refunds) behind tier, segment and lifetime value;
- the trust deposit (seed 000, Sewell): +1 per good job (each purchase as recorded,
  each 9-10 review), -10 per mistake (each incident, each 0-6 review), +5 once per
  incident that a goodwill grant naming it resolves within 48 h; a refund is neither;
- the clock: the latest moment among the customer's events.

The live runner also gives each view a `Watch` (`views.watch`): the standings the change
feed reports, kept at the clock event by event.
"""

from __future__ import annotations

from bisect import insort
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from services.ledger.domain.lots import AVAILABLE, DEBT, EXPIRED, HELD, ISSUED, PENDING, REDEEMED
from services.ledger.domain.rules import ProgramRules
from services.projections.views.common import Data, parse
from services.projections.views.lots import HoldRow, Lot
from services.projections.views.watch import Watch
from services.projections.views.windows import Purchase

GOOD_JOB = 1
MISTAKE = -10
RESOLVED = 5


class CustomerView:
    __slots__ = (
        "available",
        "campaigns",
        "clock",
        "customer_id",
        "d_available",
        "d_debt",
        "d_held",
        "d_pending",
        "d_trust",
        "debt",
        "dirty_campaigns",
        "dirty_holds",
        "dirty_lots",
        "dirty_purchases",
        "expired",
        "good_jobs",
        "grant_times",
        "grants",
        "held",
        "holds",
        "incidents",
        "last_position",
        "last_promoter_at",
        "lifetime_earned",
        "lots",
        "mistakes",
        "moment",
        "opened_position",
        "originator_id",
        "pending",
        "promoter_dt",
        "purchases",
        "redeemed",
        "referrals_rewarded",
        "resolved",
        "resolving",
        "restored",
        "rules",
        "stored",
        "watch",
    )

    def __init__(
        self,
        customer_id: str,
        originator_id: str,
        opened_position: int,
        watch: Watch | None = None,
    ) -> None:
        self.customer_id = customer_id
        self.originator_id = originator_id
        self.opened_position = opened_position
        self.last_position = opened_position
        self.clock: str | None = None
        self.moment: str | None = None  # the last event's moment
        self.available = self.pending = self.debt = 0
        self.held = 0  # points set aside by open checkout holds (SPEC §9)
        self.holds: dict[str, HoldRow] = {}
        self.dirty_holds: set[str] = set()
        self.lifetime_earned = self.redeemed = self.expired = 0
        # The last event's moves: available, pending and owed points, the trust deposit.
        self.d_available = self.d_pending = self.d_debt = self.d_trust = self.d_held = 0
        self.lots: dict[str, Lot] = {}
        self.purchases: dict[str, Purchase] = {}
        self.dirty_lots: set[str] = set()
        self.dirty_purchases: set[str] = set()
        # SPEC §9: per campaign, the points it gave and its stamp card's stamps (None: not
        # a stamp card).
        self.campaigns: dict[str, list[int | None]] = {}
        self.dirty_campaigns: set[str] = set()
        self.good_jobs = self.mistakes = self.restored = 0
        self.incidents: dict[str, str] = {}
        self.resolving: dict[str, list[str]] = {}
        self.resolved: set[str] = set()
        self.grants: list[str] = []  # goodwill grants' occurred_at, as recorded
        self.grant_times: list[datetime] = []  # the same, parsed and in time order
        self.last_promoter_at: str | None = None
        self.promoter_dt: datetime | None = None
        self.referrals_rewarded = 0
        self.watch = watch
        self.stored = False  # has rows in the tables (loaded, or saved once)
        # The rules of the last event folded: the customer's rows are evaluated with them,
        # so a replay and a live runner agree however their batches fall around a change.
        self.rules: ProgramRules | None = None

    # ---- derived ---------------------------------------------------------------------------
    @property
    def deposit(self) -> int:
        return GOOD_JOB * self.good_jobs + MISTAKE * self.mistakes + RESOLVED * self.restored

    def trust_status(self) -> str:
        """`new` only before any interaction (SPEC §3): a customer whose only events
        are a 7-8 review, a referral or a goodwill has interacted, and stands at 0."""
        if self.clock is None:
            return "new"
        return "forgiving" if self.deposit > 0 else "at_risk"

    def spend_entries(self) -> list[tuple[datetime, Decimal]]:
        return [(p.when, p.net) for p in self.purchases.values()]

    # ---- the fold ----------------------------------------------------------------------------
    def apply(self, position: int, kind: str, data: Data, rules: ProgramRules) -> None:
        earlier = self.clock
        self.rules = rules
        # moment_of(), inline: this is the hot path of a replay
        if kind == "GoodwillGranted":
            moment = data["granted_at"]
        else:
            moment = data.get("occurred_at") or data.get("decided_at")
        self.moment = moment
        if moment is not None and (earlier is None or moment > earlier):
            self.clock = moment
        if self.watch is not None:
            self.watch.advance(self, earlier, rules)
        available = pending = debt = held = 0
        for account, delta in data.get("postings") or ():
            if account == AVAILABLE:
                available += delta
            elif account == PENDING:
                pending += delta
            elif account == DEBT:
                debt -= delta
            elif account == ISSUED:
                self.lifetime_earned -= delta
            elif account == REDEEMED:
                self.redeemed += delta
            elif account == EXPIRED:
                self.expired += delta
            elif account == HELD:
                held += delta
        self.held += held
        self.d_held = held
        self.available += available
        self.pending += pending
        self.debt += debt
        self.d_available, self.d_pending, self.d_debt = available, pending, debt
        self.d_trust = 0
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, data, rules)
        self.last_position = position

    def _on_PurchaseRecorded(self, d: Data, rules: ProgramRules) -> None:
        event_id = d["event_id"]
        self.lots[event_id] = Lot(
            event_id,
            "purchase",
            d["points"],
            True,
            d["occurred_at"],
            d["matures_at"],
            d["expires_at"],
            d["rule_version"],
        )
        purchase = Purchase(event_id, d["occurred_at"], d.get("store_id"), Decimal(d["amount"]))
        self.purchases[event_id] = purchase
        if self.watch is not None:
            self.watch.purchased(purchase)
        self.dirty_lots.add(event_id)
        self.dirty_purchases.add(event_id)
        self.good_jobs += 1
        self.d_trust = GOOD_JOB

    def _on_CampaignPointsGranted(self, d: Data, rules: ProgramRules) -> None:
        # SPEC §9: the campaigns' points are part of the purchase's lot.
        lot = self.lots.get(d["lot_id"])
        if lot is not None and d["points"]:
            lot.points += d["points"]
            self.dirty_lots.add(lot.lot_id)
        for grant in d["campaigns"]:
            cid = grant["campaign_id"]
            credit = self.campaigns.setdefault(cid, [0, None])
            credit[0] = int(credit[0] or 0) + grant["points"]
            if "stamps" in grant:
                credit[1] = grant["stamps"]
            self.dirty_campaigns.add(cid)

    def _on_RefundRecorded(self, d: Data, rules: ProgramRules) -> None:
        purchase = self.purchases.get(d["original_event_id"])
        if purchase is not None:
            amount = Decimal(d["amount"])
            if self.watch is not None:
                self.watch.refunded(purchase, amount)
            else:
                purchase.refunded += amount
            self.dirty_purchases.add(purchase.event_id)
        for lot_id, how, points in d["takes"]:
            lot = self.lots.get(lot_id)
            if lot is None:  # an as-of fold can lack a lot recorded later by occurred_at
                continue
            if how == "clawback":
                lot.used += points
            elif how == "expired":
                lot.expired -= points
                lot.reversed += points
            else:
                lot.reversed += points
            self.dirty_lots.add(lot_id)

    def _on_ReferralRewarded(self, d: Data, rules: ProgramRules) -> None:
        self.referrals_rewarded += 1
        self._add_available_lot(d["lot_id"], "referral", d, d["occurred_at"])

    def _on_ReviewRecorded(self, d: Data, rules: ProgramRules) -> None:
        if d["points"]:
            self._add_available_lot(d["event_id"], "review", d, d["occurred_at"])
        rating = d["rating"]
        if rating >= 9:
            self.good_jobs += 1
            self.d_trust = GOOD_JOB
            if self.last_promoter_at is None or d["occurred_at"] > self.last_promoter_at:
                self.last_promoter_at = d["occurred_at"]
                self.promoter_dt = parse(d["occurred_at"])
        elif rating <= 6:
            self.mistakes += 1
            self.d_trust = MISTAKE

    def _on_GoodwillGranted(self, d: Data, rules: ProgramRules) -> None:
        self.grants.append(d["occurred_at"])
        insort(self.grant_times, parse(d["occurred_at"]))
        self._add_available_lot(d["event_id"], "goodwill", d, d["granted_at"])
        incident_id = d.get("incident_id")
        if incident_id is None or incident_id in self.resolved:
            return
        incident_at = self.incidents.get(incident_id)
        if incident_at is None:  # the incident may be recorded later (out of order)
            self.resolving.setdefault(incident_id, []).append(d["granted_at"])
        elif _resolves(incident_at, d["granted_at"], rules):
            self.restored += 1
            self.resolved.add(incident_id)
            self.d_trust = RESOLVED

    def _on_IncidentReported(self, d: Data, rules: ProgramRules) -> None:
        event_id = d["event_id"]
        self.mistakes += 1
        self.d_trust = MISTAKE
        self.incidents[event_id] = d["occurred_at"]
        granted = self.resolving.pop(event_id, None)
        if granted and any(_resolves(d["occurred_at"], g, rules) for g in granted):
            self.restored += 1
            self.resolved.add(event_id)
            self.d_trust += RESOLVED

    def _on_PointsRedeemed(self, d: Data, rules: ProgramRules) -> None:
        self._use(d["allocation"], 1)

    def _on_RedemptionCancelled(self, d: Data, rules: ProgramRules) -> None:
        self._use(d["allocation"], -1)
        expired = d.get("expired") or ()  # version 2: back to expired lots as expired
        for lot_id, points in expired:
            lot = self.lots.get(str(lot_id))
            if lot is not None:
                lot.expired += int(points)
                self.dirty_lots.add(lot.lot_id)
        gone = {str(lot_id) for lot_id, _ in expired}
        live = [lot_id for lot_id, _ in d["allocation"] if str(lot_id) not in gone]
        self._repay_debt_from_lots(d["debt_repaid"], live)

    def _on_PointsMatured(self, d: Data, rules: ProgramRules) -> None:
        lot = self.lots.get(d["lot_id"])
        if lot is not None:
            lot.pending = False
            self.dirty_lots.add(lot.lot_id)
            self._repay_debt_from_lots(d["debt_repaid"], [lot.lot_id])

    def _on_PointsExpired(self, d: Data, rules: ProgramRules) -> None:
        lot = self.lots.get(d["lot_id"])
        if lot is not None:
            lot.expired += d["points"]
            self.dirty_lots.add(lot.lot_id)

    def _on_PointsAdjusted(self, d: Data, rules: ProgramRules) -> None:
        if d["points"] >= 0:
            self._add_available_lot(f"adj:{d['adjustment_id']}", "adjustment", d, d["occurred_at"])
        else:
            self._use(d["allocation"], 1)

    def _on_CustomerEnrolled(self, d: Data, rules: ProgramRules) -> None:
        self._add_available_lot(d["event_id"], "welcome", d, d["occurred_at"])

    def _on_OpeningBalanceImported(self, d: Data, rules: ProgramRules) -> None:
        self._add_available_lot(f"import/{d['import_id']}", "import", d, d["occurred_at"])

    def _on_PointsDonated(self, d: Data, rules: ProgramRules) -> None:
        self._use(d["allocation"], 1)

    def _on_PointsHeld(self, d: Data, rules: ProgramRules) -> None:
        self._use(d["allocation"], 1)
        hold_id = d["event_id"]
        self.holds[hold_id] = HoldRow(
            hold_id, d["points"], d["reward_id"], d["occurred_at"], d["expires_at"], "open", 0
        )
        self.dirty_holds.add(hold_id)

    def _on_HoldCaptured(self, d: Data, rules: ProgramRules) -> None:
        self._use(d["released_allocation"], -1)
        allocation = d["released_allocation"]
        self._repay_debt_from_lots(d["debt_repaid"], [lot_id for lot_id, _ in allocation])
        self._close_hold(d["original_event_id"], "captured", d["points"])

    def _on_HoldReleased(self, d: Data, rules: ProgramRules) -> None:
        self._use(d["allocation"], -1)
        self._repay_debt_from_lots(d["debt_repaid"], [lot_id for lot_id, _ in d["allocation"]])
        self._close_hold(d["original_event_id"], d["reason"], 0)

    def _close_hold(self, hold_id: str, status: str, captured: int) -> None:
        hold = self.holds.get(hold_id)
        if hold is not None:  # an as-of fold can lack a hold recorded later
            hold.status, hold.captured = status, captured
            self.dirty_holds.add(hold_id)

    # ---- the account's lot bookkeeping, mirrored ------------------------------------------
    def _add_available_lot(self, lot_id: str, source: str, d: Data, earned_at: str) -> None:
        if not d["points"]:
            return
        self.lots[lot_id] = Lot(
            lot_id, source, d["points"], False, earned_at, None, d["expires_at"], d["rule_version"]
        )
        self.dirty_lots.add(lot_id)
        self._repay_debt_from_lots(d["debt_repaid"], [lot_id])

    def _use(self, allocation: list[list[Any]], sign: int) -> None:
        for lot_id, points in allocation:
            lot = self.lots.get(lot_id)
            if lot is not None:
                lot.used += sign * points
                self.dirty_lots.add(lot_id)

    def _repay_debt_from_lots(self, repaid: int, lot_ids: list[str]) -> None:
        left = repaid
        for lot_id in lot_ids:
            lot = self.lots.get(lot_id)
            if lot is None or not left:
                continue
            take = min(left, max(lot.remaining, 0))
            lot.used += take
            left -= take
            self.dirty_lots.add(lot_id)


def _resolves(incident_at: str, granted_at: str, rules: ProgramRules) -> bool:
    """SPEC §4: a goodwill grant resolves an incident if granted within 48 h of it."""
    delta = parse(granted_at) - parse(incident_at)
    return timedelta(0) <= delta <= timedelta(hours=rules.incident_resolution_hours)


_HANDLERS = {
    name[len("_on_") :]: method
    for name, method in vars(CustomerView).items()
    if name.startswith("_on_") and callable(method)
}
# Events that change nothing the views keep beyond the balance, the clock and the timeline.
PASSIVE_EVENTS = frozenset(
    {
        "Opened",
        "ReferralRegistered",
        "ReferralMade",
        "GoodwillRequested",
        "GoodwillRejected",
        "AdjustmentRequested",
        "AdjustmentRejected",
        "ErasureRequested",  # erasure (SPEC §11): the timeline and the change feed say so
        "ErasureRejected",
        "CustomerErased",
        "FollowUpParked",  # SPEC §8: waits for its original; moves no points
        "FollowUpReleased",
    }
)
HANDLED_EVENTS = frozenset(_HANDLERS) | PASSIVE_EVENTS
