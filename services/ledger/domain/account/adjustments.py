"""Manual adjustments by an admin (SPEC §6): a credit or a debit with a reason; above the
approval limit it waits for a second admin (`approvals.py`)."""

from __future__ import annotations

from datetime import datetime

from services.ledger.domain.account.bookkeeping import Bookkeeping
from services.ledger.domain.account.events import (
    AdjustmentRejected,
    AdjustmentRequested,
    PointsAdjusted,
    event_fields,
)
from services.ledger.domain.account.state import Effect
from services.ledger.domain.approvals import PendingApproval, check_waiting
from services.ledger.domain.clock import add_months, iso
from services.ledger.domain.lots import (
    ADJUSTMENT_LOT,
    AVAILABLE,
    DEBT,
    ISSUED,
    Allocation,
    move,
)
from services.ledger.domain.rules import ProgramRules


class Adjustments(Bookkeeping):
    def has_adjustment(self, adjustment_id: str) -> bool:
        return adjustment_id in self.adjustment_ids

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
                AdjustmentRequested,
                adjustment_id=adjustment_id,
                occurred_at=iso(occurred_at),
                points=points,
                reason=reason,
                requested_by=requested_by,
                requested_with_key=requested_with_key,
            )
            return {"status": "awaiting_approval", "points": points}
        return self._apply_adjustment(
            adjustment_id,
            occurred_at,
            points,
            reason,
            (requested_by, requested_with_key),
            (None, None),
            rules,
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
        request = check_waiting(self.requests, adjustment_id, "adjustment")
        request.check_second_person(approved_by, approver_key)
        return self._apply_adjustment(
            adjustment_id,
            decided_at,
            request.points,
            request.details["reason"],
            (request.requested_by, request.requested_with_key),
            (approved_by, approver_key),
            rules,
        )

    def reject_adjustment(
        self,
        *,
        adjustment_id: str,
        rejected_by: str,
        note: str | None,
        decided_at: datetime,
        rejected_with_key: str | None = None,
    ) -> Effect:
        check_waiting(self.requests, adjustment_id, "adjustment")
        self.trigger_event(
            AdjustmentRejected,
            adjustment_id=adjustment_id,
            decided_at=iso(decided_at),
            rejected_by=rejected_by,
            rejected_with_key=rejected_with_key,
            note=note,
        )
        return {"status": "rejected", "rejected_by": rejected_by}

    def _apply_adjustment(
        self,
        adjustment_id: str,
        occurred_at: datetime,
        points: int,
        reason: str,
        requested: tuple[str, str | None],
        approved: tuple[str | None, str | None],
        rules: ProgramRules,
    ) -> Effect:
        """`requested`, `approved`: (who, with which key's name); (None, None) if at once."""
        (requested_by, requested_with_key), (approved_by, approver_key) = requested, approved
        allocation: Allocation = []
        debt_added = repaid = 0
        expires_at: str | None = None
        if points >= 0:
            postings, repaid = self._credit_available_postings(points)
            expires_at = iso(add_months(occurred_at, rules.lot_expiry_months))
        else:
            postings = []
            allocation, debt_added = self._allocate(-points, occurred_at)
            move(postings, AVAILABLE, ISSUED, -points - debt_added)
            move(postings, DEBT, ISSUED, debt_added)
        self.trigger_event(
            PointsAdjusted,
            adjustment_id=adjustment_id,
            occurred_at=iso(occurred_at),
            points=points,
            reason=reason,
            requested_by=requested_by,
            requested_with_key=requested_with_key,
            approved_by=approved_by,
            approver_key=approver_key,
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

    # ---- applying the events ------------------------------------------------------------
    def on_adjustment_requested(self, e: AdjustmentRequested) -> None:
        self.adjustment_ids.add(e.adjustment_id)
        self.requests[e.adjustment_id] = PendingApproval(
            "adjustment", e.requested_by, e.requested_with_key, e.points, event_fields(e)
        )

    def on_points_adjusted(self, e: PointsAdjusted) -> None:
        self.adjustment_ids.add(e.adjustment_id)
        self.requests.pop(e.adjustment_id, None)
        if e.points >= 0:
            # A credit always has its expiry (only a debit has none).
            self._add_available_lot(
                ADJUSTMENT_LOT.format(adjustment_id=e.adjustment_id),
                "adjustment",
                e.points,
                e.occurred_at,
                e.expires_at or "",
                e.rule_version,
                e.debt_repaid,
            )
        else:
            for lot_id, points in e.allocation:
                self._change_lot(str(lot_id), used=int(points))
            self.debt += e.debt_added

    def on_adjustment_rejected(self, e: AdjustmentRejected) -> None:
        self.requests.pop(e.adjustment_id, None)
