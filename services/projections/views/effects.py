"""The timeline's "effect" of each account event (SPEC §4 timeline): what it did, in
numbers, and a line of words for people.

The timeline table keeps, per account event, the moves on the customer's points and the
change of the trust deposit (the fold's numbers); `effect_of` adds, when the API answers,
the event's own fields that say what happened (per type, read from the store with it)
and `summary` puts it all in one line of words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.projections.views.common import Data

Effect = dict[str, Any]
_BALANCE = ("available", "pending", "debt")

FIELDS: dict[str, tuple[str, ...]] = {
    "PurchaseRecorded": (
        "amount",
        "currency",
        "points",
        "matures_at",
        "expires_at",
        "tier",
        "multiplier",
        "rule_version",
    ),
    "RefundRecorded": (
        "original_event_id",
        "amount",
        "currency",
        "points_reversed",
        "debt_added",
        "takes",
        "rule_version",
    ),
    "ReviewRecorded": ("rating", "touchpoint", "points", "no_reward_reason"),
    "GoodwillGranted": (
        "points",
        "reason_code",
        "incident_id",
        "granted_at",
        "approved_by",
        "debt_repaid",
    ),
    "GoodwillRequested": ("points", "reason_code", "incident_id", "waits_because"),
    "GoodwillRejected": ("rejected_by", "note"),
    "ReferralRegistered": ("referrer_id",),
    "ReferralMade": ("referee_id",),
    "ReferralRewarded": ("referee_id", "points", "lot_id", "debt_repaid"),
    "IncidentReported": ("severity", "description"),
    "PointsRedeemed": ("points", "reward_id", "allocation"),
    "RedemptionCancelled": ("original_event_id", "points", "debt_repaid"),
    "PointsMatured": ("lot_id", "points", "debt_repaid", "referral_reward_to"),
    "PointsExpired": ("lot_id", "points"),
    "AdjustmentRequested": ("adjustment_id", "points", "reason"),
    "PointsAdjusted": ("adjustment_id", "points", "reason", "debt_added", "debt_repaid"),
    "AdjustmentRejected": ("adjustment_id", "rejected_by", "note"),
    "FollowUpParked": ("type", "original_event_id", "park_until"),
    "FollowUpReleased": ("original_event_id", "verdict"),
}


def effect_of(kind: str, data: Data, moves: tuple[int, int, int], trust_delta: int) -> Effect:
    """`moves`: the event's moves on the customer's available, pending and owed points."""
    effect = {name: data.get(name) for name in FIELDS.get(kind, ())}
    if moves[0] or moves[1] or moves[2]:
        effect["balance"] = {k: v for k, v in zip(_BALANCE, moves, strict=True) if v}
    if trust_delta:
        effect["trust"] = trust_delta
    effect["summary"] = summary_of(kind, effect)
    return effect


def _signed(n: int) -> str:
    return f"+{n}" if n > 0 else str(n)


def _review(e: Effect) -> str:
    rating = e["rating"]
    kind = "promoter" if rating >= 9 else "passive" if rating >= 7 else "detractor"
    reward = f"{e['points']} points" if e["points"] else f"no reward ({e['no_reward_reason']})"
    return f"review {rating}/10 ({kind}) on {e['touchpoint']}: {reward}"


def _goodwill(e: Effect) -> str:
    by = f"approved by {e['approved_by']}" if e["approved_by"] else "small money: at once"
    resolves = f", for incident {e['incident_id']}" if e.get("incident_id") else ""
    return f"goodwill {e['points']} points ({e['reason_code']}{resolves}), {by}"


_WORDS: dict[str, Callable[[Effect], str]] = {
    "PurchaseRecorded": lambda e: (
        f"purchase of {e['amount']} {e['currency']}: {e['points']} points pending until "
        f"{e['matures_at']} ({e['tier']} x{e['multiplier']})"
    ),
    "RefundRecorded": lambda e: (
        f"refund of {e['amount']} {e['currency']} on {e['original_event_id']}: "
        f"{e['points_reversed']} points reversed"
        + (f", {e['debt_added']} points became debt" if e["debt_added"] else "")
    ),
    "ReviewRecorded": _review,
    "GoodwillGranted": _goodwill,
    "GoodwillRequested": lambda e: (
        f"goodwill {e['points']} points waits for approval ({e['waits_because']})"
    ),
    "GoodwillRejected": lambda e: f"goodwill rejected by {e['rejected_by']}",
    "ReferralRegistered": lambda e: f"referred by {e['referrer_id']}",
    "ReferralMade": lambda e: (
        f"referred {e['referee_id']}; rewarded when their first purchase matures"
    ),
    "ReferralRewarded": lambda e: f"referral reward {e['points']} points for {e['referee_id']}",
    "IncidentReported": lambda e: f"incident ({e['severity']}): {e['description']}",
    "PointsRedeemed": lambda e: f"redeemed {e['points']} points for {e['reward_id']}",
    "RedemptionCancelled": lambda e: (
        f"redemption {e['original_event_id']} cancelled: {e['points']} points back"
    ),
    "PointsMatured": lambda e: f"lot {e['lot_id']} matured: {e['points']} points available",
    "PointsExpired": lambda e: f"lot {e['lot_id']} expired: {e['points']} points",
    "AdjustmentRequested": lambda e: (
        f"adjustment {_signed(e['points'])} points waits for a second admin ({e['reason']})"
    ),
    "PointsAdjusted": lambda e: f"adjustment {_signed(e['points'])} points ({e['reason']})",
    "AdjustmentRejected": lambda e: f"adjustment rejected by {e['rejected_by']}",
    "FollowUpParked": lambda e: (
        f"{e['type']} parked until {e['original_event_id']} arrives (at most until "
        f"{e['park_until']})"
    ),
    "FollowUpReleased": lambda e: f"parked follow-up {e['verdict']} ({e['original_event_id']})",
}


def summary_of(kind: str, effect: Effect) -> str:
    """The effect in one line of words."""
    words = _WORDS.get(kind)
    summary = words(effect) if words else kind
    balance = effect.get("balance")
    if balance:
        summary += "; balance " + ", ".join(f"{k} {_signed(v)}" for k, v in balance.items())
    if effect.get("trust"):
        summary += f"; trust deposit {_signed(effect['trust'])}"
    return summary


def event_id_of(data: Data) -> str | None:
    """The POS event (or adjustment) behind an account event; none for time-triggered ones."""
    found = data.get("event_id") or data.get("adjustment_id")
    return str(found) if found is not None else None
