"""Purchases earn points (pending until the return window closes); refunds reverse them
(SPEC §3): proportionally, from the lot first, then what expired, then claw-back and debt."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from services.ledger.domain import errors
from services.ledger.domain.account.bookkeeping import Bookkeeping
from services.ledger.domain.account.events import PurchaseRecorded, RefundRecorded
from services.ledger.domain.account.redemptions import check_not_before_original
from services.ledger.domain.account.state import Purchase
from services.ledger.domain.clock import add_months, days, iso, parse_ts
from services.ledger.domain.effects import PurchaseEffect, RefundEffect
from services.ledger.domain.lots import (
    AVAILABLE,
    DEBT,
    EXPIRED,
    ISSUED,
    PENDING,
    Lot,
    Postings,
    floor_points,
    move,
)
from services.ledger.domain.rules import ProgramRules, TierStep
from services.ledger.domain.tiers import tier_at


class Purchases(Bookkeeping):
    def spend_entries(self) -> list[tuple[datetime, Decimal]]:
        """Every purchase's net spend, the slow way (`spend` keeps them summed)."""
        return [(p.occurred_at, p.amount - p.refunded) for p in self.purchases.values()]

    def tier_step_at(self, moment: datetime, rules: ProgramRules) -> TierStep:
        """`tier_at(self.spend_entries(), moment, rules).step`, from the running sums."""
        if self.spend.negative:  # a net spend below zero, which no refund makes
            return tier_at(self.spend_entries(), moment, rules).step
        return self.spend.tier_step(moment, rules)

    # ---- checks -----------------------------------------------------------------------
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

    def earning_base(
        self,
        amount: Decimal,
        points_tender: Decimal | None,
        tender_currency: str | None,
        rules: ProgramRules,
    ) -> Decimal:
        """SPEC §9 (seed 004 §3): paying with points earns no points, so a purchase earns
        on `amount - points_tender`. A refund still reverses in proportion to the amount,
        so it takes back the same share of what was earned."""
        if points_tender is None:
            return amount
        self.check_currency(tender_currency or "", rules, "points_tender.currency")
        if points_tender > amount:
            raise errors.PointsTenderExceedsAmount(
                f"points_tender {points_tender} is more than the amount {amount}",
                field="points_tender.value",
            )
        return amount - points_tender

    # ---- commands ---------------------------------------------------------------------
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
        points_tender: Decimal | None = None,
        tender_currency: str | None = None,
    ) -> PurchaseEffect:
        self.check_currency(currency, rules, "amount.currency")
        self.check_new_receipt(receipt_id)
        base = self.earning_base(amount, points_tender, tender_currency, rules)
        step = self.tier_step_at(occurred_at, rules)
        points = floor_points(base * rules.earn_rate * step.multiplier)
        postings: Postings = []
        move(postings, ISSUED, PENDING, points)
        matures_at = iso(occurred_at + days(rules.return_window_days))
        expires_at = iso(add_months(occurred_at, rules.lot_expiry_months))
        multiplier = str(step.multiplier)
        self.trigger_event(
            PurchaseRecorded,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            store_id=store_id,
            receipt_id=receipt_id,
            amount=str(amount),
            currency=currency,
            points=points,
            tier=step.name,
            multiplier=multiplier,
            rule_version=rules.version,
            matures_at=matures_at,
            expires_at=expires_at,
            postings=postings,
            points_tender=None if points_tender is None else str(points_tender),
        )
        return PurchaseEffect(
            points=points,
            earned_on=str(base),
            status="pending",
            lot_id=event_id,
            matures_at=matures_at,
            expires_at=expires_at,
            tier=step.name,
            multiplier=multiplier,
            rule_version=rules.version,
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
    ) -> RefundEffect:
        self.check_currency(currency, rules, "amount.currency")
        purchase = self.check_known_purchase(original_event_id)
        check_not_before_original(occurred_at, purchase.occurred_at, "purchase")
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
        clawback, debt = self._allocate(shortfall, occurred_at, exclude=lot.lot_id)
        for lot_id, points in clawback:
            takes.append([lot_id, "clawback", points])
            move(postings, AVAILABLE, ISSUED, int(points))
        move(postings, DEBT, ISSUED, debt)
        self.trigger_event(
            RefundRecorded,
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
        return RefundEffect(
            points_reversed=to_reverse,
            takes=takes,
            debt_added=debt,
            rule_version=lot.rule_version,
            refunded_total=str(purchase.refunded),
        )

    # ---- applying the events ------------------------------------------------------------
    def on_purchase_recorded(self, e: PurchaseRecorded) -> None:
        occurred_at = parse_ts(e.occurred_at)
        amount = Decimal(e.amount)
        self.purchases[e.event_id] = Purchase(
            event_id=e.event_id,
            occurred_at=occurred_at,
            amount=amount,
            lot_id=e.event_id,
            points=e.points,
        )
        self.spend.add(e.event_id, occurred_at, amount)
        self.receipts.add(e.receipt_id)
        self._put_lot(
            Lot(
                lot_id=e.event_id,
                source="purchase",
                points=e.points,
                pending=True,
                earned_at=occurred_at,
                matures_at=parse_ts(e.matures_at),
                expires_at=parse_ts(e.expires_at),
                rule_version=e.rule_version,
            )
        )

    def on_refund_recorded(self, e: RefundRecorded) -> None:
        purchase = self.purchases[e.original_event_id]
        amount = Decimal(e.amount)
        purchase.refunded += amount
        purchase.points_reversed += e.points_reversed
        self.spend.change(e.original_event_id, -amount)
        for lot_id, kind, points in e.takes:
            if kind == "clawback":
                self._change_lot(lot_id, used=points)
            elif kind == "expired":
                self._change_lot(lot_id, expired=-points, reversal=points)
            else:
                self._change_lot(lot_id, reversal=points)
        self.debt += e.debt_added
