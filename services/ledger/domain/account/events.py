"""The customer account's events: what the store holds, one class per fact.

Each event carries what applying it needs (points, allocations, postings), so a replay
never consults the rules again. These classes are the stored contract: their `TOPIC`
comes from `domain.topics` (never from where the class lives), and each has a
`class_version`. Change a stored shape only with a new `class_version` and an
`upcast_v<n>_v<n+1>` static method on the class; `schemas/stored/` documents the shapes
(`python -m services.ledger.domain.stored_schemas` writes it).
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate

from services.ledger.domain.lots import Allocation, Postings
from services.ledger.domain.privacy import upcast_plain
from services.ledger.domain.topics import ACCOUNT_EVENTS

# A personal field (domain/privacy.py): a sealed value since version 2; the rows stored
# before hold the plain text (`str`), which the upcaster reads as `{"plain": text}`.
Personal = dict[str, Any] | str | None


class AccountEvent(Aggregate.Event):
    """The base of the account's events: applied by the handler that the account's
    `apply` (a `singledispatchmethod`) registers for the event's class."""

    def apply(self, aggregate: Any) -> None:
        aggregate.handler_for(type(self))(aggregate, self)


class Opened(Aggregate.Created, AccountEvent):
    """The account's first event (its state is set up by `CustomerAccount.__init__`)."""

    TOPIC = ACCOUNT_EVENTS["Opened"]
    class_version = 1
    customer_id: str

    def apply(self, aggregate: Any) -> None:
        """`__init__` set the state up; nothing else to apply."""


class PurchaseRecorded(AccountEvent):
    TOPIC = ACCOUNT_EVENTS["PurchaseRecorded"]
    class_version = 1
    event_id: str
    occurred_at: str
    store_id: str | None
    receipt_id: str
    amount: str
    currency: str
    points: int
    tier: str
    multiplier: str
    rule_version: int
    matures_at: str
    expires_at: str
    postings: Postings
    # SPEC §9 (seed 004 §3): the part paid with points, which earns nothing. Added after
    # the golden store: an event stored without it reads back as None (paid all in money).
    points_tender: str | None = None


class RefundRecorded(AccountEvent):
    TOPIC = ACCOUNT_EVENTS["RefundRecorded"]
    class_version = 1
    event_id: str
    occurred_at: str
    store_id: str | None
    original_event_id: str
    amount: str
    currency: str
    points_reversed: int
    takes: list[list[Any]]  # [lot_id, "pending" | "available" | "expired" | "clawback", points]
    debt_added: int
    rule_version: int
    postings: Postings


class ReferralRegistered(AccountEvent):
    """On the referee's account."""

    TOPIC = ACCOUNT_EVENTS["ReferralRegistered"]
    class_version = 1
    event_id: str
    occurred_at: str
    store_id: str | None
    referrer_id: str


class ReferralMade(AccountEvent):
    """On the referrer's account."""

    TOPIC = ACCOUNT_EVENTS["ReferralMade"]
    class_version = 1
    event_id: str
    occurred_at: str
    referee_id: str


class ReferralRewarded(AccountEvent):
    TOPIC = ACCOUNT_EVENTS["ReferralRewarded"]
    class_version = 1
    lot_id: str
    occurred_at: str
    referee_id: str
    points: int
    expires_at: str
    debt_repaid: int
    rule_version: int
    postings: Postings


class ReviewRecorded(AccountEvent):
    TOPIC = ACCOUNT_EVENTS["ReviewRecorded"]
    class_version = 2  # 2: `comment` sealed under the customer's key
    event_id: str
    occurred_at: str
    store_id: str | None
    rating: int
    touchpoint: str
    comment: Personal
    receipt_id: str | None
    points: int
    expires_at: str
    no_reward_reason: str | None
    debt_repaid: int
    rule_version: int
    postings: Postings

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        upcast_plain(state, "comment")


class GoodwillRequested(AccountEvent):
    TOPIC = ACCOUNT_EVENTS["GoodwillRequested"]
    class_version = 1
    event_id: str
    occurred_at: str
    store_id: str | None
    points: int
    amount: str | None
    currency: str | None
    reason_code: str
    incident_id: str | None
    issued_by: str
    waits_because: str


class GoodwillGranted(AccountEvent):
    TOPIC = ACCOUNT_EVENTS["GoodwillGranted"]
    class_version = 2  # 2: `approver_key`
    event_id: str
    occurred_at: str
    granted_at: str
    store_id: str | None
    points: int
    amount: str | None
    currency: str | None
    reason_code: str
    incident_id: str | None
    issued_by: str
    approved_by: str | None
    expires_at: str
    debt_repaid: int
    rule_version: int
    postings: Postings
    approver_key: str | None = None  # the API key's name (never the secret)

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["approver_key"] = None  # not recorded before version 2


