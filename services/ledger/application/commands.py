"""From a validated POS event (SPEC §2) to the account command it stands for."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from services.ledger.domain import errors
from services.ledger.domain.account import Effect, register_referral
from services.ledger.domain.clock import iso, parse_ts, utcnow
from services.ledger.domain.rules import ProgramRules

if TYPE_CHECKING:
    from services.ledger.application.accounts import Accounts

Handler = Callable[[dict[str, Any], "Accounts", ProgramRules], Effect]
RulesAt = Callable[[datetime], ProgramRules]


# A lot is dated up to its expiry after occurred_at; far-future times (which RFC 3339
# allows) would overflow the calendar, so they are refused like any other rule.
LATEST_OCCURRED_AT = datetime(9000, 1, 1, tzinfo=UTC)


def occurred_at(doc: dict[str, Any]) -> datetime:
    try:
        moment = parse_ts(doc["occurred_at"])
    except (ValueError, OverflowError):
        moment = LATEST_OCCURRED_AT
    if moment >= LATEST_OCCURRED_AT:
        raise errors.TimestampOutOfRange(
            f"occurred_at {doc['occurred_at']!r} is not before {LATEST_OCCURRED_AT.date()}",
            field="occurred_at",
        )
    return moment


def _common(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": doc["event_id"],
        "occurred_at": occurred_at(doc),
        "store_id": doc.get("store_id"),
    }


def _purchase(doc: dict[str, Any], accounts: Accounts, rules: ProgramRules) -> Effect:
    account = accounts.get(doc["customer_id"])
    tender = doc.get("points_tender")
    store_id, receipt_id = doc.get("store_id"), doc["receipt_id"]
    if accounts.receipt_used(store_id, receipt_id):  # by any customer (SPEC §8)
        raise errors.DuplicateReceipt(
            f"receipt {receipt_id!r} of store {store_id!r} is already recorded",
            field="receipt_id",
        )
    effect = account.record_purchase(
        **_common(doc),
        receipt_id=doc["receipt_id"],
        amount=Decimal(doc["amount"]["value"]),
        currency=doc["amount"]["currency"],
        rules=rules,
        points_tender=Decimal(tender["value"]) if tender else None,
        tender_currency=tender["currency"] if tender else None,
    )
    if accounts.campaigns is not None:  # SPEC §9: the campaigns' points join the lot
        customer = doc["customer_id"]
        effect = account.credit_campaigns(
            accounts.campaigns,
            doc,
            occurred_at(doc),
            effect,
            rules,
            open_personal=lambda sealed: accounts.sealer.open(customer, sealed),
        )
    accounts.touch(account)
    accounts.use_receipt(store_id, receipt_id, doc["customer_id"], doc["event_id"])
    return effect


def _refund(doc: dict[str, Any], accounts: Accounts, rules: ProgramRules) -> Effect:
    account = accounts.get(doc["customer_id"])
    effect = account.record_refund(
        **_common(doc),
        original_event_id=doc["original_event_id"],
        amount=Decimal(doc["amount"]["value"]),
        currency=doc["amount"]["currency"],
        rules=rules,
    )
    accounts.touch(account)
    return effect


def _referral(doc: dict[str, Any], accounts: Accounts, rules: ProgramRules) -> Effect:
    referee = accounts.get(doc["customer_id"])
    referrer = accounts.get(doc["referrer_id"])
    effect = register_referral(referee, referrer, **_common(doc), rules=rules)
    accounts.touch(referee, referrer)
    return effect


def _review(doc: dict[str, Any], accounts: Accounts, rules: ProgramRules) -> Effect:
    account = accounts.get(doc["customer_id"])
    effect = account.record_review(
        **_common(doc),
        rating=doc["rating"],
        touchpoint=doc["touchpoint"],
        comment=accounts.sealer.seal(doc["customer_id"], doc.get("comment")),
        receipt_id=doc.get("receipt_id"),
        rules=rules,
    )
    accounts.touch(account)
    return effect


def _goodwill(doc: dict[str, Any], accounts: Accounts, rules: ProgramRules) -> Effect:
    account = accounts.get(doc["customer_id"])
    money = doc.get("amount")
    effect = account.record_goodwill(
        **_common(doc),
        points=doc.get("points"),
        amount=Decimal(money["value"]) if money else None,
        currency=money["currency"] if money else None,
        reason_code=doc["reason_code"],
        incident_id=doc.get("incident_id"),
        issued_by=doc["issued_by"],
        rules=rules,
    )
    accounts.touch(account)
    return effect


def _incident(doc: dict[str, Any], accounts: Accounts, rules: ProgramRules) -> Effect:
    account = accounts.get(doc["customer_id"])
    effect = account.record_incident(
        **_common(doc),
        severity=doc["severity"],
        description=accounts.sealer.seal(doc["customer_id"], doc["description"]),
    )
    accounts.touch(account)
    return effect


def _redemption(doc: dict[str, Any], accounts: Accounts, rules: ProgramRules) -> Effect:
    account = accounts.get(doc["customer_id"])
    effect = account.redeem(**_common(doc), points=doc["points"], reward_id=doc["reward_id"])
    accounts.touch(account)
    return effect


def _redemption_cancel(doc: dict[str, Any], accounts: Accounts, rules: ProgramRules) -> Effect:
    account = accounts.get(doc["customer_id"])
    effect = account.cancel_redemption(**_common(doc), original_event_id=doc["original_event_id"])
    accounts.touch(account)
    return effect


def _enrolment(doc: dict[str, Any], accounts: Accounts, rules: ProgramRules) -> Effect:
    account = accounts.get(doc["customer_id"])
    effect = account.enrol(
        **_common(doc),
        channel=doc.get("channel"),
        birthday=accounts.sealer.seal(doc["customer_id"], doc.get("birthday")),
        rules=rules,
    )
    accounts.touch(account)
    return effect


def _redemption_hold(doc: dict[str, Any], accounts: Accounts, rules: ProgramRules) -> Effect:
    account = accounts.get(doc["customer_id"])
    effect = account.hold(
        **_common(doc),
        points=doc["points"],
        reward_id=doc["reward_id"],
        hold_seconds=doc.get("hold_seconds"),
        rules=rules,
    )
    accounts.touch(account)
    return effect


def _redemption_capture(doc: dict[str, Any], accounts: Accounts, rules: ProgramRules) -> Effect:
    account = accounts.get(doc["customer_id"])
    effect = account.capture_hold(
        **_common(doc), original_event_id=doc["original_event_id"], points=doc.get("points")
    )
    accounts.touch(account)
    return effect


def _redemption_void(doc: dict[str, Any], accounts: Accounts, rules: ProgramRules) -> Effect:
    account = accounts.get(doc["customer_id"])
    effect = account.void_hold(**_common(doc), original_event_id=doc["original_event_id"])
    accounts.touch(account)
    return effect


def _donation(doc: dict[str, Any], accounts: Accounts, rules: ProgramRules) -> Effect:
    account = accounts.get(doc["customer_id"])
    effect = account.donate(**_common(doc), points=doc["points"], charity_id=doc["charity_id"])
    accounts.touch(account)
    return effect


def _opening_balance(doc: dict[str, Any], accounts: Accounts, rules: ProgramRules) -> Effect:
    """Not a POS event: an admin's import line (`application/imports.py` builds it)."""
    account = accounts.get(doc["customer_id"])
    effect = account.import_opening_balance(
        import_id=doc["import_id"],
        points=doc["points"],
        earned_at=parse_ts(doc["earned_at"]),
        expires_at=parse_ts(doc["expires_at"]),
        now=utcnow(),  # a line already past its expiry at the ledger's clock: refused
        rules=rules,
    )
    accounts.touch(account)
    return effect


