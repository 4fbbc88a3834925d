"""The stored-event contract: the topic of every aggregate and event class the store holds.

A topic is written into every stored row (and into every `Created` event's
`originator_topic`), so it must outlive the code that wrote it. These strings were the
Python paths of the classes when the first events were stored; they are now plain names,
independent of where the classes live: the classes declare them (`TOPIC`, which the
library's `get_topic` writes and its aggregate machinery registers for `resolve_topic`), so
a class can move to another module and still read every stored event.

Never change or reuse a topic. A new event class gets a new entry here; a change of shape
gets a `class_version` and an upcaster on its class (see `schemas/stored/`). The read side
and the audit take their topic names from here and never parse them.
"""

from __future__ import annotations

from typing import Final

ACCOUNT: Final = "services.ledger.domain.account:CustomerAccount"
ACCOUNT_EVENTS: Final[dict[str, str]] = {
    "Opened": "services.ledger.domain.account:CustomerAccount.Opened",
    "PurchaseRecorded": "services.ledger.domain.account:CustomerAccount.PurchaseRecorded",
    "RefundRecorded": "services.ledger.domain.account:CustomerAccount.RefundRecorded",
    "ReferralRegistered": "services.ledger.domain.account:CustomerAccount.ReferralRegistered",
    "ReferralMade": "services.ledger.domain.account:CustomerAccount.ReferralMade",
    "ReferralRewarded": "services.ledger.domain.account:CustomerAccount.ReferralRewarded",
    "ReviewRecorded": "services.ledger.domain.account:CustomerAccount.ReviewRecorded",
    "GoodwillRequested": "services.ledger.domain.account:CustomerAccount.GoodwillRequested",
    "GoodwillGranted": "services.ledger.domain.account:CustomerAccount.GoodwillGranted",
    "GoodwillRejected": "services.ledger.domain.account:CustomerAccount.GoodwillRejected",
    "IncidentReported": "services.ledger.domain.account:CustomerAccount.IncidentReported",
    "PointsRedeemed": "services.ledger.domain.account:CustomerAccount.PointsRedeemed",
    "RedemptionCancelled": "services.ledger.domain.account:CustomerAccount.RedemptionCancelled",
    "PointsMatured": "services.ledger.domain.account:CustomerAccount.PointsMatured",
    "PointsExpired": "services.ledger.domain.account:CustomerAccount.PointsExpired",
    "AdjustmentRequested": "services.ledger.domain.account:CustomerAccount.AdjustmentRequested",
    "PointsAdjusted": "services.ledger.domain.account:CustomerAccount.PointsAdjusted",
    "AdjustmentRejected": "services.ledger.domain.account:CustomerAccount.AdjustmentRejected",
    # Erasure (SPEC §11).
    "ErasureRequested": "services.ledger.domain.account:CustomerAccount.ErasureRequested",
    "ErasureRejected": "services.ledger.domain.account:CustomerAccount.ErasureRejected",
    "CustomerErased": "services.ledger.domain.account:CustomerAccount.CustomerErased",
    # SPEC §9 (issue 11): the same form as the others, for one look in the audit.
    "CustomerEnrolled": "services.ledger.domain.account:CustomerAccount.CustomerEnrolled",
    "PointsHeld": "services.ledger.domain.account:CustomerAccount.PointsHeld",
    "HoldCaptured": "services.ledger.domain.account:CustomerAccount.HoldCaptured",
    "HoldReleased": "services.ledger.domain.account:CustomerAccount.HoldReleased",
    "PointsDonated": "services.ledger.domain.account:CustomerAccount.PointsDonated",
    "OpeningBalanceImported": (
        "services.ledger.domain.account:CustomerAccount.OpeningBalanceImported"
    ),
    "CampaignPointsGranted": (
        "services.ledger.domain.account:CustomerAccount.CampaignPointsGranted"
    ),
    # SPEC §8 "Out of order": a follow-up waiting for its original, and its release.
    "FollowUpParked": "services.ledger.domain.account:CustomerAccount.FollowUpParked",
    "FollowUpReleased": "services.ledger.domain.account:CustomerAccount.FollowUpReleased",
}

