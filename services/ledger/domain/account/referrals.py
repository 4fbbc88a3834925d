"""Referrals (SPEC §3): a new customer names a referrer; both accounts record it, and the
referrer is rewarded once the referee's first qualifying purchase matures (`maturity.py`
names the referrer; the application then calls `reward_referral`)."""

from __future__ import annotations

from datetime import datetime

from services.ledger.domain import errors
from services.ledger.domain.account.bookkeeping import Bookkeeping
from services.ledger.domain.account.events import (
    ReferralMade,
    ReferralRegistered,
    ReferralRewarded,
)
from services.ledger.domain.account.state import Effect
from services.ledger.domain.clock import add_months, days, iso, parse_ts
from services.ledger.domain.effects import ReferralEffect
from services.ledger.domain.lots import REFERRAL_LOT
from services.ledger.domain.rules import ProgramRules


class Referrals(Bookkeeping):
    def check_referral(self, referrer: Referrals, moment: datetime, rules: ProgramRules) -> None:
        if referrer.customer_id == self.customer_id:
            raise errors.SelfReferral("a customer cannot refer themselves", field="referrer_id")
        if self.referred_by is not None:
            raise errors.AlreadyReferred(
                f"customer {self.customer_id!r} was already referred by {self.referred_by!r}",
                field="customer_id",
            )
        if self.purchases:
            raise errors.RefereeNotNew(
                f"customer {self.customer_id!r} has already purchased; a referral is for new "
                "customers",
                field="customer_id",
            )
        since = moment - days(rules.referral_cap_period_days)
        recent = sum(1 for made in referrer.referrals_made if since < made <= moment)
        if recent >= rules.referral_cap_per_period:
            raise errors.ReferralCapReached(
                f"{referrer.customer_id!r} already referred {recent} customers in the last "
                f"{rules.referral_cap_period_days} days (cap {rules.referral_cap_per_period})",
                field="referrer_id",
            )

    def record_referral(
        self,
        *,
        referrer: Referrals,
        event_id: str,
        occurred_at: datetime,
        store_id: str | None,
        rules: ProgramRules,
    ) -> ReferralEffect:
        """The referee (self) names a referrer; both accounts record it."""
        self.check_referral(referrer, occurred_at, rules)
        self.trigger_event(
            ReferralRegistered,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            store_id=store_id,
            referrer_id=referrer.customer_id,
        )
        referrer.trigger_event(
            ReferralMade,
            event_id=event_id,
            occurred_at=iso(occurred_at),
            referee_id=self.customer_id,
        )
        return ReferralEffect(
            referrer_id=referrer.customer_id,
            reward_points=rules.referral_reward_points,
            reward_status="waiting for the referee's first purchase to mature",
        )

    def reward_referral(
        self, *, referee_id: str, occurred_at: datetime, rules: ProgramRules
    ) -> Effect:
        points = rules.referral_reward_points
        lot_id = REFERRAL_LOT.format(referee_id=referee_id)
        expires_at = add_months(occurred_at, rules.lot_expiry_months)
        postings, repaid = self._credit_available_postings(points)
        self.trigger_event(
            ReferralRewarded,
            lot_id=lot_id,
            occurred_at=iso(occurred_at),
            referee_id=referee_id,
            points=points,
            expires_at=iso(expires_at),
            debt_repaid=repaid,
            rule_version=rules.version,
            postings=postings,
        )
        return {"lot_id": lot_id, "points": points, "debt_repaid": repaid}

    # ---- applying the events ------------------------------------------------------------
    def on_referral_registered(self, e: ReferralRegistered) -> None:
        self.referred_by = e.referrer_id

    def on_referral_made(self, e: ReferralMade) -> None:
        self.referrals_made.append(parse_ts(e.occurred_at))

    def on_referral_rewarded(self, e: ReferralRewarded) -> None:
        self._add_available_lot(
            e.lot_id,
            "referral",
            e.points,
            e.occurred_at,
            e.expires_at,
            e.rule_version,
            e.debt_repaid,
        )
