"""Sliding-window sums over a customer's purchases, kept as the fold's clock advances.

The tier needs the net spend in the rolling tier window; the segment and lifetime value
need the purchases (not wholly refunded) and their net spend in the last 12 months. The
purchases are kept in time order with one pointer per window: advancing the clock only
drops what leaves the window, a purchase at the clock is added, a refund adjusts the sum
it falls in, so each event costs O(1) however long the history. A purchase recorded out
of order (earlier than the newest) re-sums from scratch.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from services.projections.views.common import YEAR, ZERO


class Purchase:
    __slots__ = ("amount", "event_id", "occurred_at", "refunded", "store_id", "when")

    def __init__(
        self,
        event_id: str,
        occurred_at: str,
        store_id: str | None,
        amount: Decimal,
        refunded: Decimal = ZERO,
    ) -> None:
        self.event_id = event_id
        self.occurred_at = occurred_at
        self.when = datetime.fromisoformat(occurred_at)
        self.store_id = store_id
        self.amount = amount
        self.refunded = refunded

    @property
    def net(self) -> Decimal:
        return self.amount - self.refunded

    def row(self, customer_id: str) -> tuple[Any, ...]:
        """The purchase's row in the purchases table."""
        refunded = self.refunded
        return (
            customer_id,
            self.event_id,
            self.occurred_at,
            self.store_id,
            str(self.amount),
            str(refunded),
            str(self.amount - refunded) if refunded else str(self.amount),
        )

    def __lt__(self, other: Purchase) -> bool:
        return (self.when, self.event_id) < (other.when, other.event_id)


class SpendWindows:
    __slots__ = (
        "at",
        "items",
        "realised",
        "sold",
        "tier_days",
        "tier_lo",
        "tier_start",
        "tier_sum",
        "whens",
        "year_count",
        "year_lo",
        "year_start",
        "year_sum",
    )

    def __init__(self) -> None:
        self.items: list[Purchase] = []  # in time order
        self.whens: list[datetime] = []
        self.at: datetime | None = None  # the moment the sums are for (the fold's clock)
        self.tier_days = -1
        self.tier_start = self.year_start = datetime.min
        self.tier_lo = self.year_lo = 0
        self.tier_sum = self.year_sum = ZERO
        self.year_count = 0
        self.sold = 0  # purchases not wholly refunded, ever
        self.realised = ZERO  # net purchases, ever

    def add(self, purchase: Purchase) -> None:
        net = purchase.net
        if net > 0:
            self.sold += 1
        self.realised += net
        if not self.whens or purchase.when >= self.whens[-1]:
            self.items.append(purchase)
            self.whens.append(purchase.when)
            if self.at is not None:
                self.tier_sum += net
                self.year_sum += net
                self.year_count += net > 0
                self._slide()
            return
        # A purchase earlier than the last one (a late POS event): into its place, and
        # into the sums of the windows it falls in (a window is (start, at]; `at`, the
        # fold's clock, is at or after every purchase), not a re-sum of them all.
        index = bisect_right(self.items, purchase)
        self.items.insert(index, purchase)
        self.whens.insert(index, purchase.when)
        if self.at is None:
            return
        when = purchase.when
        if when <= self.tier_start:
            self.tier_lo += 1
        else:
            self.tier_sum += net
        if when <= self.year_start:
            self.year_lo += 1
        elif net > 0:
            self.year_sum += net
            self.year_count += 1

    def refund(self, purchase: Purchase, amount: Decimal) -> None:
        was_sold = purchase.net > 0
        purchase.refunded += amount
        dropped = was_sold and purchase.net <= 0
        self.sold -= dropped
        self.realised -= amount
        if self.at is None:
            return
        if purchase.when > self.tier_start:
            self.tier_sum -= amount
        if purchase.when > self.year_start:
            self.year_sum -= amount
            self.year_count -= dropped

    def advance(self, at: datetime, tier_days: int) -> None:
        """Move the windows to end at `at` (a later moment), or re-sum for a new tier window."""
        if self.at is None or tier_days != self.tier_days or at < self.at:
            self.at, self.tier_days = at, tier_days
            self.resum()
        elif at > self.at:
            self.at = at
            self.tier_start = at - timedelta(days=tier_days)
            self.year_start = at - YEAR
            self._slide()

    def resum(self) -> None:
        if self.at is None:
            return
        self.tier_start = self.at - timedelta(days=self.tier_days)
        self.year_start = self.at - YEAR
        self.tier_lo = bisect_right(self.whens, self.tier_start)
        self.year_lo = bisect_right(self.whens, self.year_start)
        self.tier_sum = sum((p.net for p in self.items[self.tier_lo :]), ZERO)
        recent = [p.net for p in self.items[self.year_lo :] if p.net > 0]
        self.year_sum = sum(recent, ZERO)
        self.year_count = len(recent)

    def _slide(self) -> None:
        items, whens = self.items, self.whens
        end = len(items)
        while self.tier_lo < end and whens[self.tier_lo] <= self.tier_start:
            self.tier_sum -= items[self.tier_lo].net
            self.tier_lo += 1
        while self.year_lo < end and whens[self.year_lo] <= self.year_start:
            net = items[self.year_lo].net
            if net > 0:
                self.year_sum -= net
                self.year_count -= 1
            self.year_lo += 1
