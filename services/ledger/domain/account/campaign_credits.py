"""Campaign points on a purchase (SPEC §9): part of the purchase's lot, named by campaign.

A purchase that meets campaigns earns, right after its own `PurchaseRecorded`, one
`CampaignPointsGranted` that adds the campaigns' points to the purchase's lot (pending
like it, maturing and expiring with it, so a refund reverses them in proportion under
the lot's rules) and lists them per campaign. It also carries a stamp card's progress
(a stamp earns no points until the card is full), which the account keeps per campaign,
with the points each campaign gave the customer (its per-customer cap).

Where the customer stands (`standing_at`) is what the write side knows at the purchase:
the tier the purchase earned under, and the buyer ladder of SPEC §4 from the account's
own purchases before this one (docs/ARCHITECTURE.md "Campaigns" says how it differs
from the read side's segment).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.ledger.domain.account.bookkeeping import Bookkeeping
from services.ledger.domain.account.events import AccountEvent
from services.ledger.domain.campaigns.conditions import Standing
from services.ledger.domain.campaigns.engine import CampaignBook, CustomerUse
from services.ledger.domain.clock import add_months, iso
from services.ledger.domain.effects import PurchaseEffect
from services.ledger.domain.lots import ISSUED, PENDING, Postings, move
from services.ledger.domain.rules import ProgramRules
from services.ledger.domain.topics import ACCOUNT_EVENTS

CLIENT_PURCHASES = 3  # SPEC §4: a client has >= 3 purchases in rolling 12 months


class CampaignPointsGranted(AccountEvent):
    TOPIC = ACCOUNT_EVENTS["CampaignPointsGranted"]
    class_version = 1
    event_id: str
    occurred_at: str
    lot_id: str
    points: int
    campaigns: list[dict[str, Any]]  # [{"campaign_id", "points", "kind", "stamps"?, ...}]
    postings: Postings


class CampaignCredits(Bookkeeping):
    def campaign_use(self) -> CustomerUse:
        # Accounts rebuilt from stores older than campaigns have no attribute yet.
        if "campaigns_used" not in self.__dict__:
            self.campaigns_used = CustomerUse()
        use: CustomerUse = self.campaigns_used
        return use

    def standing_at(
        self,
        moment: datetime,
        tier: str,
        before: str,
        open_personal: Callable[[Any], str | None] = lambda sealed: None,
    ) -> Standing:
        """The customer at a purchase (`before`: its event_id, not counted)."""
        since = add_months(moment, -12)
        earlier = len(self.purchases) - (before in self.purchases)
        # The purchases in (since, moment] from the running spend index (`running.py`),
        # less the purchase itself, which occurred at `moment`.
        times, late = self.spend.times, self.spend.late
        recent = bisect_right(times, moment) - bisect_right(times, since)
        recent += sum(1 for when, _ in late.values() if since < when <= moment)
        recent -= before in self.purchases
        if not earlier:
            segment = "visitor"
        elif recent < CLIENT_PURCHASES:
            segment = "buyer"
        elif any(
            lot.source == "referral" and since < lot.earned_at <= moment
            for lot in self.lots.values()
        ):
            segment = "advocate"
        else:
            segment = "client"
        return Standing(
            tier=tier,
            segment=segment,
            purchases=earlier,
            # Sealed under the customer's key (SPEC §11): opened by the application.
            birthday=open_personal(self.__dict__.get("birthday")),
        )

    def credit_campaigns(
        self,
        book: CampaignBook,
        doc: Mapping[str, Any],
        moment: datetime,
        purchase_effect: PurchaseEffect,
        rules: ProgramRules,
        open_personal: Callable[[Any], str | None] = lambda sealed: None,
    ) -> PurchaseEffect:
        """The campaigns' points for the purchase just recorded (`purchase_effect` is its
        answer); returns the answer with `campaigns` (an empty list when none met)."""
        lot_id = purchase_effect.lot_id
        tier = purchase_effect.tier
        earn_rate = rules.earn_rate * Decimal(purchase_effect.multiplier)
        grants = book.credits_for(
            doc,
            moment,
            lambda: self.standing_at(moment, tier, before=lot_id, open_personal=open_personal),
            self.campaign_use(),
            base_points=purchase_effect.points,
            earn_rate=earn_rate,
        )
        if not grants:
            return replace(purchase_effect, campaigns=[])
        points = sum(g.points for g in grants)
        postings: Postings = []
        move(postings, ISSUED, PENDING, points)
        campaigns = [g.document() for g in grants]
        self.trigger_event(
            CampaignPointsGranted,
            event_id=doc["event_id"],
            occurred_at=iso(moment),
            lot_id=lot_id,
            points=points,
            campaigns=campaigns,
            postings=postings,
        )
        book.record(grants, event_id=doc["event_id"], customer_id=self.customer_id)
        return replace(
            purchase_effect,
            points=purchase_effect.points + points,
            purchase_points=purchase_effect.points,
            campaigns=campaigns,
        )

    def on_campaign_points_granted(self, e: CampaignPointsGranted) -> None:
        use = self.campaign_use()
        for grant in e.campaigns:
            cid = grant["campaign_id"]
            use.points[cid] = use.points.get(cid, 0) + grant["points"]
            if "stamps" in grant:
                use.stamps[cid] = grant["stamps"]
        if e.points:
            lot = self.lots[e.lot_id]
            self.books.leave(lot)
            lot.points += e.points
            self.books.enter(lot)
            purchase = self.purchases.get(e.lot_id)
            if purchase is not None:
                purchase.points += e.points
