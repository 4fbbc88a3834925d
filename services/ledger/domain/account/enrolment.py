"""Enrolment (SPEC §9, seed 004 §2 and §5): a customer joins the programme and gets the
welcome points (`welcome_points`) as an available lot, once. Enrolment is never needed to
earn: any event opens an account; enrolling later still gives the welcome points.
"""

from __future__ import annotations

from datetime import datetime

from services.ledger.domain import errors
from services.ledger.domain.account.bookkeeping import Bookkeeping
from services.ledger.domain.account.program_events import CustomerEnrolled
from services.ledger.domain.clock import add_months, iso
from services.ledger.domain.effects import EnrolmentEffect
from services.ledger.domain.privacy import Sealed
from services.ledger.domain.rules import ProgramRules


class Enrolment(Bookkeeping):
    def check_not_enrolled(self) -> None:
        if self.enrolled_at is not None:
            raise errors.AlreadyEnrolled(
                f"customer {self.customer_id!r} enrolled at {self.enrolled_at}; "
                "the welcome points are given once",
                field="customer_id",
            )

    def enrol(
        self,
        *,
        event_id: str,
        occurred_at: datetime,
        store_id: str | None,
        channel: str | None,
        birthday: Sealed | None,  # sealed by the application (domain/privacy.py)
        rules: ProgramRules,
    ) -> EnrolmentEffect:
        self.check_not_enrolled()
        points = rules.welcome_points
        postings, repaid = self._credit_available_postings(points)
        expires_at = iso(add_months(occurred_at, rules.lot_expiry_months))
        self.trigger_event(
            CustomerEnrolled,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            store_id=store_id,
            channel=channel,
            birthday=birthday,
            points=points,
            expires_at=expires_at,
            debt_repaid=repaid,
            rule_version=rules.version,
            postings=postings,
        )
        return EnrolmentEffect(
            welcome_points=points,
            status="available",
            lot_id=event_id,
            expires_at=expires_at,
            debt_repaid=repaid,
            rule_version=rules.version,
        )

    def on_customer_enrolled(self, e: CustomerEnrolled) -> None:
        self.enrolled_at = e.occurred_at
        self.birthday = e.birthday
        self._add_available_lot(
            e.event_id,
            "welcome",
            e.points,
            e.occurred_at,
            e.expires_at,
            e.rule_version,
            e.debt_repaid,
        )
