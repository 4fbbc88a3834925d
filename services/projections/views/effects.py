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
_BALANCE = ("available", "pending", "debt", "held")

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
    "ErasureRequested": ("request_id", "requested_by", "reason"),
    "ErasureRejected": ("request_id", "rejected_by"),
    "CustomerErased": ("request_id", "requested_by", "approved_by"),
    "CustomerEnrolled": ("channel", "points", "expires_at", "debt_repaid", "rule_version"),
    "PointsHeld": ("points", "reward_id", "expires_at", "allocation"),
    "HoldCaptured": ("original_event_id", "points", "released", "debt_repaid"),
    "HoldReleased": ("original_event_id", "reason", "points", "debt_repaid"),
    "PointsDonated": ("points", "charity_id", "allocation"),
    "OpeningBalanceImported": ("import_id", "points", "expires_at", "debt_repaid"),
    "CampaignPointsGranted": ("lot_id", "points", "campaigns"),
    "FollowUpParked": ("type", "original_event_id", "park_until"),
    "FollowUpReleased": ("original_event_id", "verdict"),
}


# Fields added to a stored event later: in the effect only when the event has them, so the
# timeline of an older event reads as it always did.
LATER_FIELDS: dict[str, tuple[str, ...]] = {"PurchaseRecorded": ("points_tender",)}


def _purchase(e: Effect) -> str:
    paid = (
        f" ({e['points_tender']} paid with points earns nothing)" if e.get("points_tender") else ""
    )
    return (
        f"purchase of {e['amount']} {e['currency']}{paid}: {e['points']} points pending until "
        f"{e['matures_at']} ({e['tier']} x{e['multiplier']})"
    )


def effect_of(kind: str, data: Data, moves: tuple[int, int, int, int], trust_delta: int) -> Effect:
    """`moves`: the event's moves on the customer's available, pending, owed and held
    points."""
    effect = {name: data.get(name) for name in FIELDS.get(kind, ())}
    for name in LATER_FIELDS.get(kind, ()):
        if data.get(name) is not None:
            effect[name] = data[name]
    if any(moves):
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


def _campaign(grant: dict[str, Any]) -> str:
    words = f"{grant['campaign_id']} +{grant['points']}"
    if "stamps" in grant:
        words += f" (stamp card: {grant['stamps']} stamps)" if grant["stamps"] else " (card full)"
    if grant.get("surprise"):
        words += " (surprise)"
    if grant.get("capped"):
        words += " (capped by the budget or the customer's cap)"
    return words


def _campaigns(e: Effect) -> str:
    grants = "; ".join(_campaign(g) for g in e["campaigns"])
    return f"campaigns on purchase {e['lot_id']}: {e['points']} points to its lot ({grants})"


def _goodwill(e: Effect) -> str:
    by = f"approved by {e['approved_by']}" if e["approved_by"] else "small money: at once"
    resolves = f", for incident {e['incident_id']}" if e.get("incident_id") else ""
    return f"goodwill {e['points']} points ({e['reason_code']}{resolves}), {by}"


_WORDS: dict[str, Callable[[Effect], str]] = {
    "PurchaseRecorded": _purchase,
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
    "ErasureRequested": lambda e: (
        f"erasure of the personal data requested by {e['requested_by']}; waits for a second"
    ),
    "ErasureRejected": lambda e: f"erasure rejected by {e['rejected_by']}",
    "CustomerErased": lambda e: (
        f"personal data erased (requested by {e['requested_by']}, approved by "
        f"{e['approved_by']}); the points stay"
    ),
    "CustomerEnrolled": lambda e: (
        f"enrolled{' via ' + e['channel'] if e.get('channel') else ''}: "
        f"{e['points']} welcome points available (rule version {e['rule_version']})"
    ),
    "PointsHeld": lambda e: (
        f"checkout hold of {e['points']} points for {e['reward_id']} until {e['expires_at']}"
    ),
    "HoldCaptured": lambda e: (
        f"hold {e['original_event_id']} captured: {e['points']} points redeemed"
        + (f", {e['released']} released" if e["released"] else "")
    ),
    "HoldReleased": lambda e: (
        f"hold {e['original_event_id']} {e['reason']}: {e['points']} points back"
    ),
    "PointsDonated": lambda e: f"donated {e['points']} points to {e['charity_id']}",
    "OpeningBalanceImported": lambda e: (
        f"opening balance {e['import_id']}: {e['points']} points from the previous programme, "
        f"expiring {e['expires_at']}"
    ),
    "CampaignPointsGranted": _campaigns,
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
    """The POS event (or adjustment, import or erasure request) behind an account event;
    none for time-triggered ones."""
    found = (
        data.get("event_id")
        or data.get("adjustment_id")
        or data.get("import_id")
        or data.get("request_id")
    )
    return str(found) if found is not None else None