class GoodwillRejected(AccountEvent):
    TOPIC = ACCOUNT_EVENTS["GoodwillRejected"]
    class_version = 3  # 2: `note` sealed under the customer's key; 3: `rejected_with_key`
    event_id: str
    decided_at: str
    rejected_by: str
    note: Personal
    rejected_with_key: str | None = None  # the API key's name (never the secret)

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        upcast_plain(state, "note")

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state["rejected_with_key"] = None


class IncidentReported(AccountEvent):
    TOPIC = ACCOUNT_EVENTS["IncidentReported"]
    class_version = 2  # 2: `description` sealed under the customer's key
    event_id: str
    occurred_at: str
    store_id: str | None
    severity: str
    description: Personal

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        upcast_plain(state, "description")


class PointsRedeemed(AccountEvent):
    TOPIC = ACCOUNT_EVENTS["PointsRedeemed"]
    class_version = 1
    event_id: str
    occurred_at: str
    store_id: str | None
    points: int
    reward_id: str
    allocation: Allocation
    postings: Postings


class RedemptionCancelled(AccountEvent):
    """Version 2 (SPEC §8): `expired` is the part of the allocation whose lot had expired
    by the cancellation: it goes back to those lots as expired, not as available. A
    version-1 cancellation gave everything back as available (the sweep then expired it)."""

    TOPIC = ACCOUNT_EVENTS["RedemptionCancelled"]
    class_version = 2
    event_id: str
    occurred_at: str
    store_id: str | None
    original_event_id: str
    points: int
    allocation: Allocation
    debt_repaid: int
    postings: Postings
    expired: Allocation
    ADDED_IN_VERSION = {"expired": 2}  # schemas/stored: a version-1 state has no `expired`

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["expired"] = []


class PointsMatured(AccountEvent):
    TOPIC = ACCOUNT_EVENTS["PointsMatured"]
    class_version = 1
    lot_id: str
    occurred_at: str
    points: int
    debt_repaid: int
    referral_reward_to: str | None
    postings: Postings


class PointsExpired(AccountEvent):
    TOPIC = ACCOUNT_EVENTS["PointsExpired"]
    class_version = 1
    lot_id: str
    occurred_at: str
    points: int
    postings: Postings


class AdjustmentRequested(AccountEvent):
    TOPIC = ACCOUNT_EVENTS["AdjustmentRequested"]
    class_version = 1
    adjustment_id: str
    occurred_at: str
    points: int
    reason: str
    requested_by: str
    requested_with_key: str | None  # the API key's id: approval needs another key


class PointsAdjusted(AccountEvent):
    TOPIC = ACCOUNT_EVENTS["PointsAdjusted"]
    class_version = 2  # 2: the keys of who asked and who approved
    adjustment_id: str
    occurred_at: str
    points: int
    reason: str
    requested_by: str
    approved_by: str | None
    allocation: Allocation
    debt_added: int
    debt_repaid: int
    expires_at: str | None
    rule_version: int
    postings: Postings
    requested_with_key: str | None = None  # the API key's name (never the secret)
    approver_key: str | None = None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["requested_with_key"] = state["approver_key"] = None


class AdjustmentRejected(AccountEvent):
    TOPIC = ACCOUNT_EVENTS["AdjustmentRejected"]
    class_version = 2  # 2: `rejected_with_key`
    adjustment_id: str
    decided_at: str
    rejected_by: str
    note: str | None
    rejected_with_key: str | None = None  # the API key's name (never the secret)

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["rejected_with_key"] = None


def event_fields(e: Any) -> dict[str, Any]:
    """The business fields of a stored event (no originator id, version or timestamp)."""
    skip = {"originator_id", "originator_version", "timestamp"}
    return {k: v for k, v in vars(e).items() if k not in skip}


class FollowUpParked(AccountEvent):
    """A follow-up (refund, redemption cancel) whose original the ledger has not seen yet
    waits on the account (SPEC §8 "Out of order"); the event as received is the intake
    record's. On the account, so that the original's arrival and the parking are one
    account's versions: a writer of either sees the other or loses the race."""

    TOPIC = ACCOUNT_EVENTS["FollowUpParked"]
    class_version = 1
    event_id: str
    customer_id: str
    type: str
    original_event_id: str
    occurred_at: str
    park_until: str  # occurred_at + park_days: the sweep refuses it after this


class FollowUpReleased(AccountEvent):
    """A parked follow-up stops waiting: applied after its original (`applied`), refused
    then (`refused`), or refused because its original never came (`expired`)."""

    TOPIC = ACCOUNT_EVENTS["FollowUpReleased"]
    class_version = 1
    event_id: str
    original_event_id: str
    verdict: str
    decided_at: str
