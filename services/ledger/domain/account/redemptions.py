"""Redemptions spend available points, soonest-expiring lot first; a cancellation gives
them back (repaying any debt first) (SPEC §3)."""

from __future__ import annotations

from datetime import datetime

from services.ledger.domain import errors
from services.ledger.domain.account.bookkeeping import Bookkeeping
from services.ledger.domain.account.events import PointsRedeemed, RedemptionCancelled
from services.ledger.domain.account.state import Redemption
from services.ledger.domain.clock import iso, parse_ts
from services.ledger.domain.effects import RedemptionCancelEffect, RedemptionEffect
from services.ledger.domain.lots import AVAILABLE, DEBT, EXPIRED, REDEEMED, Postings, move


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
    ) -> RedemptionEffect:
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
        return RedemptionEffect(
            points=points, allocation=allocation, available_after=self.available
        )

    def cancel_redemption(
        self,
        *,
        event_id: str,
        occurred_at: datetime,
        store_id: str | None,
        original_event_id: str,
    ) -> RedemptionCancelEffect:
        redemption = self.check_cancellable(original_event_id)
        if redemption.occurred_at is not None:
            check_not_before_original(occurred_at, parse_ts(redemption.occurred_at), "redemption")
        # SPEC §8: points of a lot that expired in between go back to it as expired.
        expired = [
            [lot_id, points]
            for lot_id, points in redemption.allocation
            if self.lots[str(lot_id)].expires_at <= occurred_at
        ]
        back_expired = sum(int(points) for _, points in expired)
        back_available = redemption.points - back_expired
        postings: Postings = []
        move(postings, REDEEMED, AVAILABLE, back_available)
        move(postings, REDEEMED, EXPIRED, back_expired)
        repaid = min(self.debt, back_available)
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
            expired=expired,
        )
        return RedemptionCancelEffect(
            points=redemption.points,
            allocation=redemption.allocation,
            debt_repaid=repaid,
            expired=back_expired,
        )

    # ---- applying the events ------------------------------------------------------------
    def on_points_redeemed(self, e: PointsRedeemed) -> None:
        for lot_id, points in e.allocation:
            self._change_lot(str(lot_id), used=int(points))
        self.redemptions[e.event_id] = Redemption(e.points, e.allocation, occurred_at=e.occurred_at)

    def on_redemption_cancelled(self, e: RedemptionCancelled) -> None:
        for lot_id, points in e.allocation:
            self._change_lot(str(lot_id), used=-int(points))
        for lot_id, points in e.expired:
            self._change_lot(str(lot_id), expired=int(points))
        self.redemptions[e.original_event_id].cancelled = True
        gone = {str(lot_id) for lot_id, _ in e.expired}
        live = [str(lot_id) for lot_id, _ in e.allocation if str(lot_id) not in gone]
        self._repay_debt_from_lots(e.debt_repaid, live)


def check_not_before_original(occurred_at: datetime, original_at: datetime, kind: str) -> None:
    """A follow-up (refund, redemption cancel) is never dated before its original."""
    if occurred_at < original_at:
        raise errors.BeforeOriginal(
            f"occurred_at {iso(occurred_at)} is before the original {kind} ({iso(original_at)})",
            field="occurred_at",
        )
