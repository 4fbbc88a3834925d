"""Reviews, goodwill and incidents: the trust side of the account (SPEC §3).

A review may earn a reward (one per purchase). A goodwill grant of small money is granted
at once; a larger one, or one for a customer who regularly tests the ledger's trust, waits
for a second person (`approvals.py`). An incident is a mistake recorded against the store.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from services.ledger.domain import errors
from services.ledger.domain.account.bookkeeping import Bookkeeping
from services.ledger.domain.account.events import (
    GoodwillGranted,
    GoodwillRejected,
    GoodwillRequested,
    IncidentReported,
    ReviewRecorded,
    event_fields,
)
from services.ledger.domain.account.state import Effect
from services.ledger.domain.approvals import PendingApproval, check_waiting
from services.ledger.domain.clock import add_months, days, iso, parse_ts
from services.ledger.domain.effects import (
    AwaitingApproval,
    GoodwillEffect,
    IncidentEffect,
    ReviewEffect,
)
from services.ledger.domain.lots import floor_points
from services.ledger.domain.privacy import Sealed
from services.ledger.domain.rules import ProgramRules


class Reviews(Bookkeeping):
    def record_review(
        self,
        *,
        event_id: str,
        occurred_at: datetime,
        store_id: str | None,
        rating: int,
        touchpoint: str,
        comment: Sealed | None,  # sealed by the application (domain/privacy.py)
        receipt_id: str | None,
        rules: ProgramRules,
    ) -> ReviewEffect:
        # SPEC §3: at most one rewarded review per purchase.
        rewardable = self.reviews_rewarded < len(self.purchases)
        points = rules.review_reward_points if rewardable else 0
        reason = None if rewardable else "one rewarded review per purchase: none left"
        postings, repaid = self._credit_available_postings(points)
        expires_at = add_months(occurred_at, rules.lot_expiry_months)
        self.trigger_event(
            ReviewRecorded,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            store_id=store_id,
            rating=rating,
            touchpoint=touchpoint,
            comment=comment,
            receipt_id=receipt_id,
            points=points,
            expires_at=iso(expires_at),
            no_reward_reason=reason,
            debt_repaid=repaid,
            rule_version=rules.version,
            postings=postings,
        )
        return ReviewEffect(points=points, no_reward_reason=reason, rule_version=rules.version)

    def on_review_recorded(self, e: ReviewRecorded) -> None:
        if e.points:
            self.reviews_rewarded += 1
            self._add_available_lot(
                e.event_id,
                "review",
                e.points,
                e.occurred_at,
                e.expires_at,
                e.rule_version,
                e.debt_repaid,
            )


class Goodwill(Bookkeeping):
    def is_trust_tester(self, moment: datetime, rules: ProgramRules) -> bool:
        """SPEC §3: more than N goodwill grants in the window flags the customer."""
        since = moment - days(rules.trust_tester_window_days)
        recent = sum(1 for granted in self.goodwill_grants if since < granted <= moment)
        return recent > rules.trust_tester_grants

    def record_goodwill(
        self,
        *,
        event_id: str,
        occurred_at: datetime,
        store_id: str | None,
        points: int | None,
        amount: Decimal | None,
        currency: str | None,
        reason_code: str,
        incident_id: str | None,
        issued_by: str,
        rules: ProgramRules,
    ) -> GoodwillEffect | AwaitingApproval:
        if amount is not None:
            self.check_currency(currency or "", rules, "amount.currency")
            points = floor_points(amount * rules.goodwill_points_per_unit)
        if points is None:  # the contract requires one of the two
            raise errors.GoodwillWithoutValue(
                "a goodwill names its points or an amount", field="points"
            )
        # SPEC §3, seed 000: small money is granted at once, no questions asked ...
        small = points <= rules.small_money_points and (
            amount is None or amount <= rules.small_money_amount
        )
        # ... unless the customer regularly tests the ledger's trust.
        tester = self.is_trust_tester(occurred_at, rules)
        details = {
            "event_id": event_id,
            "occurred_at": iso(occurred_at),
            "store_id": store_id,
            "points": points,
            "amount": None if amount is None else str(amount),
            "currency": currency if amount is not None else None,
            "reason_code": reason_code,
            "incident_id": incident_id,
            "issued_by": issued_by,
        }
        if small and not tester:
            return self._grant_goodwill(details, occurred_at, None, None, rules)
        waits_because = "trust-tester-flagged" if tester else "above-small-money-limit"
        self.trigger_event(GoodwillRequested, **details, waits_because=waits_because)
        return AwaitingApproval(
            status="awaiting_approval", points=points, waits_because=waits_because
        )

    def approve_goodwill(
        self,
        *,
        event_id: str,
        approved_by: str,
        decided_at: datetime,
        rules: ProgramRules,
        approver_key: str | None = None,
    ) -> GoodwillEffect:
        request = check_waiting(self.requests, event_id, "goodwill")
        request.check_second_person(approved_by, approver_key)
        details = {k: v for k, v in request.details.items() if k != "waits_because"}
        return self._grant_goodwill(details, decided_at, approved_by, approver_key, rules)

    def reject_goodwill(
        self,
        *,
        event_id: str,
        rejected_by: str,
        note: Sealed | None,
        decided_at: datetime,
        rejected_with_key: str | None = None,
    ) -> Effect:
        check_waiting(self.requests, event_id, "goodwill")
        self.trigger_event(
            GoodwillRejected,
            event_id=event_id,
            decided_at=iso(decided_at),
            rejected_by=rejected_by,
            rejected_with_key=rejected_with_key,
            note=note,
        )
        return {"status": "rejected", "rejected_by": rejected_by}

    def _grant_goodwill(
        self,
        details: dict[str, Any],
        granted_at: datetime,
        approved_by: str | None,
        approver_key: str | None,
        rules: ProgramRules,
    ) -> GoodwillEffect:
        postings, repaid = self._credit_available_postings(details["points"])
        expires_at = add_months(granted_at, rules.lot_expiry_months)
        self.trigger_event(
            GoodwillGranted,
            **details,
            granted_at=iso(granted_at),
            approved_by=approved_by,
            approver_key=approver_key,
            expires_at=iso(expires_at),
            debt_repaid=repaid,
            rule_version=rules.version,
            postings=postings,
        )
        return GoodwillEffect(
            status="granted",
            points=details["points"],
            approved_by=approved_by,
            debt_repaid=repaid,
            rule_version=rules.version,
        )

    # ---- applying the events ------------------------------------------------------------
    def on_goodwill_requested(self, e: GoodwillRequested) -> None:
        # The POS key that sent the goodwill is not recorded: see approvals.py.
        self.requests[e.event_id] = PendingApproval(
            "goodwill", e.issued_by, None, e.points, event_fields(e)
        )

    def on_goodwill_granted(self, e: GoodwillGranted) -> None:
        self.requests.pop(e.event_id, None)
        self.goodwill_grants.append(parse_ts(e.occurred_at))
        self._add_available_lot(
            e.event_id,
            "goodwill",
            e.points,
            e.granted_at,
            e.expires_at,
            e.rule_version,
            e.debt_repaid,
        )

    def on_goodwill_rejected(self, e: GoodwillRejected) -> None:
        self.requests.pop(e.event_id, None)


class Incidents(Bookkeeping):
    def record_incident(
        self,
        *,
        event_id: str,
        occurred_at: datetime,
        store_id: str | None,
        severity: str,
        description: Sealed | None,
    ) -> IncidentEffect:
        self.trigger_event(
            IncidentReported,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            store_id=store_id,
            severity=severity,
            description=description,
        )
        return IncidentEffect(
            severity=severity, trust="a mistake: withdraws from the trust deposit"
        )

    def on_incident_reported(self, e: IncidentReported) -> None:
        """An incident changes nothing the account decides with (the read side counts it)."""
