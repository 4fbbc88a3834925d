"""Numbers and times for people (the templates' filters).

Times are shown in the program's time zone. The program's rules (services/ledger/domain/
rules.py) have no time zone setting yet, and every stored time is UTC, so the console
shows UTC and says so next to every time; `TIME_ZONE` is the one place to change it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation

from services.ledger.domain.clock import parse_ts

TIME_ZONE: tzinfo = UTC
TIME_ZONE_NAME = "UTC"
SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}
MINUS = "\u2212"  # a real minus sign, as wide as the plus


def number(value: int | float | None) -> str:
    """12345 -> '12,345'; None -> '—'."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


def signed(value: int | None) -> str:
    if not value:
        return ""
    return f"+{value:,}" if value > 0 else f"{MINUS}{-value:,}"


def money(value: str | Decimal | None, currency: str = "EUR") -> str:
    """'1234.5', 'EUR' -> '€1,234.50'; an unknown currency goes after the number."""
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    sign = MINUS if amount < 0 else ""
    text = f"{abs(amount):,.2f}"
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}"


def _moment(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else parse_ts(str(value))
    return moment.astimezone(TIME_ZONE)


def when(value: str | datetime | None) -> str:
    """'2026-03-01T10:00:00+00:00' -> '1 Mar 2026, 10:00'."""
    moment = _moment(value)
    if moment is None:
        return "—"
    return f"{moment.day} {moment:%b %Y, %H:%M}"


def day(value: str | datetime | None) -> str:
    """'2026-03-01T10:00:00+00:00' -> '1 Mar 2026'."""
    moment = _moment(value)
    if moment is None:
        return "—"
    return f"{moment.day} {moment:%b %Y}"


_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")


def words(text: str | None) -> str:
    """The read side's explanations, with their ISO timestamps written for people."""
    if not text:
        return ""
    return _TIMESTAMP.sub(lambda m: when(m.group(0)), text)


EVENT_NAMES = {
    "PurchaseRecorded": "Purchase",
    "RefundRecorded": "Refund",
    "ReviewRecorded": "Review",
    "GoodwillRequested": "Goodwill asked",
    "GoodwillGranted": "Goodwill",
    "GoodwillRejected": "Goodwill rejected",
    "IncidentReported": "Incident",
    "PointsRedeemed": "Redemption",
    "RedemptionCancelled": "Redemption cancelled",
    "PointsMatured": "Matured",
    "PointsExpired": "Expired",
    "AdjustmentRequested": "Adjustment asked",
    "PointsAdjusted": "Adjustment",
    "AdjustmentRejected": "Adjustment rejected",
    "CampaignPointsGranted": "Campaign points",
    "FollowUpParked": "Parked",
    "FollowUpReleased": "Unparked",
    "ReferralRegistered": "Referred",
    "ReferralMade": "Referral",
    "ReferralRewarded": "Referral reward",
    "CustomerEnrolled": "Enrolment",
    "PointsHeld": "Checkout hold",
    "HoldCaptured": "Hold captured",
    "HoldReleased": "Hold released",
    "PointsDonated": "Donation",
    "OpeningBalanceImported": "Opening balance",
}


def event_name(kind: str) -> str:
    return EVENT_NAMES.get(kind, kind)


def month(value: str) -> str:
    """'2026-03' -> 'Mar 2026'."""
    return datetime.strptime(value, "%Y-%m").strftime("%b %Y")


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:+.0f}"


FILTERS = {
    "number": number,
    "signed": signed,
    "money": money,
    "when": when,
    "day": day,
    "month": month,
    "words": words,
    "event_name": event_name,
    "nps": percent,
}
