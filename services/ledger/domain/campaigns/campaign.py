"""A campaign: data, not code (SPEC §9). Its terms, its maker-checker life and its budget.

    create (awaiting_approval) -> approve by another person (active) -> end (ended)
                               -> reject (rejected)

One `Campaign` aggregate per campaign holds its terms and every grant made under it
(`PointsGranted`), so that its budget is one consistent row of the store: two writers
granting from the same budget both append the campaign's next version, the store's
unique (originator_id, version) key refuses the second, and its batch is re-run on the
fresh budget (`Ledger._append`). The budget can therefore never be overrun, under any
interleaving. The per-customer cap is kept by the customer's account, which is already
the unit of consistency of a customer (`account/campaign_credits.py`).

The `CampaignCatalogue` lists every campaign's id, so that a batch finds the campaigns
without a query of its own; it is appended with the campaign's creation, in the same
transaction.

In force (like rules, SPEC §8): a purchase earns under a campaign when its `occurred_at`
is at or after the later of `starts_at` and the approval, and before the earlier of
`ends_at` and the end; a late purchase earns what it would have earned on time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from services.ledger.domain import errors, topics
from services.ledger.domain.approvals import PendingApproval
from services.ledger.domain.campaigns.conditions import Condition, compile_condition
from services.ledger.domain.campaigns.effects import CampaignEffect, parse_effect
from services.ledger.domain.clock import iso, parse_ts

AWAITING, ACTIVE, REJECTED, ENDED = "awaiting_approval", "active", "rejected", "ended"


class CampaignNotAwaiting(errors.LedgerError):
    slug = "not-pending"
    status = 409
    title = "Nothing is waiting for a decision under this id"


class UnknownCampaign(errors.LedgerError):
    slug = "unknown-campaign"
    status = 404
    title = "No campaign is known under this id"


class InvalidCampaign(errors.LedgerError):
    slug = "invalid-campaign"
    title = "The campaign's terms cannot be applied"


@dataclass(frozen=True)
class Terms:
    """A campaign's terms, as created (and stored in `Campaign.Created`)."""

    campaign_id: str
    name: str
    condition: str
    effect: dict[str, Any]
    starts_at: datetime
    ends_at: datetime
    budget_points: int | None
    per_customer_cap: int | None
    announced: bool

    def check(self) -> tuple[Condition, CampaignEffect]:
        """The compiled condition and effect; refuses what cannot be applied."""
        if self.ends_at <= self.starts_at:
            raise InvalidCampaign("ends_at must be after starts_at", field="ends_at")
        return compile_condition(self.condition), parse_effect(self.effect)


