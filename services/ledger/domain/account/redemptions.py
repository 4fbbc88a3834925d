"""Redemptions spend available points, soonest-expiring lot first; a cancellation gives
them back (repaying any debt first) (SPEC §3)."""

from __future__ import annotations

from datetime import datetime

from services.ledger.domain import errors
from services.ledger.domain.account.bookkeeping import Bookkeeping
from services.ledger.domain.account.events import PointsRedeemed, RedemptionCancelled
from services.ledger.domain.account.state import Effect, Redemption
from services.ledger.domain.clock import iso, parse_ts
from services.ledger.domain.lots import AVAILABLE, DEBT, REDEEMED, Postings, move


class Redemptions(Bookkeeping):
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
        allocation, missing = self._allocate(points, occurred_at)
        if missing:  # check_enough_points counted these very points
            raise errors.BooksOutOfBalance(
                f"{points} points were spendable, yet {missing} of them are in no lot"
            )
        postings: Postings = []
        move(postings, AVAILABLE, REDEEMED, points)
        self.trigger_event(
            PointsRedeemed,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            store_id=store_id,
            points=points,
            reward_id=reward_id,
            allocation=allocation,
            postings=postings,
        )
        return {"points": points, "allocation": allocation, "available_after": self.available}

    def cancel_redemption(
        self,
        *,
        event_id: str,
        occurred_at: datetime,
        store_id: str | None,
        original_event_id: str,
    ) -> Effect:
        redemption = self.check_cancellable(original_event_id)
        if redemption.occurred_at is not None:
            check_not_before_original(occurred_at, parse_ts(redemption.occurred_at), "redemption")
        postings: Postings = []
        move(postings, REDEEMED, AVAILABLE, redemption.points)
        repaid = min(self.debt, redemption.points)
        move(postings, AVAILABLE, DEBT, repaid)
        self.trigger_event(
            RedemptionCancelled,
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

    # ---- applying the events ------------------------------------------------------------
    def on_points_redeemed(self, e: PointsRedeemed) -> None:
        for lot_id, points in e.allocation:
            self._change_lot(str(lot_id), used=int(points))
        self.redemptions[e.event_id] = Redemption(e.points, e.allocation, occurred_at=e.occurred_at)

    def on_redemption_cancelled(self, e: RedemptionCancelled) -> None:
        for lot_id, points in e.allocation:
            self._change_lot(str(lot_id), used=-int(points))
        self.redemptions[e.original_event_id].cancelled = True
        self._repay_debt_from_lots(e.debt_repaid, [str(lot_id) for lot_id, _ in e.allocation])


def check_not_before_original(occurred_at: datetime, original_at: datetime, kind: str) -> None:
    """A follow-up (refund, redemption cancel) is never dated before its original."""
    if occurred_at < original_at:
        raise errors.BeforeOriginal(
            f"occurred_at {iso(occurred_at)} is before the original {kind} ({iso(original_at)})",
            field="occurred_at",
        )
