"""Realistic POS traffic for demos and benchmarks (`loyalty simulate`, the Kafka benchmark).

`generate_events(seed, customers, events, start)` is pure and deterministic: the same
arguments give the same events. It yields valid POS events (the contract in
`schemas/pos/`) in time order: purchases (some with items) and their returns, reviews,
referrals of new customers, incidents and the goodwill that resolves them, redemptions
and their cancellations, enrolments, checkout holds with their captures and voids, and
donations (SPEC §9). On purpose it also yields
- duplicates: about 3% are exact repeats of an earlier event (the ledger answers
  `duplicate`), and
- refusals: about 3% break a rule (more points than held, a refund above the purchase,
  a self-referral, a receipt recorded twice); the ledger rejects them with a problem.

It keeps only a rough model of each customer (what they bought, roughly what they hold),
enough for most events to be accepted; it never asks the ledger.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

REASONS = ("late_delivery", "damaged_item", "long_queue", "billing_error", "rude_staff")
SEVERITIES = ("low", "medium", "high", "critical")
TOUCHPOINTS = ("sales", "service", "checkout", "delivery", "web")
CATEGORIES = ("grocery", "home", "garden", "toys", "electronics", "clothing")
REWARDS = ("coffee", "voucher-5", "voucher-20", "cinema", "free-delivery")
RESOLUTION = timedelta(hours=48)
HOLD = timedelta(days=7)


@dataclass
class Customer:
    customer_id: str
    purchases: list[list[Any]] = field(default_factory=list)  # [event_id, amount, refunded]
    receipts: list[str] = field(default_factory=list)
    matured: list[tuple[datetime, int]] = field(default_factory=list)  # (matures_at, points)
    points: int = 0  # rough: available points once ticks have matured the lots
    reviews_rewarded: int = 0
    redemptions: list[str] = field(default_factory=list)
    incidents: list[tuple[str, datetime]] = field(default_factory=list)
    referred: bool = False
    enrolled: bool = False
    holds: list[tuple[str, int, datetime]] = field(default_factory=list)  # (id, points, at)

    def available(self, now: datetime) -> int:
        due = [p for when, p in self.matured if when <= now]
        self.matured = [(w, p) for w, p in self.matured if w > now]
        self.points += sum(due)
        return self.points


class Traffic:
    def __init__(
        self, seed: int, customers: int, start: datetime, gap_seconds: float = 900.0
    ) -> None:
        self.rng = random.Random(seed)
        self.gap_seconds = gap_seconds  # the mean time between two events
        self.tag = f"sim{seed}"
        self.customers = [Customer(f"{self.tag}-c{i:06d}") for i in range(max(customers, 2))]
        self.regulars = max(1, len(self.customers) // 5)
        self.now = start
        self.n = 0
        self.recent: list[dict[str, Any]] = []

    # ---- helpers --------------------------------------------------------------------------
    def pick(self) -> Customer:
        rng = self.rng
        if rng.random() < 0.6:  # a fifth of the customers come most often
            return self.customers[rng.randrange(self.regulars)]
        return rng.choice(self.customers)

    def envelope(self, kind: str, customer: Customer) -> dict[str, Any]:
        self.n += 1
        doc: dict[str, Any] = {
            "event_id": f"{self.tag}-e{self.n:08d}",
            "type": kind,
            "customer_id": customer.customer_id,
            "occurred_at": self.now.isoformat(),
            "schema_version": 1,
        }
        if self.rng.random() < 0.95:
            doc["store_id"] = f"store-{self.rng.randint(1, 12):02d}"
        return doc

    @staticmethod
    def eur(value: Decimal) -> dict[str, str]:
        return {"value": f"{value:.2f}", "currency": "EUR"}

    # ---- one event ------------------------------------------------------------------------------
    def next_event(self) -> dict[str, Any]:
        rng = self.rng
        self.now += timedelta(seconds=rng.expovariate(1 / self.gap_seconds))
        roll = rng.random()
        if roll < 0.03 and self.recent:
            return dict(rng.choice(self.recent))  # a POS retry: the very same event
        if roll < 0.06:
            return self.refusal()
        customer = self.pick()
        if customer.holds and roll >= 0.09 and rng.random() < 0.7:  # back at the till
            return self.settle(customer)
        if roll < 0.09:
            referral = self.referral()
            if referral is not None:
                return referral
        if roll < 0.11 and not customer.enrolled:
            return self.enrolment(customer)
        if roll < 0.50 or not customer.purchases:
            return self.purchase(customer)
        if roll < 0.57:
            return self.refund(customer)
        if roll < 0.71:
            return self.review(customer)
        if roll < 0.80:
            return self.redemption(customer)
        if roll < 0.83:
            return self.hold(customer)
        if roll < 0.85 and customer.redemptions:
            doc = self.envelope("redemption_cancel", customer)
            doc["original_event_id"] = customer.redemptions.pop()
            return doc
        if roll < 0.87 and customer.available(self.now) >= 20:
            return self.donation(customer)
        if roll < 0.91:
            return self.incident(customer)
        return self.goodwill(customer)

    def purchase(self, customer: Customer, receipt: str | None = None) -> dict[str, Any]:
        rng = self.rng
        doc = self.envelope("purchase", customer)
        amount = Decimal(rng.randint(300, 25_000)) / 100
        if rng.random() < 0.05:
            amount *= 20  # the odd big purchase moves customers up the tiers
        doc["receipt_id"] = receipt or f"{self.tag}-r{self.n:08d}"  # unique across runs (SPEC §8)
        doc["amount"] = self.eur(amount)
        if rng.random() < 0.3:
            doc["items"] = [
                {
                    "sku": f"sku-{rng.randint(1, 5000)}",
                    "qty": 1,
                    "unit_price": self.eur(amount),
                    "category": rng.choice(CATEGORIES),
                }
            ]
        if receipt is None:
            customer.purchases.append([doc["event_id"], amount, Decimal(0)])
            customer.receipts.append(doc["receipt_id"])
            customer.matured.append((self.now + timedelta(days=14), int(amount)))
        return doc

    def refund(self, customer: Customer) -> dict[str, Any]:
        rng = self.rng
        open_ = [p for p in customer.purchases[-10:] if p[2] < p[1]]
        if not open_:
            return self.review(customer)
        purchase = rng.choice(open_)
        left = purchase[1] - purchase[2]
        amount = left if rng.random() < 0.4 else (left * rng.randint(10, 90) / 100)
        amount = max(Decimal("0.01"), amount.quantize(Decimal("0.01")))
        purchase[2] += amount
        customer.points = max(0, customer.points - int(amount))
        doc = self.envelope("refund", customer)
        doc["original_event_id"] = purchase[0]
        doc["amount"] = self.eur(amount)
        return doc

    def review(self, customer: Customer) -> dict[str, Any]:
        rng = self.rng
        doc = self.envelope("review", customer)
        doc["rating"] = rng.choices(range(11), weights=(2, 1, 1, 2, 2, 3, 5, 8, 14, 22, 30))[0]
        doc["touchpoint"] = rng.choice(TOUCHPOINTS)
        if rng.random() < 0.3:
            doc["comment"] = rng.choice(("great", "slow checkout", "friendly staff", "ok"))
        if customer.reviews_rewarded < len(customer.purchases):
            customer.reviews_rewarded += 1
            customer.points += 50
        return doc

    def redemption(self, customer: Customer) -> dict[str, Any]:
        rng = self.rng
        held = customer.available(self.now)
        if held < 20:
            return self.review(customer)
        points = rng.randint(10, max(10, held // 2))
        customer.points -= points
        doc = self.envelope("redemption", customer)
        doc["points"] = points
        doc["reward_id"] = rng.choice(REWARDS)
        customer.redemptions.append(doc["event_id"])
        return doc

    def enrolment(self, customer: Customer) -> dict[str, Any]:
        rng = self.rng
        customer.enrolled = True
        customer.points += 100  # the default welcome
        doc = self.envelope("enrolment", customer)
        doc["channel"] = rng.choice(("store", "app", "web"))
        if rng.random() < 0.5:
            doc["birthday"] = f"--{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        return doc

    def hold(self, customer: Customer) -> dict[str, Any]:
        """A checkout hold for a week (a customer's next event is days away)."""
        rng = self.rng
        available = customer.available(self.now)
        if available < 20:
            return self.review(customer)
        points = rng.randint(10, max(10, available // 2))
        customer.points -= points
        doc = self.envelope("redemption_hold", customer)
        doc.update(
            points=points, reward_id=rng.choice(REWARDS), hold_seconds=int(HOLD.total_seconds())
        )
        customer.holds.append((doc["event_id"], points, self.now))
        return doc

    def settle(self, customer: Customer) -> dict[str, Any]:
        """The oldest open hold: captured (whole or in part) or voided. Holds past their
        week were released by the sweep: their points are back."""
        rng = self.rng
        while customer.holds and self.now - customer.holds[0][2] >= HOLD:
            customer.points += customer.holds.pop(0)[1]
        if not customer.holds:
            return self.review(customer)
        hold_id, points, _ = customer.holds.pop(0)
        roll = rng.random()
        if roll < 0.2:
            customer.points += points
            doc = self.envelope("redemption_void", customer)
        else:
            doc = self.envelope("redemption_capture", customer)
            if roll < 0.4 and points > 1:
                captured = rng.randint(1, points - 1)
                customer.points += points - captured
                doc["points"] = captured
        doc["original_event_id"] = hold_id
        return doc

    def donation(self, customer: Customer) -> dict[str, Any]:
        rng = self.rng
        points = rng.randint(10, max(10, customer.points // 4))
        customer.points -= points
        doc = self.envelope("donation", customer)
        doc.update(points=points, charity_id=rng.choice(("red-cross", "unicef", "local-zoo")))
        return doc

    def incident(self, customer: Customer) -> dict[str, Any]:
        doc = self.envelope("incident", customer)
        doc["severity"] = self.rng.choice(SEVERITIES)
        doc["description"] = self.rng.choice(
            ("delivery two days late", "wrong size delivered", "charged twice", "long queue")
        )
        customer.incidents.append((doc["event_id"], self.now))
        return doc

    def goodwill(self, customer: Customer) -> dict[str, Any]:
        rng = self.rng
        doc = self.envelope("goodwill", customer)
        if rng.random() < 0.2:
            doc["amount"] = self.eur(Decimal(rng.choice((5, 10, 20, 40))))
        else:
            doc["points"] = rng.choice((100, 250, 500, 1000, 3000))
        doc["reason_code"] = rng.choice(REASONS)
        doc["issued_by"] = f"agent-{rng.randint(1, 30)}"
        open_ = [(i, t) for i, t in customer.incidents if self.now - t <= RESOLUTION]
        if open_ and rng.random() < 0.8:
            doc["incident_id"] = open_[-1][0]
        customer.points += doc.get("points", 0)
        return doc

    def referral(self) -> dict[str, Any] | None:
        newcomers = [
            c for c in self.customers[self.regulars :] if not c.purchases and not c.referred
        ]
        if not newcomers:
            return None
        referee = self.rng.choice(newcomers[:50])
        referrer = self.pick()
        if referrer is referee:
            return None
        referee.referred = True
        doc = self.envelope("referral", referee)
        doc["referrer_id"] = referrer.customer_id
        return doc

    def refusal(self) -> dict[str, Any]:
        """An event a rule refuses (the ledger answers 422 with the rule's problem)."""
        rng = self.rng
        customer = self.pick()
        choice = rng.randrange(4)
        if choice == 0 or not customer.purchases:
            doc = self.envelope("redemption", customer)
            doc["points"] = 9_000_000  # insufficient-points
            doc["reward_id"] = "yacht"
            return doc
        if choice == 1:
            doc = self.envelope("refund", customer)
            purchase = customer.purchases[-1]
            doc["original_event_id"] = purchase[0]
            doc["amount"] = self.eur(purchase[1] + 1)  # refund-exceeds-purchase
            return doc
        if choice == 2:
            doc = self.envelope("referral", customer)
            doc["referrer_id"] = customer.customer_id  # self-referral
            return doc
        return self.purchase(customer, receipt=customer.receipts[-1])  # duplicate-receipt


def generate_events(
    seed: int, customers: int, events: int, start: datetime, *, gap_seconds: float = 900.0
) -> Iterator[dict[str, Any]]:
    """`events` POS events for about `customers` customers, from `start` on (aware
    datetime), `gap_seconds` apart on average, deterministic for a given seed."""
    if start.tzinfo is None:
        raise ValueError("start must be an aware datetime (with a UTC offset)")
    traffic = Traffic(seed, customers, start, gap_seconds)
    for _ in range(events):
        doc = traffic.next_event()
        traffic.recent.append(doc)
        if len(traffic.recent) > 200:
            traffic.recent.pop(0)
        yield doc
