"""The ledger's commands: one frozen dataclass per POS event type (SPEC §2), typed.

The contract adapter (`adapters/contract.py`) checks a document against its JSON Schema
and turns it into its command here, once (`command_of`); from then on the application
dispatches on the command's class, never on the document's `type` string. A command
also carries the document as received (`document`, a read-only view): the intake
record's fingerprint and stored copy are of the document itself, and a campaign's
condition reads its fields (`items`, `amount`, `occurred_at` as written).

`occurred_at` is the instant in UTC; a time the calendar cannot hold a lot's expiry for
(on or after `LATEST_OCCURRED_AT`, which RFC 3339 allows) is that limit, and the
application refuses it as a rule (`timestamp-out-of-range`, recorded like any refusal).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from services.ledger.domain.clock import parse_ts

# A lot is dated up to its expiry after occurred_at; far-future times would overflow the
# calendar, so they are refused like any other rule.
LATEST_OCCURRED_AT = datetime(9000, 1, 1, tzinfo=UTC)

Document = Mapping[str, Any]


class UnknownEventType(ValueError):
    """A document whose `type` names no command: the contract refuses it before this."""


def moment_of(text: str) -> datetime:
    """`occurred_at` as an instant; `LATEST_OCCURRED_AT` when it is at or past it."""
    try:
        moment = parse_ts(text)
    except (ValueError, OverflowError):
        return LATEST_OCCURRED_AT
    return min(moment, LATEST_OCCURRED_AT)


@dataclass(frozen=True, slots=True, kw_only=True)
class PosCommand:
    """What every POS event has (the envelope), and the document it came as."""

    event_type: ClassVar[str]

    event_id: str
    customer_id: str
    occurred_at: datetime
    store_id: str | None
    document: Document  # as received: not to be changed

    @property
    def original(self) -> str | None:
        """The `original_event_id` this one follows up (a refund's purchase, a capture's
        hold, ...), if it names one (`application/parking.py`)."""
        original: str | None = getattr(self, "original_event_id", None)
        return original


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordPurchase(PosCommand):
    event_type: ClassVar[str] = "purchase"
    receipt_id: str
    amount: Decimal
    currency: str
    points_tender: Decimal | None
    tender_currency: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordRefund(PosCommand):
    event_type: ClassVar[str] = "refund"
    original_event_id: str
    amount: Decimal
    currency: str
    reason: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordReferral(PosCommand):
    event_type: ClassVar[str] = "referral"
    referrer_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordReview(PosCommand):
    event_type: ClassVar[str] = "review"
    rating: int
    touchpoint: str
    comment: str | None
    receipt_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordGoodwill(PosCommand):
    event_type: ClassVar[str] = "goodwill"
    points: int | None
    amount: Decimal | None
    currency: str | None
    reason_code: str
    incident_id: str | None
    issued_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordIncident(PosCommand):
    event_type: ClassVar[str] = "incident"
    severity: str
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordRedemption(PosCommand):
    event_type: ClassVar[str] = "redemption"
    points: int
    reward_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordRedemptionCancel(PosCommand):
    event_type: ClassVar[str] = "redemption_cancel"
    original_event_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordEnrolment(PosCommand):
    event_type: ClassVar[str] = "enrolment"
    channel: str | None
    birthday: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordRedemptionHold(PosCommand):
    event_type: ClassVar[str] = "redemption_hold"
    points: int
    reward_id: str
    hold_seconds: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordRedemptionCapture(PosCommand):
    event_type: ClassVar[str] = "redemption_capture"
    original_event_id: str
    points: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordRedemptionVoid(PosCommand):
    event_type: ClassVar[str] = "redemption_void"
    original_event_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordDonation(PosCommand):
    event_type: ClassVar[str] = "donation"
    points: int
    charity_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordOpeningBalance(PosCommand):
    """Not a POS event: an admin's import line (`application/imports.py` builds it)."""

    event_type: ClassVar[str] = "opening_balance"
    import_id: str
    points: int
    earned_at: datetime
    expires_at: datetime


def _envelope(doc: Document) -> dict[str, Any]:
    return {
        "event_id": doc["event_id"],
        "customer_id": doc["customer_id"],
        "occurred_at": moment_of(doc["occurred_at"]),
        "store_id": doc.get("store_id"),
        "document": doc,
    }


