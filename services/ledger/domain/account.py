"""The customer account: one aggregate per customer, the unit of consistency of the ledger.

Commands read like the business (`record_purchase`, `redeem`), check their rules first
(each `check_...` raises a named error from `errors`), and only then trigger one past-tense
event. Every event carries what its `apply` needs (points, allocations, postings), so a
replay never consults the rules again: the rules in force are recorded, not re-derived.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from functools import cache, lru_cache
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from services.ledger.domain import errors
from services.ledger.domain.clock import add_months, days, iso, parse_ts
from services.ledger.domain.lots import (
    ADJUSTMENT_LOT,
    AVAILABLE,
    DEBT,
    EXPIRED,
    ISSUED,
    PENDING,
    REDEEMED,
    REFERRAL_LOT,
    Allocation,
    Lot,
    Postings,
    allocate,
    move,
)
from services.ledger.domain.rules import ProgramRules
from services.ledger.domain.tiers import tier_at

Effect = dict[str, Any]


@cache
def _handler_name(event_class: type) -> str:
    return "on_" + re.sub(r"(?<!^)(?=[A-Z])", "_", event_class.__name__).lower()


def event_fields(e: Any) -> dict[str, Any]:
    """The business fields of a stored event (no originator id, version or timestamp)."""
    skip = {"originator_id", "originator_version", "timestamp"}
    return {k: v for k, v in vars(e).items() if k not in skip}


def floor_points(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


@dataclass(slots=True)
class Purchase:
    event_id: str
    occurred_at: datetime
    amount: Decimal
    lot_id: str
    points: int
    refunded: Decimal = Decimal("0")
    points_reversed: int = 0


@dataclass(slots=True)
class Redemption:
    points: int
    allocation: Allocation
    cancelled: bool = False


@dataclass(slots=True)
class Request:
    """A goodwill grant or manual adjustment waiting for a second person (maker-checker)."""

    kind: str
    requested_by: str
    points: int
    details: dict[str, Any] = field(default_factory=dict)


class CustomerAccount(Aggregate):
    # ---- events -------------------------------------------------------------------
    class Event(Aggregate.Event):
        """Applies itself through the account's `on_<event_name>` handler."""

        def apply(self, aggregate: Any) -> None:
            getattr(aggregate, _handler_name(type(self)))(self)

    class Opened(Aggregate.Created):
        customer_id: str

    class PurchaseRecorded(Event):
        event_id: str
        occurred_at: str
        store_id: str | None
        receipt_id: str
        amount: str
        currency: str
        points: int
        tier: str
        multiplier: str
        rule_version: int
        matures_at: str
        expires_at: str
        postings: Postings

    class RefundRecorded(Event):
        event_id: str
        occurred_at: str
        store_id: str | None
        original_event_id: str
        amount: str
        currency: str
        points_reversed: int
        takes: list[list[Any]]
        debt_added: int
        rule_version: int
        postings: Postings

    class ReferralRegistered(Event):
        event_id: str
        occurred_at: str
        store_id: str | None
        referrer_id: str

    class ReferralMade(Event):
        event_id: str
        occurred_at: str
        referee_id: str

    class ReferralRewarded(Event):
        lot_id: str
        occurred_at: str
        referee_id: str
        points: int
        expires_at: str
        debt_repaid: int
        rule_version: int
        postings: Postings

    class ReviewRecorded(Event):
        event_id: str
        occurred_at: str
        store_id: str | None
        rating: int
        touchpoint: str
        comment: str | None
        receipt_id: str | None
        points: int
        expires_at: str
        no_reward_reason: str | None
        debt_repaid: int
        rule_version: int
        postings: Postings

    class GoodwillRequested(Event):
        event_id: str
        occurred_at: str
        store_id: str | None
        points: int
        amount: str | None
        currency: str | None
        reason_code: str
        incident_id: str | None
        issued_by: str
        waits_because: str

    class GoodwillGranted(Event):
        event_id: str
        occurred_at: str
        granted_at: str
        store_id: str | None
        points: int
        amount: str | None
        currency: str | None
        reason_code: str
        incident_id: str | None
        issued_by: str
        approved_by: str | None
        expires_at: str
        debt_repaid: int
        rule_version: int
        postings: Postings

    class GoodwillRejected(Event):
        event_id: str
        decided_at: str
        rejected_by: str
        note: str | None

    class IncidentReported(Event):
        event_id: str
        occurred_at: str
        store_id: str | None
        severity: str
        description: str

    class PointsRedeemed(Event):
        event_id: str
        occurred_at: str
        store_id: str | None
        points: int
        reward_id: str
        allocation: Allocation
        postings: Postings

    class RedemptionCancelled(Event):
        event_id: str
        occurred_at: str
        store_id: str | None
        original_event_id: str
        points: int
        allocation: Allocation
        debt_repaid: int
        postings: Postings

    class PointsMatured(Event):
        lot_id: str
        occurred_at: str
        points: int
        debt_repaid: int
        referral_reward_to: str | None
        postings: Postings

    class PointsExpired(Event):
        lot_id: str
        occurred_at: str
        points: int
        postings: Postings

    class AdjustmentRequested(Event):
        adjustment_id: str
        occurred_at: str
        points: int
        reason: str
        requested_by: str
        requested_with_key: str | None  # the API key's id: approval needs another key

    class PointsAdjusted(Event):
        adjustment_id: str
        occurred_at: str
        points: int
        reason: str
        requested_by: str
        approved_by: str | None
        allocation: Allocation
        debt_added: int
        debt_repaid: int
        expires_at: str | None
        rule_version: int
        postings: Postings

    class AdjustmentRejected(Event):
        adjustment_id: str
        decided_at: str
        rejected_by: str
        note: str | None

    # ---- identity and state ---------------------------------------------------------
    @staticmethod
    @lru_cache(maxsize=65536)
    def create_id(customer_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"loyalty-ledger:customer:{customer_id}")

    @event(Opened)
    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self.lots: dict[str, Lot] = {}
        self.debt = 0
        self.purchases: dict[str, Purchase] = {}
        self.receipts: set[str] = set()
        self.redemptions: dict[str, Redemption] = {}
        self.referred_by: str | None = None
        self.referral_rewarded = False
        self.referrals_made: list[datetime] = []
        self.goodwill_grants: list[datetime] = []
        self.requests: dict[str, Request] = {}
        self.reviews_rewarded = 0
        self.adjustment_ids: set[str] = set()

    def on_opened(self, e: Any) -> None:
        """The state is set up by `__init__`; nothing else to apply."""

    # ---- queries ---------------------------------------------------------------------
    @property
    def available(self) -> int:
        return sum(lot.remaining for lot in self.lots.values() if not lot.pending)

    @property
    def pending(self) -> int:
        return sum(lot.remaining for lot in self.lots.values() if lot.pending)

    def spend_entries(self) -> list[tuple[datetime, Decimal]]:
        return [(p.occurred_at, p.amount - p.refunded) for p in self.purchases.values()]

    def has_adjustment(self, adjustment_id: str) -> bool:
        return adjustment_id in self.adjustment_ids

    def is_trust_tester(self, moment: datetime, rules: ProgramRules) -> bool:
        """SPEC §3: more than N goodwill grants in the window flags the customer."""
        since = moment - days(rules.trust_tester_window_days)
        recent = sum(1 for granted in self.goodwill_grants if since < granted <= moment)
        return recent > rules.trust_tester_grants

    # ---- checks -----------------------------------------------------------------------
    @staticmethod
    def check_currency(currency: str, rules: ProgramRules, field: str) -> None:
        if currency != rules.currency:
            raise errors.CurrencyMismatch(
                f"the program runs in {rules.currency}; this event is in {currency} "
                "(no conversion is made)",
                field=field,
            )

    def check_new_receipt(self, receipt_id: str) -> None:
        if receipt_id in self.receipts:
            raise errors.DuplicateReceipt(
                f"receipt {receipt_id!r} is already recorded for customer {self.customer_id!r}",
                field="receipt_id",
            )

    def check_known_purchase(self, original_event_id: str) -> Purchase:
        purchase = self.purchases.get(original_event_id)
        if purchase is None:
            raise errors.UnknownOriginalEvent(
                f"no purchase {original_event_id!r} for customer {self.customer_id!r}",
                field="original_event_id",
            )
        return purchase

    @staticmethod
    def check_refund_within_purchase(purchase: Purchase, amount: Decimal) -> None:
        if purchase.refunded + amount > purchase.amount:
            left = purchase.amount - purchase.refunded
            raise errors.RefundExceedsPurchase(
                f"purchase {purchase.event_id!r} was {purchase.amount}; {left} is left to refund, "
                f"not {amount}",
                field="amount.value",
            )

    def check_enough_points(self, points: int, moment: datetime) -> None:
        spendable = sum(lot.spendable_at(moment) for lot in self.lots.values())
        if points > spendable:
            raise errors.InsufficientPoints(
                f"{points} points requested, {spendable} available", field="points"
            )

    def check_cancellable(self, original_event_id: str) -> Redemption:
        redemption = self.redemptions.get(original_event_id)
        if redemption is None:
            raise errors.UnknownOriginalEvent(
                f"no redemption {original_event_id!r} for customer {self.customer_id!r}",
                field="original_event_id",
            )
        if redemption.cancelled:
            raise errors.RedemptionAlreadyCancelled(
                f"redemption {original_event_id!r} was already cancelled",
                field="original_event_id",
            )
        return redemption

    def check_waiting(self, request_id: str, kind: str) -> Request:
        request = self.requests.get(request_id)
        if request is None or request.kind != kind:
            raise errors.NotPending(f"no {kind} {request_id!r} is waiting for a decision")
        return request

    @staticmethod
    def check_second_person(request: Request, approver: str, approver_key: str | None) -> None:
        """Maker-checker: another name AND, where the request was made with an API key,
        another key (a name is only typed; the key is authenticated)."""
        if approver == request.requested_by:
            raise errors.MakerChecker(
                f"{approver!r} requested this; a different person must approve it",
                field="approved_by",
            )
        requester_key = request.details.get("requested_with_key")
        if requester_key is not None and approver_key == requester_key:
            raise errors.MakerChecker(
                "this was requested with the same API key; approve it with another admin's key"
            )

    # ---- commands: purchases and refunds ------------------------------------------------
    def record_purchase(
        self,
        *,
        event_id: str,
        occurred_at: datetime,
        store_id: str | None,
        receipt_id: str,
        amount: Decimal,
        currency: str,
        rules: ProgramRules,
    ) -> Effect:
        self.check_currency(currency, rules, "amount.currency")
        self.check_new_receipt(receipt_id)
        standing = tier_at(self.spend_entries(), occurred_at, rules)
        points = floor_points(amount * rules.earn_rate * standing.step.multiplier)
        postings: Postings = []
        move(postings, ISSUED, PENDING, points)
        matures_at = iso(occurred_at + days(rules.return_window_days))
        expires_at = iso(add_months(occurred_at, rules.lot_expiry_months))
        multiplier = str(standing.step.multiplier)
        self.trigger_event(
            self.PurchaseRecorded,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            store_id=store_id,
            receipt_id=receipt_id,
            amount=str(amount),
            currency=currency,
            points=points,
            tier=standing.step.name,
            multiplier=multiplier,
            rule_version=rules.version,
            matures_at=matures_at,
            expires_at=expires_at,
            postings=postings,
        )
        return {
            "points": points,
            "status": "pending",
            "lot_id": event_id,
            "matures_at": matures_at,
            "expires_at": expires_at,
            "tier": standing.step.name,
            "multiplier": multiplier,
            "rule_version": rules.version,
        }

    def on_purchase_recorded(self, e: Any) -> None:
        occurred_at = parse_ts(e.occurred_at)
        self.purchases[e.event_id] = Purchase(
            event_id=e.event_id,
            occurred_at=occurred_at,
            amount=Decimal(e.amount),
            lot_id=e.event_id,
            points=e.points,
        )
        self.receipts.add(e.receipt_id)
        self.lots[e.event_id] = Lot(
            lot_id=e.event_id,
            source="purchase",
            points=e.points,
            pending=True,
            earned_at=occurred_at,
            matures_at=parse_ts(e.matures_at),
            expires_at=parse_ts(e.expires_at),
            rule_version=e.rule_version,
        )

    def record_refund(
        self,
        *,
        event_id: str,
        occurred_at: datetime,
        store_id: str | None,
        original_event_id: str,
        amount: Decimal,
        currency: str,
        rules: ProgramRules,
    ) -> Effect:
        self.check_currency(currency, rules, "amount.currency")
        purchase = self.check_known_purchase(original_event_id)
        self.check_refund_within_purchase(purchase, amount)
        lot = self.lots[purchase.lot_id]
        # Proportional to what the original lot earned, under the rules that granted it;
        # computed on the cumulative refund so that a full refund reverses exactly all.
        target = floor_points(Decimal(lot.points) * (purchase.refunded + amount) / purchase.amount)
        to_reverse = target - purchase.points_reversed
        postings: Postings = []
        takes: list[list[Any]] = []
        # 1. what the lot still holds (pending first: a lot is pending or available).
        from_lot = min(to_reverse, max(lot.remaining, 0))
        if from_lot:
            kind = "pending" if lot.pending else "available"
            takes.append([lot.lot_id, kind, from_lot])
            move(postings, PENDING if lot.pending else AVAILABLE, ISSUED, from_lot)
        # 2. what expired from the lot: the customer never had it, so it is not debt.
        from_expired = min(to_reverse - from_lot, lot.expired)
        if from_expired:
            takes.append([lot.lot_id, "expired", from_expired])
            move(postings, EXPIRED, ISSUED, from_expired)
        # 3. what was already spent: clawed back from other available lots, then debt.
        shortfall = to_reverse - from_lot - from_expired
        # (The refunded lot itself is excluded: its own points were taken in step 1.)
        clawback, debt = allocate(self.lots, shortfall, occurred_at, exclude=lot.lot_id)
        for lot_id, points in clawback:
            takes.append([lot_id, "clawback", points])
            move(postings, AVAILABLE, ISSUED, int(points))
        move(postings, DEBT, ISSUED, debt)
        self.trigger_event(
            self.RefundRecorded,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            store_id=store_id,
            original_event_id=original_event_id,
            amount=str(amount),
            currency=currency,
            points_reversed=to_reverse,
            takes=takes,
            debt_added=debt,
            rule_version=lot.rule_version,
            postings=postings,
        )
        return {
            "points_reversed": to_reverse,
            "takes": takes,
            "debt_added": debt,
            "rule_version": lot.rule_version,
            "refunded_total": str(purchase.refunded),
        }

    def on_refund_recorded(self, e: Any) -> None:
        purchase = self.purchases[e.original_event_id]
        purchase.refunded += Decimal(e.amount)
        purchase.points_reversed += e.points_reversed
        for lot_id, kind, points in e.takes:
            lot = self.lots[lot_id]
            if kind == "clawback":
                lot.used += points
            elif kind == "expired":
                lot.expired -= points
                lot.reversed += points
            else:
                lot.reversed += points
        self.debt += e.debt_added

    # ---- commands: referrals --------------------------------------------------------------
    def check_referral(
        self, referrer: CustomerAccount, moment: datetime, rules: ProgramRules
    ) -> None:
        if referrer.customer_id == self.customer_id:
            raise errors.SelfReferral("a customer cannot refer themselves", field="referrer_id")
        if self.referred_by is not None:
            raise errors.AlreadyReferred(
                f"customer {self.customer_id!r} was already referred by {self.referred_by!r}",
                field="customer_id",
            )
        if self.purchases:
            raise errors.RefereeNotNew(
                f"customer {self.customer_id!r} has already purchased; a referral is for new "
                "customers",
                field="customer_id",
            )
        since = moment - days(rules.referral_cap_period_days)
        recent = sum(1 for made in referrer.referrals_made if since < made <= moment)
        if recent >= rules.referral_cap_per_period:
            raise errors.ReferralCapReached(
                f"{referrer.customer_id!r} already referred {recent} customers in the last "
                f"{rules.referral_cap_period_days} days (cap {rules.referral_cap_per_period})",
                field="referrer_id",
            )

    def record_referral(
        self,
        *,
        referrer: CustomerAccount,
        event_id: str,
        occurred_at: datetime,
        store_id: str | None,
        rules: ProgramRules,
    ) -> Effect:
        """The referee (self) names a referrer; both accounts record it."""
        self.check_referral(referrer, occurred_at, rules)
        self.trigger_event(
            self.ReferralRegistered,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            store_id=store_id,
            referrer_id=referrer.customer_id,
        )
        referrer.trigger_event(
            referrer.ReferralMade,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            referee_id=self.customer_id,
        )
        return {
            "referrer_id": referrer.customer_id,
            "reward_points": rules.referral_reward_points,
            "reward_status": "waiting for the referee's first purchase to mature",
        }

    def on_referral_registered(self, e: Any) -> None:
        self.referred_by = e.referrer_id

    def on_referral_made(self, e: Any) -> None:
        self.referrals_made.append(parse_ts(e.occurred_at))

    def reward_referral(
        self, *, referee_id: str, occurred_at: datetime, rules: ProgramRules
    ) -> Effect:
        points = rules.referral_reward_points
        lot_id = REFERRAL_LOT.format(referee_id=referee_id)
        expires_at = add_months(occurred_at, rules.lot_expiry_months)
        postings, repaid = self._credit_available_postings(points)
        self.trigger_event(
            self.ReferralRewarded,
            lot_id=lot_id,
            occurred_at=iso(occurred_at),
            referee_id=referee_id,
            points=points,
            expires_at=iso(expires_at),
            debt_repaid=repaid,
            rule_version=rules.version,
            postings=postings,
        )
        return {"lot_id": lot_id, "points": points, "debt_repaid": repaid}

    def on_referral_rewarded(self, e: Any) -> None:
        self._add_available_lot(
            e.lot_id,
            "referral",
            e.points,
            e.occurred_at,
            e.expires_at,
            e.rule_version,
            e.debt_repaid,
        )

    # ---- commands: reviews, goodwill, incidents -----------------------------------------
    def record_review(
        self,
        *,
        event_id: str,
        occurred_at: datetime,
        store_id: str | None,
        rating: int,
        touchpoint: str,
        comment: str | None,
        receipt_id: str | None,
        rules: ProgramRules,
    ) -> Effect:
        # SPEC §3: at most one rewarded review per purchase.
        rewardable = self.reviews_rewarded < len(self.purchases)
        points = rules.review_reward_points if rewardable else 0
        reason = None if rewardable else "one rewarded review per purchase: none left"
        postings, repaid = self._credit_available_postings(points)
        expires_at = add_months(occurred_at, rules.lot_expiry_months)
        self.trigger_event(
            self.ReviewRecorded,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            store_id=store_id,
            rating=rating,
            touchpoint=touchpoint,
            comment=comment,
            receipt_id=receipt_id,
            points=points,
            expires_at=iso(expires_at),
            no_reward_reason=reason,
            debt_repaid=repaid,
            rule_version=rules.version,
            postings=postings,
        )
        return {"points": points, "no_reward_reason": reason, "rule_version": rules.version}

    def on_review_recorded(self, e: Any) -> None:
        if e.points:
            self.reviews_rewarded += 1
            self._add_available_lot(
                e.event_id,
                "review",
                e.points,
                e.occurred_at,
                e.expires_at,
                e.rule_version,
                e.debt_repaid,
            )

    def record_goodwill(
        self,
        *,
        event_id: str,
        occurred_at: datetime,
        store_id: str | None,
        points: int | None,
        amount: Decimal | None,
        currency: str | None,
        reason_code: str,
        incident_id: str | None,
        issued_by: str,
        rules: ProgramRules,
    ) -> Effect:
        if amount is not None:
            self.check_currency(currency or "", rules, "amount.currency")
            points = floor_points(amount * rules.goodwill_points_per_unit)
        assert points is not None
        # SPEC §3, seed 000: small money is granted at once, no questions asked ...
        small = points <= rules.small_money_points and (
            amount is None or amount <= rules.small_money_amount
        )
        # ... unless the customer regularly tests the ledger's trust.
        tester = self.is_trust_tester(occurred_at, rules)
        details = {
            "event_id": event_id,
            "occurred_at": iso(occurred_at),
            "store_id": store_id,
            "points": points,
            "amount": None if amount is None else str(amount),
            "currency": currency if amount is not None else None,
            "reason_code": reason_code,
            "incident_id": incident_id,
            "issued_by": issued_by,
        }
        if small and not tester:
            return self._grant_goodwill(details, occurred_at, None, rules)
        waits_because = "trust-tester-flagged" if tester else "above-small-money-limit"
        self.trigger_event(self.GoodwillRequested, **details, waits_because=waits_because)
        return {"status": "awaiting_approval", "points": points, "waits_because": waits_because}

    def _grant_goodwill(
        self,
        details: dict[str, Any],
        granted_at: datetime,
        approved_by: str | None,
        rules: ProgramRules,
    ) -> Effect:
        postings, repaid = self._credit_available_postings(details["points"])
        expires_at = add_months(granted_at, rules.lot_expiry_months)
        self.trigger_event(
            self.GoodwillGranted,
            **details,
            granted_at=iso(granted_at),
            approved_by=approved_by,
            expires_at=iso(expires_at),
            debt_repaid=repaid,
            rule_version=rules.version,
            postings=postings,
        )
        return {
            "status": "granted",
            "points": details["points"],
            "approved_by": approved_by,
            "debt_repaid": repaid,
            "rule_version": rules.version,
        }

    def on_goodwill_requested(self, e: Any) -> None:
        self.requests[e.event_id] = Request("goodwill", e.issued_by, e.points, event_fields(e))

    def approve_goodwill(
        self, *, event_id: str, approved_by: str, decided_at: datetime, rules: ProgramRules
    ) -> Effect:
        request = self.check_waiting(event_id, "goodwill")
        self.check_second_person(request, approved_by, None)
        details = {k: v for k, v in request.details.items() if k != "waits_because"}
        return self._grant_goodwill(details, decided_at, approved_by, rules)

    def on_goodwill_granted(self, e: Any) -> None:
        self.requests.pop(e.event_id, None)
        self.goodwill_grants.append(parse_ts(e.occurred_at))
        self._add_available_lot(
            e.event_id,
            "goodwill",
            e.points,
            e.granted_at,
            e.expires_at,
            e.rule_version,
            e.debt_repaid,
        )

    def reject_goodwill(
        self, *, event_id: str, rejected_by: str, note: str | None, decided_at: datetime
    ) -> Effect:
        self.check_waiting(event_id, "goodwill")
        self.trigger_event(
            self.GoodwillRejected,
            event_id=event_id,
            decided_at=iso(decided_at),
            rejected_by=rejected_by,
            note=note,
        )
        return {"status": "rejected", "rejected_by": rejected_by}

    def on_goodwill_rejected(self, e: Any) -> None:
        self.requests.pop(e.event_id, None)

    def record_incident(
        self,
        *,
        event_id: str,
        occurred_at: datetime,
        store_id: str | None,
        severity: str,
        description: str,
    ) -> Effect:
        self.trigger_event(
            self.IncidentReported,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            store_id=store_id,
            severity=severity,
            description=description,
        )
        return {"severity": severity, "trust": "a mistake: withdraws from the trust deposit"}

    def on_incident_reported(self, e: Any) -> None:
        pass

    # ---- commands: redemptions ---------------------------------------------------------
    def redeem(
        self,
        *,
        event_id: str,
        occurred_at: datetime,
        store_id: str | None,
        points: int,
        reward_id: str,
    ) -> Effect:
        self.check_enough_points(points, occurred_at)
        allocation, missing = allocate(self.lots, points, occurred_at)
        assert missing == 0
        postings: Postings = []
        move(postings, AVAILABLE, REDEEMED, points)
        self.trigger_event(
            self.PointsRedeemed,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            store_id=store_id,
            points=points,
            reward_id=reward_id,
            allocation=allocation,
            postings=postings,
        )
        return {"points": points, "allocation": allocation, "available_after": self.available}

    def on_points_redeemed(self, e: Any) -> None:
        for lot_id, points in e.allocation:
            self.lots[lot_id].used += points
        self.redemptions[e.event_id] = Redemption(e.points, e.allocation)

    def cancel_redemption(
        self,
        *,
        event_id: str,
        occurred_at: datetime,
        store_id: str | None,
        original_event_id: str,
    ) -> Effect:
        redemption = self.check_cancellable(original_event_id)
        postings: Postings = []
        move(postings, REDEEMED, AVAILABLE, redemption.points)
        repaid = min(self.debt, redemption.points)
        move(postings, AVAILABLE, DEBT, repaid)
        self.trigger_event(
            self.RedemptionCancelled,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            store_id=store_id,
            original_event_id=original_event_id,
            points=redemption.points,
            allocation=redemption.allocation,
            debt_repaid=repaid,
            postings=postings,
        )
        return {
            "points": redemption.points,
            "allocation": redemption.allocation,
            "debt_repaid": repaid,
        }

    def on_redemption_cancelled(self, e: Any) -> None:
        for lot_id, points in e.allocation:
            self.lots[lot_id].used -= points
        self.redemptions[e.original_event_id].cancelled = True
        self._repay_debt_from_lots(e.debt_repaid, [lot_id for lot_id, _ in e.allocation])

    # ---- commands: time ---------------------------------------------------------------
    def due(self, now: datetime) -> list[tuple[datetime, str, Lot]]:
        """Maturations and expiries whose time has come, in time order."""
        moments: list[tuple[datetime, str, Lot]] = []
        for lot in self.lots.values():
            if lot.pending and lot.matures_at is not None and lot.matures_at <= now:
                moments.append((lot.matures_at, "mature", lot))
                if lot.expires_at <= now:
                    moments.append((lot.expires_at, "expire", lot))
            elif not lot.pending and lot.remaining > 0 and lot.expires_at <= now:
                moments.append((lot.expires_at, "expire", lot))
        return sorted(moments, key=lambda m: (m[0], m[1] != "mature", m[2].lot_id))

    def sweep(self, now: datetime) -> list[Effect]:
        """Record every maturation and expiry due by `now` (idempotent: a lot's state
        changes once). A matured first qualifying purchase of a referred customer names
        the referrer to reward (`referral_reward_to`)."""
        effects: list[Effect] = []
        for moment, action, lot in self.due(now):
            if action == "mature":
                effects.append(self._mature(lot, moment))
            elif lot.remaining > 0:
                postings: Postings = []
                move(postings, AVAILABLE, EXPIRED, lot.remaining)
                points = lot.remaining
                self.trigger_event(
                    self.PointsExpired,
                    lot_id=lot.lot_id,
                    occurred_at=iso(moment),
                    points=points,
                    postings=postings,
                )
                effects.append({"action": "expired", "lot_id": lot.lot_id, "points": points})
        return effects

    def _mature(self, lot: Lot, moment: datetime) -> Effect:
        points = max(lot.remaining, 0)
        postings: Postings = []
        move(postings, PENDING, AVAILABLE, points)
        repaid = min(self.debt, points)
        move(postings, AVAILABLE, DEBT, repaid)
        reward_to = None
        purchase = self.purchases.get(lot.lot_id)
        if (
            self.referred_by is not None
            and not self.referral_rewarded
            and purchase is not None
            and purchase.amount > purchase.refunded
        ):
            reward_to = self.referred_by
        self.trigger_event(
            self.PointsMatured,
            lot_id=lot.lot_id,
            occurred_at=iso(moment),
            points=points,
            debt_repaid=repaid,
            referral_reward_to=reward_to,
            postings=postings,
        )
        return {
            "action": "matured",
            "lot_id": lot.lot_id,
            "points": points,
            "debt_repaid": repaid,
            "referral_reward_to": reward_to,
            "occurred_at": iso(moment),
        }

    def on_points_matured(self, e: Any) -> None:
        lot = self.lots[e.lot_id]
        lot.pending = False
        self._repay_debt_from_lots(e.debt_repaid, [lot.lot_id])
        if e.referral_reward_to is not None:
            self.referral_rewarded = True

    def on_points_expired(self, e: Any) -> None:
        self.lots[e.lot_id].expired += e.points

    # ---- commands: manual adjustments (admin) ------------------------------------------
    def adjust(
        self,
        *,
        adjustment_id: str,
        occurred_at: datetime,
        points: int,
        reason: str,
        requested_by: str,
        rules: ProgramRules,
        requested_with_key: str | None = None,
    ) -> Effect:
        if abs(points) > rules.adjustment_approval_limit:
            self.trigger_event(
                self.AdjustmentRequested,
                adjustment_id=adjustment_id,
                occurred_at=iso(occurred_at),
                points=points,
                reason=reason,
                requested_by=requested_by,
                requested_with_key=requested_with_key,
            )
            return {"status": "awaiting_approval", "points": points}
        return self._apply_adjustment(
            adjustment_id, occurred_at, points, reason, requested_by, None, rules
        )

    def on_adjustment_requested(self, e: Any) -> None:
        self.adjustment_ids.add(e.adjustment_id)
        self.requests[e.adjustment_id] = Request(
            "adjustment", e.requested_by, e.points, event_fields(e)
        )

    def approve_adjustment(
        self,
        *,
        adjustment_id: str,
        approved_by: str,
        decided_at: datetime,
        rules: ProgramRules,
        approver_key: str | None = None,
    ) -> Effect:
        request = self.check_waiting(adjustment_id, "adjustment")
        self.check_second_person(request, approved_by, approver_key)
        return self._apply_adjustment(
            adjustment_id,
            decided_at,
            request.points,
            request.details["reason"],
            request.requested_by,
            approved_by,
            rules,
        )

    def reject_adjustment(
        self, *, adjustment_id: str, rejected_by: str, note: str | None, decided_at: datetime
    ) -> Effect:
        self.check_waiting(adjustment_id, "adjustment")
        self.trigger_event(
            self.AdjustmentRejected,
            adjustment_id=adjustment_id,
            decided_at=iso(decided_at),
            rejected_by=rejected_by,
            note=note,
        )
        return {"status": "rejected", "rejected_by": rejected_by}

    def on_adjustment_rejected(self, e: Any) -> None:
        self.requests.pop(e.adjustment_id, None)

    def _apply_adjustment(
        self,
        adjustment_id: str,
        occurred_at: datetime,
        points: int,
        reason: str,
        requested_by: str,
        approved_by: str | None,
        rules: ProgramRules,
    ) -> Effect:
        allocation: Allocation = []
        debt_added = repaid = 0
        expires_at: str | None = None
        if points >= 0:
            postings, repaid = self._credit_available_postings(points)
            expires_at = iso(add_months(occurred_at, rules.lot_expiry_months))
        else:
            postings = []
            allocation, debt_added = allocate(self.lots, -points, occurred_at)
            move(postings, AVAILABLE, ISSUED, -points - debt_added)
            move(postings, DEBT, ISSUED, debt_added)
        self.trigger_event(
            self.PointsAdjusted,
            adjustment_id=adjustment_id,
            occurred_at=iso(occurred_at),
            points=points,
            reason=reason,
            requested_by=requested_by,
            approved_by=approved_by,
            allocation=allocation,
            debt_added=debt_added,
            debt_repaid=repaid,
            expires_at=expires_at,
            rule_version=rules.version,
            postings=postings,
        )
        return {
            "status": "applied",
            "points": points,
            "debt_added": debt_added,
            "debt_repaid": repaid,
            "approved_by": approved_by,
        }

    def on_points_adjusted(self, e: Any) -> None:
        self.adjustment_ids.add(e.adjustment_id)
        self.requests.pop(e.adjustment_id, None)
        if e.points >= 0:
            self._add_available_lot(
                ADJUSTMENT_LOT.format(adjustment_id=e.adjustment_id),
                "adjustment",
                e.points,
                e.occurred_at,
                e.expires_at,
                e.rule_version,
                e.debt_repaid,
            )
        else:
            for lot_id, points in e.allocation:
                self.lots[lot_id].used += points
            self.debt += e.debt_added

    # ---- bookkeeping shared by the credits -------------------------------------------
    def _credit_available_postings(self, points: int) -> tuple[Postings, int]:
        """Postings of an immediately available credit; outstanding debt is repaid first,
        so that a customer never holds available points while owing points."""
        postings: Postings = []
        move(postings, ISSUED, AVAILABLE, points)
        repaid = min(self.debt, points)
        move(postings, AVAILABLE, DEBT, repaid)
        return postings, repaid

    def _add_available_lot(
        self,
        lot_id: str,
        source: str,
        points: int,
        earned_at: str,
        expires_at: str,
        rule_version: int,
        repaid: int,
    ) -> None:
        if not points:
            return
        self.lots[lot_id] = Lot(
            lot_id=lot_id,
            source=source,
            points=points,
            pending=False,
            earned_at=parse_ts(earned_at),
            matures_at=None,
            expires_at=parse_ts(expires_at),
            rule_version=rule_version,
        )
        self._repay_debt_from_lots(repaid, [lot_id])

    def _repay_debt_from_lots(self, repaid: int, lot_ids: list[str]) -> None:
        left = repaid
        for lot_id in lot_ids:
            lot = self.lots[lot_id]
            take = min(left, max(lot.remaining, 0))
            lot.used += take
            left -= take
        self.debt -= repaid - left
        assert left == 0, "debt repaid from points the lots do not hold"


def register_referral(
    referee: CustomerAccount,
    referrer: CustomerAccount,
    *,
    event_id: str,
    occurred_at: datetime,
    store_id: str | None,
    rules: ProgramRules,
) -> Effect:
    return referee.record_referral(
        referrer=referrer,
        event_id=event_id,
        occurred_at=occurred_at,
        store_id=store_id,
        rules=rules,
    )


__all__ = ["CustomerAccount", "Effect", "floor_points", "parse_ts"]