HANDLERS: dict[str, Handler] = {
    "purchase": _purchase,
    "refund": _refund,
    "referral": _referral,
    "review": _review,
    "goodwill": _goodwill,
    "incident": _incident,
    "redemption": _redemption,
    "redemption_cancel": _redemption_cancel,
    "enrolment": _enrolment,
    "redemption_hold": _redemption_hold,
    "redemption_capture": _redemption_capture,
    "redemption_void": _redemption_void,
    "donation": _donation,
    "opening_balance": _opening_balance,
}


def check_not_in_future(moment: datetime, rules: ProgramRules, now: datetime) -> None:
    """An event dated beyond the allowed skew ahead of the ledger clock is refused: a till
    with a wrong clock must not date points (or a tier window) years ahead (SPEC §8)."""
    latest = now + timedelta(seconds=rules.max_future_skew_seconds)
    if moment > latest:
        raise errors.OccurredInFuture(
            f"occurred_at {iso(moment)} is more than {rules.max_future_skew_seconds} s "
            f"ahead of the ledger clock ({iso(now)})",
            field="occurred_at",
        )


def apply_pos_event(
    doc: dict[str, Any],
    accounts: Accounts,
    rules: ProgramRules,
    rules_at: RulesAt | None = None,
    now: datetime | None = None,
) -> Effect:
    """Run the command for one event; raises a `LedgerError` when a rule refuses it.
    `rules_at` gives the version in force at the event's `occurred_at` (SPEC §8), so a
    late event earns what it would have earned on time; without it, `rules`."""
    moment = occurred_at(doc)
    check_not_in_future(moment, rules, now or utcnow())
    return HANDLERS[doc["type"]](doc, accounts, rules_at(moment) if rules_at else rules)
