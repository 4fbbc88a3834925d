"""The customer account: one aggregate per customer, the unit of consistency of the ledger.

Commands read like the business (`record_purchase`, `redeem`), check their rules first
(each `check_...` raises a named error from `errors`), and only then trigger one past-tense
event. The account is put together from one part per concept, each in its own module:

    purchases.py    purchases and refunds          referrals.py   referrals and rewards
    goodwill.py     reviews, goodwill, incidents   redemptions.py redemptions, cancellations
    maturity.py     maturity and expiry (sweep)    adjustments.py manual adjustments
    approvals.py    a request waiting for a second person (goodwill, adjustments)
    erasure.py      erasure of the personal data, with four eyes (SPEC §11)
    enrolment.py    enrolment, welcome points      holds.py       checkout holds
    donations.py    points given to a charity      openings.py    opening balances
    campaign_credits.py  campaign points on a purchase's lot, stamp cards, caps
    parking.py      follow-ups waiting for their original (SPEC §8 "Out of order")
    bookkeeping.py  lots and postings every credit shares
    events.py       the stored events               state.py       the state they build

An event is applied by `apply`, a `singledispatchmethod` that picks the part's handler by
the event's class (the table below); a replay never consults the rules again.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import Aggregate, event

from services.ledger.domain import topics
from services.ledger.domain.account import events as ev
from services.ledger.domain.account import program_events as pev
from services.ledger.domain.account.adjustments import Adjustments
from services.ledger.domain.account.campaign_credits import CampaignCredits, CampaignPointsGranted
from services.ledger.domain.account.donations import Donations
from services.ledger.domain.account.enrolment import Enrolment
from services.ledger.domain.account.erasure import Erasure
from services.ledger.domain.account.goodwill import Goodwill, Incidents, Reviews
from services.ledger.domain.account.holds import Holds
from services.ledger.domain.account.maturity import Maturity
from services.ledger.domain.account.openings import Openings
from services.ledger.domain.account.parking import Parking
from services.ledger.domain.account.purchases import Purchases
from services.ledger.domain.account.redemptions import Redemptions
from services.ledger.domain.account.referrals import Referrals
from services.ledger.domain.account.running import LotIndex, SpendIndex
from services.ledger.domain.effects import ReferralEffect
from services.ledger.domain.rules import ProgramRules


class CustomerAccount(
    Purchases,
    Referrals,
    Reviews,
    Goodwill,
    Incidents,
    Redemptions,
    Maturity,
    Holds,
    Adjustments,
    Erasure,
    Enrolment,
    Donations,
    Openings,
    CampaignCredits,
    Parking,
    Aggregate,
):
    # The stored contract: the account's topic, and its events (each declares its own).
    TOPIC = topics.ACCOUNT

    Event = ev.AccountEvent
    Opened = ev.Opened
    Created = ev.Opened  # the library's name for the first event: there is only one
    PurchaseRecorded = ev.PurchaseRecorded
    RefundRecorded = ev.RefundRecorded
    ReferralRegistered = ev.ReferralRegistered
    ReferralMade = ev.ReferralMade
    ReferralRewarded = ev.ReferralRewarded
    ReviewRecorded = ev.ReviewRecorded
    GoodwillRequested = ev.GoodwillRequested
    GoodwillGranted = ev.GoodwillGranted
    GoodwillRejected = ev.GoodwillRejected
    IncidentReported = ev.IncidentReported
    PointsRedeemed = ev.PointsRedeemed
    RedemptionCancelled = ev.RedemptionCancelled
    PointsMatured = ev.PointsMatured
    PointsExpired = ev.PointsExpired
    AdjustmentRequested = ev.AdjustmentRequested
    PointsAdjusted = ev.PointsAdjusted
    AdjustmentRejected = ev.AdjustmentRejected
    ErasureRequested = pev.ErasureRequested
    ErasureRejected = pev.ErasureRejected
    CustomerErased = pev.CustomerErased
    CustomerEnrolled = pev.CustomerEnrolled
    PointsHeld = pev.PointsHeld
    HoldCaptured = pev.HoldCaptured
    HoldReleased = pev.HoldReleased
    PointsDonated = pev.PointsDonated
    OpeningBalanceImported = pev.OpeningBalanceImported
    CampaignPointsGranted = CampaignPointsGranted
    FollowUpParked = ev.FollowUpParked
    FollowUpReleased = ev.FollowUpReleased

    @staticmethod
    @lru_cache(maxsize=65536)
    def create_id(customer_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"loyalty-ledger:customer:{customer_id}")

    @event(ev.Opened)
    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self.lots = {}
        self.debt = 0
        self.purchases = {}
        self.receipts = set()
        self.redemptions = {}
        self.referred_by = None
        self.referral_rewarded = False
        self.referrals_made = []
        self.goodwill_grants = []
        self.requests = {}
        self.reviews_rewarded = 0
        self.adjustment_ids = set()
        self.enrolled_at = None
        self.birthday = None
        self.holds = {}
        self.closed_holds = set()
        self.books = LotIndex()
        self.spend = SpendIndex()
        self.parked = {}

    # ---- applying events: which part's handler applies which event ----------------------
    @singledispatchmethod
    def apply(self, e: ev.AccountEvent) -> None:
        raise TypeError(f"the account has no handler for {type(e).__name__}")  # a new event?

    apply.register(ev.PurchaseRecorded, Purchases.on_purchase_recorded)
    apply.register(ev.RefundRecorded, Purchases.on_refund_recorded)
    apply.register(ev.ReferralRegistered, Referrals.on_referral_registered)
    apply.register(ev.ReferralMade, Referrals.on_referral_made)
    apply.register(ev.ReferralRewarded, Referrals.on_referral_rewarded)
    apply.register(ev.ReviewRecorded, Reviews.on_review_recorded)
    apply.register(ev.GoodwillRequested, Goodwill.on_goodwill_requested)
    apply.register(ev.GoodwillGranted, Goodwill.on_goodwill_granted)
    apply.register(ev.GoodwillRejected, Goodwill.on_goodwill_rejected)
    apply.register(ev.IncidentReported, Incidents.on_incident_reported)
    apply.register(ev.PointsRedeemed, Redemptions.on_points_redeemed)
    apply.register(ev.RedemptionCancelled, Redemptions.on_redemption_cancelled)
    apply.register(ev.PointsMatured, Maturity.on_points_matured)
    apply.register(ev.PointsExpired, Maturity.on_points_expired)
    apply.register(ev.AdjustmentRequested, Adjustments.on_adjustment_requested)
    apply.register(ev.PointsAdjusted, Adjustments.on_points_adjusted)
    apply.register(ev.AdjustmentRejected, Adjustments.on_adjustment_rejected)
    apply.register(pev.ErasureRequested, Erasure.on_erasure_requested)
    apply.register(pev.ErasureRejected, Erasure.on_erasure_rejected)
    apply.register(pev.CustomerErased, Erasure.on_customer_erased)
    apply.register(pev.CustomerEnrolled, Enrolment.on_customer_enrolled)
    apply.register(pev.PointsHeld, Holds.on_points_held)
    apply.register(pev.HoldCaptured, Holds.on_hold_captured)
    apply.register(pev.HoldReleased, Holds.on_hold_released)
    apply.register(pev.PointsDonated, Donations.on_points_donated)
    apply.register(pev.OpeningBalanceImported, Openings.on_opening_balance_imported)
    apply.register(CampaignPointsGranted, CampaignCredits.on_campaign_points_granted)
    apply.register(ev.FollowUpParked, Parking.on_follow_up_parked)
    apply.register(ev.FollowUpReleased, Parking.on_follow_up_released)

    # The events call the handler through the same registry, but not through `apply`
    # itself: functools' singledispatchmethod builds a new bound wrapper on every access,
    # a quarter of a replay's time on Python 3.11 (bench/replay.py).
    handler_for = staticmethod(apply.dispatcher.dispatch)


def register_referral(
    referee: CustomerAccount,
    referrer: CustomerAccount,
    *,
    event_id: str,
    occurred_at: datetime,
    store_id: str | None,
    rules: ProgramRules,
) -> ReferralEffect:
    return referee.record_referral(
        referrer=referrer,
        event_id=event_id,
        occurred_at=occurred_at,
        store_id=store_id,
        rules=rules,
    )