PROGRAM: Final = "services.ledger.domain.program:Program"
PROGRAM_EVENTS: Final[dict[str, str]] = {
    "Started": "services.ledger.domain.program:Program.Started",
    "RulesChanged": "services.ledger.domain.program:Program.RulesChanged",
    "RulesScheduled": "services.ledger.domain.program:Program.RulesScheduled",
    "FileRead": "services.ledger.domain.program:Program.FileRead",
    "RuleChangeRequested": "services.ledger.domain.program:Program.RuleChangeRequested",
    "RuleChangeApproved": "services.ledger.domain.program:Program.RuleChangeApproved",
    "RuleChangeRejected": "services.ledger.domain.program:Program.RuleChangeRejected",
}
# The program events that set the rules in force (what the read side folds): a request
# and its decision are the audit's; an approval is followed by its RulesChanged.
RULES_IN_FORCE_EVENTS: Final[dict[str, str]] = {
    name: PROGRAM_EVENTS[name] for name in ("Started", "RulesChanged", "RulesScheduled")
}

# Campaigns (SPEC §9): one aggregate per campaign (its terms, decisions and budget), and
# the catalogue of their ids.
CAMPAIGN: Final = "loyalty.campaign:Campaign"
CAMPAIGN_EVENTS: Final[dict[str, str]] = {
    name: f"loyalty.campaign:Campaign.{name}"
    for name in ("Created", "Approved", "Rejected", "Ended", "PointsGranted")
}
CAMPAIGN_CATALOGUE: Final = "loyalty.campaign:CampaignCatalogue"
CAMPAIGN_CATALOGUE_EVENTS: Final[dict[str, str]] = {
    name: f"loyalty.campaign:CampaignCatalogue.{name}" for name in ("Opened", "Listed")
}

# intake.py is not (yet) declaring these itself: its path still gives them
# (tests/unit/test_stored_contract.py fails if the class moves without them).
INTAKE: Final = "services.ledger.domain.intake:IntakeRecord"
INTAKE_EVENTS: Final[dict[str, str]] = {
    "Accepted": "services.ledger.domain.intake:IntakeRecord.Accepted",
    "Refused": "services.ledger.domain.intake:IntakeRecord.Refused",
    # A parked follow-up (SPEC §8), and its final verdict once released.
    "Parked": "services.ledger.domain.intake:IntakeRecord.Parked",
    "ParkedApplied": "services.ledger.domain.intake:IntakeRecord.ParkedApplied",
    "ParkedRefused": "services.ledger.domain.intake:IntakeRecord.ParkedRefused",
    "LateDeadLettered": "services.ledger.domain.intake:IntakeRecord.LateDeadLettered",
}

# SPEC §8 "Receipts": one record per (store_id, receipt_id), across customers.
RECEIPT: Final = "services.ledger.domain.receipts:ReceiptRecord"
RECEIPT_EVENTS: Final[dict[str, str]] = {
    "Used": "services.ledger.domain.receipts:ReceiptRecord.Used",
}

OPENED: Final = ACCOUNT_EVENTS["Opened"]

# Which aggregate a stored topic belongs to, by the names the audit shows.
AGGREGATE_EVENTS: Final[dict[str, dict[str, str]]] = {
    "account": ACCOUNT_EVENTS,
    "program": PROGRAM_EVENTS,
    "intake": INTAKE_EVENTS,
    "campaign": CAMPAIGN_EVENTS,
    "campaign_catalogue": CAMPAIGN_CATALOGUE_EVENTS,
    "receipt": RECEIPT_EVENTS,
}

# Reverse look-ups: a stored row's topic to its event's name.
ACCOUNT_KINDS: Final[dict[str, str]] = {topic: name for name, topic in ACCOUNT_EVENTS.items()}
PROGRAM_KINDS: Final[dict[str, str]] = {topic: name for name, topic in PROGRAM_EVENTS.items()}
_DESCRIBED: Final[dict[str, tuple[str, str]]] = {
    topic: (aggregate, name)
    for aggregate, events in AGGREGATE_EVENTS.items()
    for name, topic in events.items()
}


def describe(topic: str) -> tuple[str, str] | None:
    """(aggregate, event name) of a stored topic, e.g. ("account", "PurchaseRecorded");
    None for a topic this contract does not know."""
    return _DESCRIBED.get(topic)


def all_topics() -> list[str]:
    """Every stored event topic of the contract."""
    return list(_DESCRIBED)
