"""Named refusals. Each is one stable problem type (RFC 9457) on the HTTP API and on the
dead-letter topic: `type` is `PROBLEM_BASE + slug`, so clients can branch on it."""

from __future__ import annotations

PROBLEM_BASE = "https://loyalty-ledger.dev/problems/"


class LedgerError(Exception):
    slug = "ledger-error"
    status = 422
    title = "The ledger refused the request"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug


class RuleViolation(LedgerError):
    """The event is well-formed but a program rule refuses it; nothing is stored."""


class InsufficientPoints(RuleViolation):
    slug = "insufficient-points"
    title = "Not enough available points"


class CurrencyMismatch(RuleViolation):
    slug = "currency-mismatch"
    title = "The event's currency is not the program's currency"


class UnknownOriginalEvent(RuleViolation):
    slug = "unknown-original-event"
    title = "The original event is not known for this customer"


class RefundExceedsPurchase(RuleViolation):
    slug = "refund-exceeds-purchase"
    title = "The refunds would exceed the purchase amount"


class DuplicateReceipt(RuleViolation):
    slug = "duplicate-receipt"
    title = "This receipt was already recorded for the customer"


class SelfReferral(RuleViolation):
    slug = "self-referral"
    title = "A customer cannot refer themselves"


class AlreadyReferred(RuleViolation):
    slug = "already-referred"
    title = "The referee already has a referrer"


class RefereeNotNew(RuleViolation):
    slug = "referee-not-new"
    title = "The referee has already purchased"


class ReferralCapReached(RuleViolation):
    slug = "referral-cap-reached"
    title = "The referrer reached the referral cap for the period"


class RedemptionAlreadyCancelled(RuleViolation):
    slug = "redemption-already-cancelled"
    title = "The redemption was already cancelled"


class NotPending(LedgerError):
    slug = "not-pending"
    status = 409
    title = "Nothing is waiting for a decision under this id"


class MakerChecker(LedgerError):
    slug = "maker-checker"
    status = 403
    title = "The approver must not be the requester"


class EventIdConflict(LedgerError):
    slug = "event-id-conflict"
    status = 409
    title = "This event_id was already used for a different event"


class UnknownCustomer(LedgerError):
    slug = "unknown-customer"
    status = 404
    title = "The ledger has never seen this customer"


class InvalidRules(LedgerError):
    slug = "invalid-rules"
    title = "The rule set cannot be applied"


class TimestampOutOfRange(RuleViolation):
    slug = "timestamp-out-of-range"
    title = "The ledger cannot date this event"


class OccurredInFuture(RuleViolation):
    slug = "occurred-in-future"
    title = "The event is dated further ahead than the ledger clock allows"


class BeforeOriginal(RuleViolation):
    slug = "before-original"
    title = "A follow-up is dated before the event it follows"


class UnknownApproval(LedgerError):
    slug = "unknown-approval"
    status = 404
    title = "No request for a decision is known under this id"


class GoodwillWithoutValue(RuleViolation):
    slug = "goodwill-without-value"
    title = "A goodwill names neither points nor an amount"


class AlreadyEnrolled(RuleViolation):
    slug = "already-enrolled"
    title = "The customer is already enrolled"


class PointsTenderExceedsAmount(RuleViolation):
    slug = "points-tender-exceeds-amount"
    title = "The part paid with points is more than the purchase's amount"


class HoldNotOpen(RuleViolation):
    slug = "hold-not-open"
    title = "The hold was already captured, voided or released"


class CaptureExceedsHold(RuleViolation):
    slug = "capture-exceeds-hold"
    title = "A capture takes more points than the hold holds"


class OpeningBalanceExpired(RuleViolation):
    slug = "opening-balance-expired"
    title = "An opening balance is already past its expiry"


class BooksOutOfBalance(LedgerError):
    """An internal invariant of the books failed (a bug, not a refusal): nothing is stored."""

    slug = "books-out-of-balance"
    status = 500
    title = "The ledger's books would not balance"


def refusal(slug: str, detail: str, field: str | None = None) -> LedgerError:
    """A stored refusal read back as the error it was (an unknown slug: the base class)."""
    found = _by_slug().get(slug)
    error = found(detail, field=field) if found else LedgerError(detail, field=field)
    if found is None:
        error.slug = slug
    return error


def _by_slug() -> dict[str, type[LedgerError]]:
    classes: dict[str, type[LedgerError]] = {}
    pending: list[type[LedgerError]] = [LedgerError]
    while pending:
        cls = pending.pop()
        classes.setdefault(cls.slug, cls)
        pending.extend(cls.__subclasses__())
    return classes
