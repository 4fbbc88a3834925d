"""Erasure that keeps the books (SPEC §11): an admin asks, a second person approves.

A request waits as a `PendingApproval` of kind `erasure` (the same second-person rule as
goodwill and adjustments, `approvals.py`). The approval records `CustomerErased`; the
application deletes the customer's key in the same unit of work, before the event is
appended (`Ledger.approve_erasure`). Nothing of the books changes: the event has no
postings, and every lot stays as it was.
"""

from __future__ import annotations

from datetime import datetime

from services.ledger.domain import errors
from services.ledger.domain.account.bookkeeping import Bookkeeping
from services.ledger.domain.account.events import event_fields
from services.ledger.domain.account.program_events import (
    CustomerErased,
    ErasureRejected,
    ErasureRequested,
)
from services.ledger.domain.account.state import Effect
from services.ledger.domain.approvals import PendingApproval, check_waiting
from services.ledger.domain.clock import iso


class Erasure(Bookkeeping):
    erased: bool = False  # class default: accounts never erased need no state of their own

    def check_not_erased(self) -> None:
        if self.erased:
            raise errors.NotPending(f"customer {self.customer_id!r} is already erased")

    def waiting_erasure(self) -> str | None:
        """The id of the erasure request waiting for a second person, if any."""
        return next((k for k, r in self.requests.items() if r.kind == "erasure"), None)

    def request_erasure(
        self,
        *,
        request_id: str,
        occurred_at: datetime,
        requested_by: str,
        reason: str,
        requested_with_key: str | None = None,
    ) -> Effect:
        self.check_not_erased()
        waiting = self.waiting_erasure()
        if waiting is not None:
            raise errors.NotPending(f"erasure {waiting!r} already waits for a second person")
        self.trigger_event(
            ErasureRequested,
            request_id=request_id,
            occurred_at=iso(occurred_at),
            requested_by=requested_by,
            requested_with_key=requested_with_key,
            reason=reason,
        )
        return {"status": "awaiting_approval", "request_id": request_id}

    def approve_erasure(
        self, *, approved_by: str, decided_at: datetime, approver_key: str | None = None
    ) -> Effect:
        self.check_not_erased()
        request_id = self.waiting_erasure() or ""
        request = check_waiting(self.requests, request_id, "erasure")
        request.check_second_person(approved_by, approver_key)
        self.trigger_event(
            CustomerErased,
            request_id=request_id,
            decided_at=iso(decided_at),
            requested_by=request.requested_by,
            approved_by=approved_by,
            approver_key=approver_key,
        )
        return {"status": "erased", "request_id": request_id, "approved_by": approved_by}

    def reject_erasure(
        self, *, rejected_by: str, decided_at: datetime, rejected_with_key: str | None = None
    ) -> Effect:
        request_id = self.waiting_erasure() or ""
        check_waiting(self.requests, request_id, "erasure")
        self.trigger_event(
            ErasureRejected,
            request_id=request_id,
            decided_at=iso(decided_at),
            rejected_by=rejected_by,
            rejected_with_key=rejected_with_key,
        )
        return {"status": "rejected", "request_id": request_id, "rejected_by": rejected_by}

    # ---- applying the events ------------------------------------------------------------
    def on_erasure_requested(self, e: ErasureRequested) -> None:
        self.requests[e.request_id] = PendingApproval(
            "erasure", e.requested_by, e.requested_with_key, 0, event_fields(e)
        )

    def on_erasure_rejected(self, e: ErasureRejected) -> None:
        self.requests.pop(e.request_id, None)

    def on_customer_erased(self, e: CustomerErased) -> None:
        self.requests.pop(e.request_id, None)
        self.erased = True