def _money(doc: Document, name: str) -> tuple[Decimal | None, str | None]:
    money = doc.get(name)
    return (Decimal(money["value"]), money["currency"]) if money else (None, None)


def _purchase(doc: Document) -> RecordPurchase:
    tender, tender_currency = _money(doc, "points_tender")
    return RecordPurchase(
        **_envelope(doc),
        receipt_id=doc["receipt_id"],
        amount=Decimal(doc["amount"]["value"]),
        currency=doc["amount"]["currency"],
        points_tender=tender,
        tender_currency=tender_currency,
    )


def _refund(doc: Document) -> RecordRefund:
    return RecordRefund(
        **_envelope(doc),
        original_event_id=doc["original_event_id"],
        amount=Decimal(doc["amount"]["value"]),
        currency=doc["amount"]["currency"],
        reason=doc.get("reason"),
    )


def _goodwill(doc: Document) -> RecordGoodwill:
    amount, currency = _money(doc, "amount")
    return RecordGoodwill(
        **_envelope(doc),
        points=doc.get("points"),
        amount=amount,
        currency=currency,
        reason_code=doc["reason_code"],
        incident_id=doc.get("incident_id"),
        issued_by=doc["issued_by"],
    )


_BUILDERS: dict[str, Callable[[Document], PosCommand]] = {
    "purchase": _purchase,
    "refund": _refund,
    "referral": lambda doc: RecordReferral(**_envelope(doc), referrer_id=doc["referrer_id"]),
    "review": lambda doc: RecordReview(
        **_envelope(doc),
        rating=doc["rating"],
        touchpoint=doc["touchpoint"],
        comment=doc.get("comment"),
        receipt_id=doc.get("receipt_id"),
    ),
    "goodwill": _goodwill,
    "incident": lambda doc: RecordIncident(
        **_envelope(doc), severity=doc["severity"], description=doc["description"]
    ),
    "redemption": lambda doc: RecordRedemption(
        **_envelope(doc), points=doc["points"], reward_id=doc["reward_id"]
    ),
    "redemption_cancel": lambda doc: RecordRedemptionCancel(
        **_envelope(doc), original_event_id=doc["original_event_id"]
    ),
    "enrolment": lambda doc: RecordEnrolment(
        **_envelope(doc), channel=doc.get("channel"), birthday=doc.get("birthday")
    ),
    "redemption_hold": lambda doc: RecordRedemptionHold(
        **_envelope(doc),
        points=doc["points"],
        reward_id=doc["reward_id"],
        hold_seconds=doc.get("hold_seconds"),
    ),
    "redemption_capture": lambda doc: RecordRedemptionCapture(
        **_envelope(doc), original_event_id=doc["original_event_id"], points=doc.get("points")
    ),
    "redemption_void": lambda doc: RecordRedemptionVoid(
        **_envelope(doc), original_event_id=doc["original_event_id"]
    ),
    "donation": lambda doc: RecordDonation(
        **_envelope(doc), points=doc["points"], charity_id=doc["charity_id"]
    ),
    "opening_balance": lambda doc: RecordOpeningBalance(
        **_envelope(doc),
        import_id=doc["import_id"],
        points=doc["points"],
        earned_at=parse_ts(doc["earned_at"]),
        expires_at=parse_ts(doc["expires_at"]),
    ),
}

COMMANDS: dict[str, type[PosCommand]] = {
    cls.event_type: cls
    for cls in (
        RecordPurchase,
        RecordRefund,
        RecordReferral,
        RecordReview,
        RecordGoodwill,
        RecordIncident,
        RecordRedemption,
        RecordRedemptionCancel,
        RecordEnrolment,
        RecordRedemptionHold,
        RecordRedemptionCapture,
        RecordRedemptionVoid,
        RecordDonation,
        RecordOpeningBalance,
    )
}


def command_of(doc: Document) -> PosCommand:
    """The command a valid document stands for (the contract checked its fields' shapes;
    a stored document was checked when it arrived)."""
    build = _BUILDERS.get(str(doc.get("type")))
    if build is None:
        raise UnknownEventType(f"no command for an event of type {doc.get('type')!r}")
    return build(doc)
