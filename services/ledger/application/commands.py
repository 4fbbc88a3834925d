"""Running a POS command (`domain/commands.py`) on the accounts it concerns.

`apply_command` dispatches on the command's class (`HANDLERS`): each handler calls one
account method with the command's typed fields and answers its typed effect
(`domain/effects.py`). `apply_pos_event`
is the same for a document already checked (a parked event read back from its intake
record, the benchmarks' replays), answering the effect's JSON object.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from services.ledger.domain import errors
from services.ledger.domain.account import Effect, register_referral
from services.ledger.domain.clock import iso, utcnow
from services.ledger.domain.commands import (
    LATEST_OCCURRED_AT,
    Document,
    PosCommand,
    RecordDonation,
    RecordEnrolment,
    RecordGoodwill,
    RecordIncident,
    RecordOpeningBalance,
    RecordPurchase,
    RecordRedemption,
    RecordRedemptionCancel,
    RecordRedemptionCapture,
    RecordRedemptionHold,
    RecordRedemptionVoid,
    RecordReferral,
    RecordRefund,
    RecordReview,
    command_of,
)
from services.ledger.domain.effects import (
    AwaitingApproval,
    CaptureEffect,
    DonationEffect,
    EnrolmentEffect,
    GoodwillEffect,
    HoldEffect,
    HoldReleaseEffect,
    IncidentEffect,
    OpeningBalanceEffect,
    PosEffect,
    PurchaseEffect,
    RedemptionCancelEffect,
    RedemptionEffect,
    ReferralEffect,
    RefundEffect,
    ReviewEffect,
)
from services.ledger.domain.rules import ProgramRules

if TYPE_CHECKING:
    from services.ledger.application.accounts import Accounts

C = TypeVar("C", bound=PosCommand)
Handler = Callable[[Any, "Accounts", ProgramRules], PosEffect]
RulesAt = Callable[[datetime], ProgramRules]


def occurred_at(command: PosCommand) -> datetime:
    """The command's `occurred_at`; refused when the calendar cannot date its lot."""
    if command.occurred_at >= LATEST_OCCURRED_AT:
        raise errors.TimestampOutOfRange(
            f"occurred_at {command.document['occurred_at']!r} is not before "
            f"{LATEST_OCCURRED_AT.date()}",
            field="occurred_at",
        )
    return command.occurred_at


def _common(command: PosCommand) -> dict[str, Any]:
    return {
        "event_id": command.event_id,
        "occurred_at": command.occurred_at,
        "store_id": command.store_id,
    }


def _purchase(command: RecordPurchase, accounts: Accounts, rules: ProgramRules) -> PurchaseEffect:
    account = accounts.get(command.customer_id)
    store_id, receipt_id = command.store_id, command.receipt_id
    if accounts.receipt_used(store_id, receipt_id):  # by any customer (SPEC §8)
        raise errors.DuplicateReceipt(
            f"receipt {receipt_id!r} of store {store_id!r} is already recorded",
            field="receipt_id",
        )
    effect = account.record_purchase(
        **_common(command),
        receipt_id=receipt_id,
        amount=command.amount,
        currency=command.currency,
        rules=rules,
        points_tender=command.points_tender,
        tender_currency=command.tender_currency,
    )
    if accounts.campaigns is not None:  # SPEC §9: the campaigns' points join the lot
        customer = command.customer_id
        effect = account.credit_campaigns(
            accounts.campaigns,
            command.document,
            command.occurred_at,
            effect,
            rules,
            open_personal=lambda sealed: accounts.sealer.open(customer, sealed),
        )
    accounts.touch(account)
    accounts.use_receipt(store_id, receipt_id, command.customer_id, command.event_id)
    return effect


def _refund(command: RecordRefund, accounts: Accounts, rules: ProgramRules) -> RefundEffect:
    account = accounts.get(command.customer_id)
    effect = account.record_refund(
        **_common(command),
        original_event_id=command.original_event_id,
        amount=command.amount,
        currency=command.currency,
        rules=rules,
    )
    accounts.touch(account)
    return effect


def _referral(command: RecordReferral, accounts: Accounts, rules: ProgramRules) -> ReferralEffect:
    referee = accounts.get(command.customer_id)
    referrer = accounts.get(command.referrer_id)
    effect = register_referral(referee, referrer, **_common(command), rules=rules)
    accounts.touch(referee, referrer)
    return effect


def _review(command: RecordReview, accounts: Accounts, rules: ProgramRules) -> ReviewEffect:
    account = accounts.get(command.customer_id)
    effect = account.record_review(
        **_common(command),
        rating=command.rating,
        touchpoint=command.touchpoint,
        comment=accounts.sealer.seal(command.customer_id, command.comment),
        receipt_id=command.receipt_id,
        rules=rules,
    )
    accounts.touch(account)
    return effect


def _goodwill(
    command: RecordGoodwill, accounts: Accounts, rules: ProgramRules
) -> GoodwillEffect | AwaitingApproval:
    account = accounts.get(command.customer_id)
    effect = account.record_goodwill(
        **_common(command),
        points=command.points,
        amount=command.amount,
        currency=command.currency,
        reason_code=command.reason_code,
        incident_id=command.incident_id,
        issued_by=command.issued_by,
        rules=rules,
    )
    accounts.touch(account)
    return effect


