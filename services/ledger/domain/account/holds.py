"""Checkout holds (SPEC §9): two-phase redemption, as ledgers do for card authorisations.

A hold (`redemption_hold`) sets available points aside, soonest-expiring lots first, from
`customer:available` to `customer:held`: they are no longer available, so no redemption,
claw-back or second hold can take them. The hold then ends once:

- captured (`redemption_capture`): `points` (all, or fewer) are redeemed, `held ->
  redeemed`; the rest is released;
- voided (`redemption_void`): all of it is released;
- expired: the sweep releases it at `expires_at` (`hold_seconds`, default the rule's).

Released points go back to the lots they came from (`held -> available`), repaying any
debt first, as a redemption cancel does. A lot that expired while held expires at the
next sweep.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from services.ledger.domain import errors
from services.ledger.domain.account.bookkeeping import Bookkeeping
from services.ledger.domain.account.program_events import HoldCaptured, HoldReleased, PointsHeld
from services.ledger.domain.account.redemptions import check_not_before_original
from services.ledger.domain.account.state import Effect, Hold
from services.ledger.domain.clock import iso, parse_ts
from services.ledger.domain.effects import CaptureEffect, HoldEffect, HoldReleaseEffect
from services.ledger.domain.lots import AVAILABLE, DEBT, HELD, REDEEMED, Allocation, Postings, move
from services.ledger.domain.rules import ProgramRules


def split_allocation(allocation: Allocation, points: int) -> tuple[Allocation, Allocation]:
    """The first `points` of an allocation (in its order), and the rest."""
    taken: Allocation = []
    rest: Allocation = []
    left = points
    for lot_id, held in allocation:
        take = min(left, int(held))
        if take:
            taken.append([lot_id, take])
        if int(held) - take:
            rest.append([lot_id, int(held) - take])
        left -= take
    return taken, rest


class Holds(Bookkeeping):
    @property
    def held(self) -> int:
        return sum(hold.points for hold in self.holds.values())

    def check_open_hold(self, original_event_id: str, occurred_at: datetime) -> Hold:
        hold = self.holds.get(original_event_id)
        if hold is None:
            if original_event_id in self.closed_holds:
                raise errors.HoldNotOpen(
                    f"hold {original_event_id!r} was already captured, voided or released",
                    field="original_event_id",
                )
            raise errors.UnknownOriginalEvent(
                f"no hold {original_event_id!r} for customer {self.customer_id!r}",
                field="original_event_id",
            )
        check_not_before_original(occurred_at, hold.occurred_at, "hold")
        if occurred_at >= hold.expires_at:
            raise errors.HoldNotOpen(
                f"hold {original_event_id!r} expired at {iso(hold.expires_at)}",
                field="occurred_at",
            )
        return hold

    @staticmethod
    def check_capture_within_hold(hold: Hold, points: int) -> None:
        if points > hold.points:
            raise errors.CaptureExceedsHold(
                f"{points} points captured from a hold of {hold.points}", field="points"
            )

    # ---- commands -----------------------------------------------------------------------
    def hold(
        self,
        *,
        event_id: str,
        occurred_at: datetime,
        store_id: str | None,
        points: int,
        reward_id: str,
        hold_seconds: int | None,
        rules: ProgramRules,
    ) -> HoldEffect:
        self.check_enough_points(points, occurred_at)
        allocation, missing = self._allocate(points, occurred_at)
        if missing:  # check_enough_points counted these very points
            raise errors.BooksOutOfBalance(
                f"{points} points were spendable, yet {missing} of them are in no lot"
            )
        expires_at = iso(occurred_at + timedelta(seconds=hold_seconds or rules.hold_seconds))
        postings: Postings = []
        move(postings, AVAILABLE, HELD, points)
        self.trigger_event(
            PointsHeld,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            store_id=store_id,
            points=points,
            reward_id=reward_id,
            expires_at=expires_at,
            allocation=allocation,
            postings=postings,
        )
        return HoldEffect(
            points=points,
            hold_id=event_id,
            expires_at=expires_at,
            allocation=allocation,
            available_after=self.available,
            held_after=self.held,
        )

    def capture_hold(
        self,
        *,
        event_id: str,
        occurred_at: datetime,
        store_id: str | None,
        original_event_id: str,
        points: int | None,
    ) -> CaptureEffect:
        hold = self.check_open_hold(original_event_id, occurred_at)
        captured = hold.points if points is None else points
        self.check_capture_within_hold(hold, captured)
        taken, rest = split_allocation(hold.allocation, captured)
        released = hold.points - captured
        postings: Postings = []
        move(postings, HELD, REDEEMED, captured)
        repaid = self._release_postings(postings, released)
        self.trigger_event(
            HoldCaptured,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            store_id=store_id,
            original_event_id=original_event_id,
            points=captured,
            allocation=taken,
            released=released,
            released_allocation=rest,
            debt_repaid=repaid,
            postings=postings,
        )
        return CaptureEffect(
            hold_id=original_event_id,
            points=captured,
            released=released,
            debt_repaid=repaid,
            available_after=self.available,
        )

    def void_hold(
        self, *, event_id: str, occurred_at: datetime, store_id: str | None, original_event_id: str
    ) -> HoldReleaseEffect:
        hold = self.check_open_hold(original_event_id, occurred_at)
        return self._release(hold, original_event_id, occurred_at, "voided", event_id, store_id)

    def release_expired_holds(self, now: datetime) -> list[Effect]:
        """The sweep's share: every open hold whose time is up by `now`, in time order."""
        due = sorted(
            (hold.expires_at, hold_id)
            for hold_id, hold in self.holds.items()
            if hold.expires_at <= now
        )
        return [
            {
                "action": "hold_released",
                **self._release(self.holds[hold_id], hold_id, moment, "expired", None, None),
            }
            for moment, hold_id in due
        ]

    def _release_postings(self, postings: Postings, points: int) -> int:
        move(postings, HELD, AVAILABLE, points)
        repaid = min(self.debt, points)
        move(postings, AVAILABLE, DEBT, repaid)
        return repaid

    def _release(
        self,
        hold: Hold,
        hold_id: str,
        occurred_at: datetime,
        reason: str,
        event_id: str | None,
        store_id: str | None,
    ) -> HoldReleaseEffect:
        postings: Postings = []
        repaid = self._release_postings(postings, hold.points)
        self.trigger_event(
            HoldReleased,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            store_id=store_id,
            original_event_id=hold_id,
            reason=reason,
            points=hold.points,
            allocation=hold.allocation,
            debt_repaid=repaid,
            postings=postings,
        )
        return HoldReleaseEffect(
            hold_id=hold_id, reason=reason, points=hold.points, debt_repaid=repaid
        )

    # ---- applying the events ------------------------------------------------------------
    def on_points_held(self, e: PointsHeld) -> None:
        for lot_id, points in e.allocation:
            self._change_lot(str(lot_id), used=int(points))
        self.holds[e.event_id] = Hold(
            e.points, e.allocation, parse_ts(e.occurred_at), parse_ts(e.expires_at)
        )

    def _give_back(self, allocation: Allocation, debt_repaid: int) -> None:
        for lot_id, points in allocation:
            self._change_lot(str(lot_id), used=-int(points))
        self._repay_debt_from_lots(debt_repaid, [str(lot_id) for lot_id, _ in allocation])

    def on_hold_captured(self, e: HoldCaptured) -> None:
        self.holds.pop(e.original_event_id)
        self.closed_holds.add(e.original_event_id)
        self._give_back(e.released_allocation, e.debt_repaid)

    def on_hold_released(self, e: HoldReleased) -> None:
        self.holds.pop(e.original_event_id)
        self.closed_holds.add(e.original_event_id)
        self._give_back(e.allocation, e.debt_repaid)
