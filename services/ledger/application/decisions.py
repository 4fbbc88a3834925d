"""Admin decisions on an account (mixed into `Ledger`): goodwill waiting above the
small-money limit, manual adjustments, each with the second-person rule; every decision
records the name of the key that made it (issue 15)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from services.ledger.application.outcomes import Answer, Outcome
from services.ledger.domain import errors
from services.ledger.domain.account import CustomerAccount, Effect
from services.ledger.domain.intake import IntakeRecord
from services.ledger.domain.privacy import Keyring, Sealer
from services.ledger.domain.rules import ProgramRules

T = TypeVar("T")


class AdminDecisions:
    """Mixed into `Ledger`: what it provides is declared here for the type checker."""

    repository: Any
    keys: Keyring
    _write_lock: threading.RLock

    if TYPE_CHECKING:  # provided by `Ledger`

        @property
        def rules(self) -> ProgramRules: ...
        def position(self) -> int: ...
        def find_account(self, customer_id: str) -> CustomerAccount | None: ...
        def _append(self, *objs: Any) -> dict[UUID, int]: ...
        def _retrying(self, unit_of_work: Callable[[], T], attempts: int = ...) -> T: ...

    # ---- admin decisions (maker-checker) and adjustments --------------------------------
    def _decide(self, customer_id: str, decide: Callable[[CustomerAccount], Answer]) -> Outcome:
        def unit_of_work() -> Outcome:
            account = self.find_account(customer_id)
            if account is None:
                raise errors.UnknownCustomer(f"customer {customer_id!r} is not known")
            effect = decide(account)
            positions = self._append(account)
            return Outcome(
                event_id="",
                status="accepted",
                position=positions.get(account.id) or self.position(),
                effect=effect,
                customer_id=customer_id,
            )

        with self._write_lock:
            return self._retrying(unit_of_work)

    def _goodwill_customer(self, event_id: str) -> str:
        try:
            intake: IntakeRecord = self.repository.get(IntakeRecord.create_id(event_id))
        except AggregateNotFoundError:
            raise errors.NotPending(f"no goodwill event {event_id!r} is known") from None
        if intake.type != "goodwill":
            raise errors.NotPending(f"event {event_id!r} is a {intake.type}, not a goodwill")
        return intake.customer_id

    def approve_goodwill(
        self,
        event_id: str,
        *,
        approved_by: str,
        decided_at: datetime,
        approver_key: str | None = None,
    ) -> Outcome:
        customer_id = self._goodwill_customer(event_id)
        return self._decide(
            customer_id,
            lambda account: account.approve_goodwill(
                event_id=event_id,
                approved_by=approved_by,
                decided_at=decided_at,
                rules=self.rules,
                approver_key=approver_key,
            ),
        )

    def reject_goodwill(
        self,
        event_id: str,
        *,
        rejected_by: str,
        note: str | None,
        decided_at: datetime,
        rejected_with_key: str | None = None,
    ) -> Outcome:
        customer_id = self._goodwill_customer(event_id)
        return self._decide(
            customer_id,
            lambda account: account.reject_goodwill(
                event_id=event_id,
                rejected_by=rejected_by,
                note=Sealer(self.keys).seal(customer_id, note),
                decided_at=decided_at,
                rejected_with_key=rejected_with_key,
            ),
        )

    def adjust(
        self,
        *,
        customer_id: str,
        adjustment_id: str,
        points: int,
        reason: str,
        requested_by: str,
        occurred_at: datetime,
        requested_with_key: str | None = None,
    ) -> Outcome:
        """A manual adjustment; above the limit it waits for a second admin."""

        def decide(account: CustomerAccount) -> Effect:
            if adjustment_id in account.requests or account.has_adjustment(adjustment_id):
                raise errors.EventIdConflict(
                    f"adjustment {adjustment_id!r} already exists", field="adjustment_id"
                )
            return account.adjust(
                adjustment_id=adjustment_id,
                occurred_at=occurred_at,
                points=points,
                reason=reason,
                requested_by=requested_by,
                rules=self.rules,
                requested_with_key=requested_with_key,
            )

        return self._decide(customer_id, decide)

    def approve_adjustment(
        self,
        *,
        customer_id: str,
        adjustment_id: str,
        approved_by: str,
        decided_at: datetime,
        approver_key: str | None = None,
    ) -> Outcome:
        return self._decide(
            customer_id,
            lambda account: account.approve_adjustment(
                adjustment_id=adjustment_id,
                approved_by=approved_by,
                decided_at=decided_at,
                rules=self.rules,
                approver_key=approver_key,
            ),
        )

    def reject_adjustment(
        self,
        *,
        customer_id: str,
        adjustment_id: str,
        rejected_by: str,
        note: str | None,
        decided_at: datetime,
        rejected_with_key: str | None = None,
    ) -> Outcome:
        return self._decide(
            customer_id,
            lambda account: account.reject_adjustment(
                adjustment_id=adjustment_id,
                rejected_by=rejected_by,
                note=note,
                decided_at=decided_at,
                rejected_with_key=rejected_with_key,
            ),
        )
