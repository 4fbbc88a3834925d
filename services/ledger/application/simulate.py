"""The dry run of a campaign (SPEC §9 "Dry run"): what it would have granted over a past
range of the stored history. Nothing is stored, nothing is locked.

It reads the accepted purchases' intake records (each keeps the event as received and
its answer: the tier and points it earned) in store order, up to the store's position
when it starts, and runs the same `CampaignBook` as the intake over a campaign that is
never saved, in force over the range: the budget and caps cut it exactly as they would
have, the customer's cap and stamp card starting empty (as if the campaign had run
alone). The customer's standing is rebuilt from the purchases read: their count and the
buyer ladder (a referral reward, which makes an advocate on the write side, is not
read: the dry run sees no advocates).
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from services.ledger.domain import topics
from services.ledger.domain.account.campaign_credits import CLIENT_PURCHASES
from services.ledger.domain.campaigns.campaign import Campaign, Terms
from services.ledger.domain.campaigns.conditions import Standing
from services.ledger.domain.campaigns.engine import CampaignBook, CustomerUse
from services.ledger.domain.clock import add_months, iso, parse_ts
from services.ledger.domain.rules import ProgramRules

RulesAt = Callable[[datetime], ProgramRules]

PAGE = 5_000
_ACCEPTED = topics.INTAKE_EVENTS["Accepted"]


@dataclass
class Simulation:
    points: int = 0
    customers: set[str] = field(default_factory=set)
    events_matched: int = 0
    events_read: int = 0
    budget_exhausted_at: str | None = None
    position: int = 0

    def document(self, start: datetime, end: datetime) -> dict[str, Any]:
        return {
            "from": iso(start),
            "to": iso(end),
            "points": self.points,
            "customers": len(self.customers),
            "events_matched": self.events_matched,
            "events_read": self.events_read,
            "budget_exhausted_at": self.budget_exhausted_at,
            "position": self.position,
        }


def dry_campaign(terms: Terms) -> Campaign:
    """The campaign as if created and approved before it starts; never saved."""
    campaign = Campaign(
        campaign_id=terms.campaign_id,
        name=terms.name,
        condition=terms.condition,
        effect=terms.effect,
        starts_at=iso(terms.starts_at),
        ends_at=iso(terms.ends_at),
        budget_points=terms.budget_points,
        per_customer_cap=terms.per_customer_cap,
        announced=terms.announced,
        created_by="dry run",
        created_with_key=None,
        created_at=iso(datetime(1970, 1, 1, tzinfo=UTC)),
    )
    campaign.approve(
        approved_by="dry run (no one)", approver_key=None, now=datetime(1970, 1, 1, tzinfo=UTC)
    )
    campaign.collect_events()  # never to be saved
    return campaign


class _Customer:
    __slots__ = ("times", "use")

    def __init__(self) -> None:
        self.times: list[datetime] = []
        self.use = CustomerUse()

    def standing(self, moment: datetime, tier: str) -> Standing:
        n = len(self.times)
        if not n:
            segment = "visitor"
        else:
            since = add_months(moment, -12)
            recent = bisect_right(self.times, moment) - bisect_right(self.times, since)
            segment = "client" if recent >= CLIENT_PURCHASES else "buyer"
        return Standing(tier=tier, segment=segment, purchases=n)


def simulate(
    recorder: Any, terms: Terms, start: datetime, end: datetime, rules_at: RulesAt
) -> Simulation:
    """What `terms` would have granted to the purchases that occurred in [start, end)."""
    campaign = dry_campaign(terms)
    campaign.compiled()  # refuses a bad condition before anything is read
    book = CampaignBook([campaign])
    result = Simulation(position=recorder.max_notification_id() or 0)
    customers: dict[str, _Customer] = {}
    after = 0
    while after < result.position:
        page = recorder.select_notifications(
            after + 1, PAGE, stop=result.position, topics=[_ACCEPTED]
        )
        if not page:
            break
        after = page[-1].id
        for notification in page:
            record = orjson.loads(notification.state)
            if record["type"] != "purchase":
                continue
            doc, effect = record["document"], record["effect"]
            moment = parse_ts(doc["occurred_at"])
            customer = customers.get(record["customer_id"])
            if customer is None:
                customer = customers[record["customer_id"]] = _Customer()
            if start <= moment < end:
                result.events_read += 1
                _grant(
                    book, campaign, result, customer, record, doc, effect, moment, rules_at(moment)
                )
            insort(customer.times, moment)
    return result


def _grant(
    book: CampaignBook,
    campaign: Campaign,
    result: Simulation,
    customer: _Customer,
    record: dict[str, Any],
    doc: dict[str, Any],
    effect: dict[str, Any],
    moment: datetime,
    rules: ProgramRules,
) -> None:
    base = effect.get("purchase_points", effect["points"])
    grants = book.credits_for(
        doc,
        moment,
        lambda: customer.standing(moment, effect["tier"]),
        customer.use,
        base_points=base,
        earn_rate=rules.earn_rate * Decimal(effect["multiplier"]),
    )
    if grants:
        result.events_matched += 1
    for grant in grants:
        cid = grant.campaign_id
        if grant.stamps is not None:
            customer.use.stamps[cid] = grant.stamps
        if grant.points:
            customer.use.points[cid] = customer.use.points.get(cid, 0) + grant.points
            campaign.grant(
                event_id=doc["event_id"], customer_id=record["customer_id"], points=grant.points
            )
            result.points += grant.points
            result.customers.add(record["customer_id"])
            left = campaign.budget_left()
            if left == 0 and result.budget_exhausted_at is None:
                result.budget_exhausted_at = iso(moment)
    campaign.collect_events()
