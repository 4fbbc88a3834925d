"""The campaigns in force for one unit of work, and what they grant a purchase (SPEC §9).

`CampaignBook` holds the approved campaigns a batch loaded. For each purchase,
`credits_for` matches every campaign in force at the purchase's `occurred_at` (creation
order), computes its points from the effect, and cuts them to what the campaign's budget
and the customer's cap have left. The campaigns it granted from are `touched`: the
batch saves them with the accounts, in one transaction (see `campaign.py` for why the
budget then holds under any interleaving).

The same code runs the dry run (`simulate.py`) over stored history, on copies: a
`CampaignBook` over campaigns that are never saved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.ledger.domain.campaigns.campaign import Campaign
from services.ledger.domain.campaigns.conditions import Standing, facts


@dataclass(frozen=True)
class Grant:
    """One campaign's part of a purchase's credit."""

    campaign_id: str
    kind: str
    points: int
    announced: bool
    stamps: int | None = None  # the card's stamps after this purchase (stamp campaigns)
    capped: bool = False  # cut by the budget or the customer's cap

    def document(self) -> dict[str, Any]:
        found: dict[str, Any] = {"campaign_id": self.campaign_id, "points": self.points}
        found["kind"] = self.kind
        if not self.announced:
            found["surprise"] = True  # seed 004 §6: not announced, aimed at a segment
        if self.stamps is not None:
            found["stamps"] = self.stamps
        if self.capped:
            found["capped"] = True
        return found


@dataclass
class CustomerUse:
    """What a customer has had from each campaign: points (for the cap) and stamps."""

    points: dict[str, int] = field(default_factory=dict)
    stamps: dict[str, int] = field(default_factory=dict)


def category_spend(doc: Mapping[str, Any], category: str | None) -> Decimal:
    return sum(
        (
            Decimal(item["unit_price"]["value"]) * item["qty"]
            for item in doc.get("items") or ()
            if item.get("category") == category
        ),
        Decimal(0),
    )


class CampaignBook:
    def __init__(self, campaigns: Iterable[Campaign]) -> None:
        self.campaigns = [c for c in campaigns if c.status in ("active", "ended")]
        self.touched: dict[str, Campaign] = {}

    def __bool__(self) -> bool:
        return bool(self.campaigns)

    def credits_for(
        self,
        doc: Mapping[str, Any],
        moment: datetime,
        standing: Standing | Callable[[], Standing],
        use: CustomerUse,
        *,
        base_points: int,
        earn_rate: Decimal,
    ) -> list[Grant]:
        """The grants of every campaign in force at `moment` whose condition the purchase
        meets. `earn_rate` is the program's times the tier multiplier; `standing` may be
        how to find the customer, asked only by a condition on `customer`. Changes nothing."""
        in_force = [c for c in self.campaigns if c.in_force_at(moment)]
        if not in_force:
            return []
        seen = facts(doc, standing)
        grants = []
        for campaign in in_force:
            condition, effect = campaign.compiled()
            if effect.kind != "stamp" and campaign.budget_left() == 0:
                continue  # nothing left to give: not worth asking the condition
            if not condition.matches(seen):
                continue
            cid = campaign.campaign_id
            stamps = None
            if effect.kind == "stamp":
                stamps = use.stamps.get(cid, 0) + 1
                wanted = effect.points if stamps >= effect.stamps_needed else 0
                if wanted:
                    stamps = 0  # the card is full: the reward, and a new card
            else:
                wanted = effect.points_for(
                    base_points=base_points,
                    category_spend=category_spend(doc, effect.category),
                    earn_rate=earn_rate,
                )
            points = wanted
            left = campaign.budget_left()
            if left is not None:
                points = min(points, left)
            cap = campaign.terms.per_customer_cap
            if cap is not None:
                points = min(points, max(cap - use.points.get(cid, 0), 0))
            if points <= 0 and stamps is None:
                continue
            grants.append(
                Grant(
                    cid,
                    effect.kind,
                    max(points, 0),
                    campaign.terms.announced,
                    stamps,
                    capped=points < wanted,
                )
            )
        return grants

    def record(self, grants: list[Grant], *, event_id: str, customer_id: str) -> None:
        """Take the grants' points from their campaigns' budgets."""
        by_id = {c.campaign_id: c for c in self.campaigns}
        for grant in grants:
            if grant.points:
                campaign = by_id[grant.campaign_id]
                campaign.grant(event_id=event_id, customer_id=customer_id, points=grant.points)
                self.touched[grant.campaign_id] = campaign
