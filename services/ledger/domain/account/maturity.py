"""Time: pending points mature when the return window closes, and lots expire (SPEC §3);
checkout holds whose time is up are released (SPEC §9, `holds.py`).

`sweep(now)` records every release, maturation and expiry due by `now`, in time order,
once: a hold ends once and a lot's state changes once, so a second sweep records nothing
new. Holds go first: a lot that expired while held expires once its points are back.
"""

from __future__ import annotations

from datetime import datetime

from services.ledger.domain.account.events import PointsExpired, PointsMatured
from services.ledger.domain.account.holds import Holds
from services.ledger.domain.account.state import Effect
from services.ledger.domain.clock import iso
from services.ledger.domain.lots import AVAILABLE, DEBT, EXPIRED, PENDING, Lot, Postings, move


class Maturity(Holds):
    def due(self, now: datetime) -> list[tuple[datetime, str, Lot]]:
        """Maturations and expiries whose time has come, in time order."""
        moments: list[tuple[datetime, str, Lot]] = []
        # The running index holds exactly the lots `_slow_due` finds: pending ones by
        # maturity, available ones with points left by expiry.
        for matures_at, lot_id in self.books.maturing_by(now):
            lot = self.lots[lot_id]
            moments.append((matures_at, "mature", lot))
            if lot.expires_at <= now:
                moments.append((lot.expires_at, "expire", lot))
        for expires_at, _, lot_id in self.books.expired_by(now):
            moments.append((expires_at, "expire", self.lots[lot_id]))
        return sorted(moments, key=lambda m: (m[0], m[1] != "mature", m[2].lot_id))

    def _slow_due(self, now: datetime) -> list[tuple[datetime, str, Lot]]:
        """`due` from every lot: the reference the running index is tested against."""
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
        effects: list[Effect] = self.release_expired_holds(now)
        for moment, action, lot in self.due(now):
            if action == "mature":
                effects.append(self._mature(lot, moment))
            elif lot.remaining > 0:
                postings: Postings = []
                move(postings, AVAILABLE, EXPIRED, lot.remaining)
                points = lot.remaining
                self.trigger_event(
                    PointsExpired,
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
            PointsMatured,
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

    # ---- applying the events ------------------------------------------------------------
    def on_points_matured(self, e: PointsMatured) -> None:
        lot = self._change_lot(e.lot_id, matured=True)
        self._repay_debt_from_lots(e.debt_repaid, [lot.lot_id])
        if e.referral_reward_to is not None:
            self.referral_rewarded = True

    def on_points_expired(self, e: PointsExpired) -> None:
        self._change_lot(e.lot_id, expired=e.points)