class Campaign(Aggregate):
    TOPIC = topics.CAMPAIGN

    class Event(Aggregate.Event):
        """The base of the campaign's events."""

    class Created(Aggregate.Created, Event):
        TOPIC = topics.CAMPAIGN_EVENTS["Created"]
        class_version = 1
        campaign_id: str
        name: str
        condition: str
        effect: dict[str, Any]
        starts_at: str
        ends_at: str
        budget_points: int | None
        per_customer_cap: int | None
        announced: bool
        created_by: str
        created_with_key: str | None
        created_at: str

    class Approved(Event):
        TOPIC = topics.CAMPAIGN_EVENTS["Approved"]
        class_version = 1
        approved_by: str
        approver_key: str | None
        approved_at: str

    class Rejected(Event):
        TOPIC = topics.CAMPAIGN_EVENTS["Rejected"]
        class_version = 1
        rejected_by: str
        rejected_with_key: str | None  # the API key's name (never the secret)
        note: str | None
        rejected_at: str

    class Ended(Event):
        TOPIC = topics.CAMPAIGN_EVENTS["Ended"]
        class_version = 1
        ended_by: str
        ended_with_key: str | None
        ended_at: str

    class PointsGranted(Event):
        """Points granted under the campaign to one purchase: what its budget has used."""

        TOPIC = topics.CAMPAIGN_EVENTS["PointsGranted"]
        class_version = 1
        event_id: str
        customer_id: str
        points: int

    @staticmethod
    def create_id(campaign_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"loyalty-ledger:campaign:{campaign_id}")

    @event(Created)
    def __init__(
        self,
        campaign_id: str,
        name: str,
        condition: str,
        effect: dict[str, Any],
        starts_at: str,
        ends_at: str,
        budget_points: int | None,
        per_customer_cap: int | None,
        announced: bool,
        created_by: str,
        created_with_key: str | None,
        created_at: str,
    ) -> None:
        self.terms = Terms(
            campaign_id=campaign_id,
            name=name,
            condition=condition,
            effect=effect,
            starts_at=parse_ts(starts_at),
            ends_at=parse_ts(ends_at),
            budget_points=budget_points,
            per_customer_cap=per_customer_cap,
            announced=announced,
        )
        self.request = PendingApproval(
            kind="campaign",
            requested_by=created_by,
            requested_with_key=created_with_key,
            points=budget_points or 0,
        )
        self.created_at = created_at
        self.status = AWAITING
        self.decided_by: str | None = None
        self.decided_at: str | None = None
        self.ended_at: datetime | None = None
        self.used = 0
        self.customers: set[str] = set()
        self.events_matched = 0
        self._compiled: tuple[Condition, CampaignEffect] | None = None

    # ---- reading ---------------------------------------------------------------------
    @property
    def campaign_id(self) -> str:
        return self.terms.campaign_id

    def compiled(self) -> tuple[Condition, CampaignEffect]:
        if self._compiled is None:
            self._compiled = self.terms.check()
        return self._compiled

    def in_force_at(self, moment: datetime) -> bool:
        if self.status not in (ACTIVE, ENDED) or self.decided_at is None:
            return False
        since = max(self.terms.starts_at, parse_ts(self.decided_at))
        until = (
            self.terms.ends_at if self.ended_at is None else min(self.terms.ends_at, self.ended_at)
        )
        return since <= moment < until

    def budget_left(self) -> int | None:
        budget = self.terms.budget_points
        return None if budget is None else max(budget - self.used, 0)

    def summary(self) -> dict[str, Any]:
        t = self.terms
        return {
            "campaign_id": t.campaign_id,
            "name": t.name,
            "status": self.status,
            "condition": t.condition,
            "effect": t.effect,
            "starts_at": iso(t.starts_at),
            "ends_at": iso(t.ends_at),
            "ended_at": iso(self.ended_at) if self.ended_at else None,
            "budget_points": t.budget_points,
            "per_customer_cap": t.per_customer_cap,
            "announced": t.announced,
            "created_by": self.request.requested_by,
            "created_at": self.created_at,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "budget_used": self.used,
            "budget_left": self.budget_left(),
            "customers": len(self.customers),
            "events_matched": self.events_matched,
            "version": self.version,
        }

    # ---- commands --------------------------------------------------------------------
    def _check_awaiting(self) -> None:
        if self.status != AWAITING:
            raise CampaignNotAwaiting(
                f"campaign {self.campaign_id!r} is {self.status}, not waiting for a decision"
            )

    def approve(self, *, approved_by: str, approver_key: str | None, now: datetime) -> None:
        self._check_awaiting()
        self.request.check_second_person(approved_by, approver_key)
        self._approved(approved_by=approved_by, approver_key=approver_key, approved_at=iso(now))

    def reject(
        self,
        *,
        rejected_by: str,
        note: str | None,
        now: datetime,
        rejected_with_key: str | None = None,
    ) -> None:
        self._check_awaiting()
        self._rejected(
            rejected_by=rejected_by,
            rejected_with_key=rejected_with_key,
            note=note,
            rejected_at=iso(now),
        )

    def end(self, *, ended_by: str, now: datetime, ended_with_key: str | None = None) -> None:
        """No purchase that occurs from `now` on earns under the campaign."""
        if self.status != ACTIVE:
            raise CampaignNotAwaiting(f"campaign {self.campaign_id!r} is {self.status}, not active")
        self._ended(ended_by=ended_by, ended_with_key=ended_with_key, ended_at=iso(now))

    def grant(self, *, event_id: str, customer_id: str, points: int) -> None:
        left = self.budget_left()
        if left is not None and points > left:  # the engine never asks: a bug, not a refusal
            raise errors.BooksOutOfBalance(
                f"campaign {self.campaign_id!r}: {points} points asked, {left} left in its budget"
            )
        self._points_granted(event_id=event_id, customer_id=customer_id, points=points)

    # ---- applying ----------------------------------------------------------------------
    @event(Approved)
    def _approved(self, approved_by: str, approver_key: str | None, approved_at: str) -> None:
        self.status = ACTIVE
        self.decided_by = approved_by
        self.decided_at = approved_at

    @event(Rejected)
    def _rejected(
        self, rejected_by: str, rejected_with_key: str | None, note: str | None, rejected_at: str
    ) -> None:
        self.status = REJECTED
        self.decided_by = rejected_by
        self.decided_at = rejected_at

    @event(Ended)
    def _ended(self, ended_by: str, ended_with_key: str | None, ended_at: str) -> None:
        self.status = ENDED
        self.ended_at = parse_ts(ended_at)

    @event(PointsGranted)
    def _points_granted(self, event_id: str, customer_id: str, points: int) -> None:
        self.used += points
        self.customers.add(customer_id)
        self.events_matched += 1


class CampaignCatalogue(Aggregate):
    """Every campaign's id, in the order they were created."""

    TOPIC = topics.CAMPAIGN_CATALOGUE

    class Event(Aggregate.Event):
        """The base of the catalogue's events."""

    class Opened(Aggregate.Created, Event):
        TOPIC = topics.CAMPAIGN_CATALOGUE_EVENTS["Opened"]
        class_version = 1

    Created = Opened

    class Listed(Event):
        TOPIC = topics.CAMPAIGN_CATALOGUE_EVENTS["Listed"]
        class_version = 1
        campaign_id: str

    @staticmethod
    def create_id() -> UUID:
        return uuid5(NAMESPACE_URL, "loyalty-ledger:campaigns")

    @event(Opened)
    def __init__(self) -> None:
        self.campaign_ids: list[str] = []

    @event(Listed)
    def add(self, campaign_id: str) -> None:
        self.campaign_ids.append(campaign_id)
