"""What an account remembers between events, and the base every part of the account shares.

The account is one aggregate (`CustomerAccount` in `aggregate.py`) assembled from one part
per concept (purchases, referrals, ...). Each part is a plain class over `AccountState`:
it reads and changes the state below and triggers the account's events; the aggregate
puts the parts together with the library's `Aggregate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from services.ledger.domain.account.running import LotIndex, SpendIndex
from services.ledger.domain.approvals import PendingApproval
from services.ledger.domain.lots import Allocation, Lot
from services.ledger.domain.privacy import Sealed

Effect = dict[str, Any]  # what a command answers (the HTTP and Kafka edges send it back)


@dataclass(slots=True)
class Purchase:
    event_id: str
    occurred_at: datetime
    amount: Decimal
    lot_id: str
    points: int
    refunded: Decimal = Decimal("0")
    points_reversed: int = 0


@dataclass(slots=True)
class Redemption:
    points: int
    allocation: Allocation
    cancelled: bool = False
    occurred_at: str | None = None  # as recorded: a cancel may not be dated before it


@dataclass(slots=True)
class Hold:
    """An open checkout hold (SPEC §9): `allocation` is what it set aside, by lot."""

    points: int
    allocation: Allocation
    occurred_at: datetime
    expires_at: datetime


class AccountState:
    """The account's state, as `CustomerAccount.__init__` sets it up."""

    customer_id: str
    lots: dict[str, Lot]
    debt: int
    purchases: dict[str, Purchase]
    receipts: set[str]
    redemptions: dict[str, Redemption]
    referred_by: str | None
    referral_rewarded: bool
    referrals_made: list[datetime]
    goodwill_grants: list[datetime]
    requests: dict[str, PendingApproval]
    reviews_rewarded: int
    adjustment_ids: set[str]
    enrolled_at: str | None  # SPEC §9: once per customer
    birthday: Sealed | None  # "--MM-DD" from the enrolment, sealed (`Sealer.open` reads it)
    holds: dict[str, Hold]  # the open holds only (a closed one leaves)
    closed_holds: set[str]  # holds captured, voided or released: a follow-up is refused
    parked: dict[str, Any]  # event id -> parking.ParkedFollowUp
    # Derived from the above as the events are applied, never stored (`running.py`).
    books: LotIndex
    spend: SpendIndex

    if TYPE_CHECKING:  # provided by the library's `Aggregate`, which the account also is

        def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None: ...
