"""Erasing a customer's personal data (SPEC §11), as the ledger's units of work.

The request and the decision are account events (`domain/account/erasure.py`), decided
like goodwill: by two people. On approval the key is deleted BEFORE `CustomerErased` is
appended: if the append then fails, the data is already unreadable and the request still
waits, so approving again records the event; the other order could leave an erasure on
record whose key still opens the data.
"""

from __future__ import annotations

from datetime import datetime
from uuid import uuid4

from services.ledger.application.ledger import Ledger
from services.ledger.application.outcomes import Outcome
from services.ledger.domain.account import CustomerAccount, Effect


def request_erasure(
    ledger: Ledger,
    customer_id: str,
    *,
    requested_by: str,
    reason: str,
    occurred_at: datetime,
    requested_with_key: str | None = None,
) -> Outcome:
    request_id = f"erase-{uuid4().hex[:12]}"
    return ledger._decide(
        customer_id,
        lambda account: account.request_erasure(
            request_id=request_id,
            occurred_at=occurred_at,
            requested_by=requested_by,
            reason=reason,
            requested_with_key=requested_with_key,
        ),
    )


def approve_erasure(
    ledger: Ledger,
    customer_id: str,
    *,
    approved_by: str,
    decided_at: datetime,
    approver_key: str | None = None,
) -> Outcome:
    def decide(account: CustomerAccount) -> Effect:
        effect = account.approve_erasure(
            approved_by=approved_by, decided_at=decided_at, approver_key=approver_key
        )
        ledger.keys.erase(customer_id)  # the rules passed: the key goes now
        # ... and the account's snapshot, a copy of its state (old events' plaintext).
        ledger.drop_snapshot(customer_id)
        return effect

    return ledger._decide(customer_id, decide)


def reject_erasure(
    ledger: Ledger,
    customer_id: str,
    *,
    rejected_by: str,
    decided_at: datetime,
    rejected_with_key: str | None = None,
) -> Outcome:
    return ledger._decide(
        customer_id,
        lambda account: account.reject_erasure(
            rejected_by=rejected_by, decided_at=decided_at, rejected_with_key=rejected_with_key
        ),
    )
