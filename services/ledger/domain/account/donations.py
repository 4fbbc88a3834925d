"""Donations (SPEC §9, seed 004 §10): a customer gives available points to a charity.

The points leave the customer's lots as a redemption's do (soonest-expiring first) and
are posted to the charity's own account, `charity:<charity_id>`, so the program's
liability can say what each charity was given and the postings still sum to zero.
"""

from __future__ import annotations

from datetime import datetime

from services.ledger.domain import errors
from services.ledger.domain.account.bookkeeping import Bookkeeping
from services.ledger.domain.account.program_events import PointsDonated
from services.ledger.domain.clock import iso
from services.ledger.domain.effects import DonationEffect
from services.ledger.domain.lots import AVAILABLE, CHARITY, Postings, move


class Donations(Bookkeeping):
    def donate(
        self,
        *,
        event_id: str,
        occurred_at: datetime,
        store_id: str | None,
        points: int,
        charity_id: str,
    ) -> DonationEffect:
        self.check_enough_points(points, occurred_at)
        allocation, missing = self._allocate(points, occurred_at)
        if missing:  # check_enough_points counted these very points
            raise errors.BooksOutOfBalance(
                f"{points} points were spendable, yet {missing} of them are in no lot"
            )
        postings: Postings = []
        move(postings, AVAILABLE, CHARITY + charity_id, points)
        self.trigger_event(
            PointsDonated,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            store_id=store_id,
            points=points,
            charity_id=charity_id,
            allocation=allocation,
            postings=postings,
        )
        return DonationEffect(
            points=points,
            charity_id=charity_id,
            allocation=allocation,
            available_after=self.available,
        )

    def on_points_donated(self, e: PointsDonated) -> None:
        for lot_id, points in e.allocation:
            self._change_lot(str(lot_id), used=int(points))
