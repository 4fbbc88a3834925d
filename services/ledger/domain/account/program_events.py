"""The account's events of this round's program (SPEC §8 "Out of order", §9, §11):
erasure, enrolment, checkout holds, donations, opening balances, parked follow-ups. Same
rules as `events.py`: a stable topic from `domain.topics`, a `class_version` each."""

from __future__ import annotations

from typing import Any

from services.ledger.domain.account.events import AccountEvent
from services.ledger.domain.lots import Allocation, Postings
from services.ledger.domain.topics import ACCOUNT_EVENTS


class ErasureRequested(AccountEvent):
    """An admin asks to erase the customer's personal data (SPEC §11): waits for a second."""

    TOPIC = ACCOUNT_EVENTS["ErasureRequested"]
    class_version = 1
    request_id: str
    occurred_at: str
    requested_by: str
    requested_with_key: str | None
    reason: str  # why, by reference (a ticket), never personal data itself


class ErasureRejected(AccountEvent):
    TOPIC = ACCOUNT_EVENTS["ErasureRejected"]
    class_version = 1
    request_id: str
    decided_at: str
    rejected_by: str
    rejected_with_key: str | None  # the API key's name (never the secret)


class CustomerErased(AccountEvent):
    """The customer's key was deleted: their personal fields read as erased from now on.
    Carries no personal data; the books (lots, postings) are untouched."""

    TOPIC = ACCOUNT_EVENTS["CustomerErased"]
    class_version = 1
    request_id: str
    decided_at: str
    requested_by: str
    approved_by: str
    approver_key: str | None  # the API key's name (never the secret)


class CustomerEnrolled(AccountEvent):
    """SPEC §9: the customer joined the programme; the welcome points are available at
    once (`points` may be 0 when the programme gives none)."""

    TOPIC = ACCOUNT_EVENTS["CustomerEnrolled"]
    class_version = 1
    event_id: str
    occurred_at: str
    store_id: str | None
    channel: str | None
    birthday: dict[str, Any] | None  # "--MM-DD", sealed (SPEC §11); new, so never plain
    points: int
    expires_at: str
    debt_repaid: int
    rule_version: int
    postings: Postings


class PointsHeld(AccountEvent):
    """SPEC §9: a checkout hold: available points set aside (`customer:held`) until the
    hold is captured, voided or released at `expires_at`."""

    TOPIC = ACCOUNT_EVENTS["PointsHeld"]
    class_version = 1
    event_id: str
    occurred_at: str
    store_id: str | None
    points: int
    reward_id: str
    expires_at: str
    allocation: Allocation
    postings: Postings


class HoldCaptured(AccountEvent):
    """A hold's capture: `points` of it redeemed (from `allocation`), the rest released
    back to their lots (`released_allocation`), repaying debt first."""

    TOPIC = ACCOUNT_EVENTS["HoldCaptured"]
    class_version = 1
    event_id: str
    occurred_at: str
    store_id: str | None
    original_event_id: str
    points: int
    allocation: Allocation
    released: int
    released_allocation: Allocation
    debt_repaid: int
    postings: Postings


class HoldReleased(AccountEvent):
    """A hold given back whole: voided by the POS (`event_id` the void's) or expired
    (`event_id` None, recorded by the sweep)."""

    TOPIC = ACCOUNT_EVENTS["HoldReleased"]
    class_version = 1
    event_id: str | None
    occurred_at: str
    store_id: str | None
    original_event_id: str
    reason: str  # "voided" | "expired"
    points: int
    allocation: Allocation
    debt_repaid: int
    postings: Postings


class PointsDonated(AccountEvent):
    """SPEC §9 (seed 004 §10): available points given to a charity's account."""

    TOPIC = ACCOUNT_EVENTS["PointsDonated"]
    class_version = 1
    event_id: str
    occurred_at: str
    store_id: str | None
    points: int
    charity_id: str
    allocation: Allocation
    postings: Postings


class OpeningBalanceImported(AccountEvent):
    """SPEC §9: points brought from another programme, as an available lot that keeps
    its original dates (`occurred_at` is `earned_at`)."""

    TOPIC = ACCOUNT_EVENTS["OpeningBalanceImported"]
    class_version = 1
    import_id: str
    occurred_at: str
    points: int
    expires_at: str
    debt_repaid: int
    rule_version: int
    postings: Postings