def _incident(command: RecordIncident, accounts: Accounts, rules: ProgramRules) -> IncidentEffect:
    account = accounts.get(command.customer_id)
    effect = account.record_incident(
        **_common(command),
        severity=command.severity,
        description=accounts.sealer.seal(command.customer_id, command.description),
    )
    accounts.touch(account)
    return effect


def _redemption(
    command: RecordRedemption, accounts: Accounts, rules: ProgramRules
) -> RedemptionEffect:
    account = accounts.get(command.customer_id)
    effect = account.redeem(**_common(command), points=command.points, reward_id=command.reward_id)
    accounts.touch(account)
    return effect


def _redemption_cancel(
    command: RecordRedemptionCancel, accounts: Accounts, rules: ProgramRules
) -> RedemptionCancelEffect:
    account = accounts.get(command.customer_id)
    effect = account.cancel_redemption(
        **_common(command), original_event_id=command.original_event_id
    )
    accounts.touch(account)
    return effect


def _enrolment(
    command: RecordEnrolment, accounts: Accounts, rules: ProgramRules
) -> EnrolmentEffect:
    account = accounts.get(command.customer_id)
    effect = account.enrol(
        **_common(command),
        channel=command.channel,
        birthday=accounts.sealer.seal(command.customer_id, command.birthday),
        rules=rules,
    )
    accounts.touch(account)
    return effect


def _redemption_hold(
    command: RecordRedemptionHold, accounts: Accounts, rules: ProgramRules
) -> HoldEffect:
    account = accounts.get(command.customer_id)
    effect = account.hold(
        **_common(command),
        points=command.points,
        reward_id=command.reward_id,
        hold_seconds=command.hold_seconds,
        rules=rules,
    )
    accounts.touch(account)
    return effect


def _redemption_capture(
    command: RecordRedemptionCapture, accounts: Accounts, rules: ProgramRules
) -> CaptureEffect:
    account = accounts.get(command.customer_id)
    effect = account.capture_hold(
        **_common(command), original_event_id=command.original_event_id, points=command.points
    )
    accounts.touch(account)
    return effect


def _redemption_void(
    command: RecordRedemptionVoid, accounts: Accounts, rules: ProgramRules
) -> HoldReleaseEffect:
    account = accounts.get(command.customer_id)
    effect = account.void_hold(**_common(command), original_event_id=command.original_event_id)
    accounts.touch(account)
    return effect


def _donation(command: RecordDonation, accounts: Accounts, rules: ProgramRules) -> DonationEffect:
    account = accounts.get(command.customer_id)
    effect = account.donate(
        **_common(command), points=command.points, charity_id=command.charity_id
    )
    accounts.touch(account)
    return effect


def _opening_balance(
    command: RecordOpeningBalance, accounts: Accounts, rules: ProgramRules
) -> OpeningBalanceEffect:
    account = accounts.get(command.customer_id)
    effect = account.import_opening_balance(
        import_id=command.import_id,
        points=command.points,
        earned_at=command.earned_at,
        expires_at=command.expires_at,
        now=utcnow(),  # a line already past its expiry at the ledger's clock: refused
        rules=rules,
    )
    accounts.touch(account)
    return effect


HANDLERS: dict[type[PosCommand], Handler] = {
    RecordPurchase: _purchase,
    RecordRefund: _refund,
    RecordReferral: _referral,
    RecordReview: _review,
    RecordGoodwill: _goodwill,
    RecordIncident: _incident,
    RecordRedemption: _redemption,
    RecordRedemptionCancel: _redemption_cancel,
    RecordEnrolment: _enrolment,
    RecordRedemptionHold: _redemption_hold,
    RecordRedemptionCapture: _redemption_capture,
    RecordRedemptionVoid: _redemption_void,
    RecordDonation: _donation,
    RecordOpeningBalance: _opening_balance,
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


def apply_command(
    command: PosCommand,
    accounts: Accounts,
    rules: ProgramRules,
    rules_at: RulesAt | None = None,
    now: datetime | None = None,
) -> PosEffect:
    """Run one command; raises a `LedgerError` when a rule refuses it. `rules_at` gives
    the version in force at the event's `occurred_at` (SPEC §8), so a late event earns
    what it would have earned on time; without it, `rules`."""
    moment = occurred_at(command)
    check_not_in_future(moment, rules, now or utcnow())
    return HANDLERS[type(command)](command, accounts, rules_at(moment) if rules_at else rules)


def apply_pos_event(
    doc: Document,
    accounts: Accounts,
    rules: ProgramRules,
    rules_at: RulesAt | None = None,
    now: datetime | None = None,
) -> Effect:
    """`apply_command` for a document checked before (stored, or made by a benchmark);
    the effect as its JSON object, as an intake record stores it."""
    return apply_command(command_of(doc), accounts, rules, rules_at, now).to_json()
