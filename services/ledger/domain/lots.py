"""Lots and postings: the bookkeeping under every points movement.

A lot is one credit (a purchase's points, a review reward, a goodwill grant ...). It is
*pending* until it matures, then *available* until it expires. Points leave a lot by
being used (a redemption, a claw-back), reversed (a refund of its own purchase) or
expired.

Every movement is posted double-entry (SPEC §4): customer accounts hold points
(`customer:pending`, `customer:available`) or owe them (`customer:debt`, negative),
program accounts are the other side (`program:issued`, `program:redeemed`,
`program:expired`). The postings of one event always sum to zero, so a customer's
available + pending - debt equals the sum of their customer postings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal


def floor_points(value: Decimal) -> int:
    """Whole points, rounded down."""
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


PENDING = "customer:pending"
AVAILABLE = "customer:available"
DEBT = "customer:debt"
ISSUED = "program:issued"
REDEEMED = "program:redeemed"
EXPIRED = "program:expired"
HELD = "customer:held"  # points set aside by a checkout hold (SPEC §9)
CHARITY = "charity:"  # + charity_id: the account donated points go to (SPEC §9)

Postings = list[list[str | int]]

# Lots of credits that are not a POS event are named with a "/", which no event_id may
# contain, so that no lot can ever replace another.
REFERRAL_LOT = "referral/{referee_id}"
ADJUSTMENT_LOT = "adjustment/{adjustment_id}"
IMPORT_LOT = "import/{import_id}"
Allocation = list[list[str | int]]


@dataclass(slots=True)
class Lot:
    lot_id: str
    source: str
    points: int
    pending: bool
    earned_at: datetime
    matures_at: datetime | None
    expires_at: datetime
    rule_version: int
    used: int = 0
    reversed: int = 0
    expired: int = 0

    @property
    def remaining(self) -> int:
        return self.points - self.used - self.reversed - self.expired

    def spendable_at(self, moment: datetime) -> int:
        if self.pending or self.expires_at <= moment:
            return 0
        return max(self.remaining, 0)


def move(postings: Postings, debit: str, credit: str, points: int) -> None:
    """Move `points` from `debit` to `credit` (both legs, so the sum stays zero)."""
    if points:
        postings.append([debit, -points])
        postings.append([credit, points])


def soonest_expiring(lots: dict[str, Lot], moment: datetime) -> list[Lot]:
    spendable = [lot for lot in lots.values() if lot.spendable_at(moment) > 0]
    return sorted(spendable, key=lambda lot: (lot.expires_at, lot.earned_at, lot.lot_id))


def allocate(
    lots: dict[str, Lot], points: int, moment: datetime, *, exclude: str | None = None
) -> tuple[Allocation, int]:
    """Take up to `points` from available lots (but `exclude`), soonest-expiring first.

    Returns the allocation `[[lot_id, points], ...]` and what could not be covered.
    """
    allocation: Allocation = []
    missing = points
    for lot in soonest_expiring(lots, moment):
        if lot.lot_id == exclude:
            continue
        if missing == 0:
            break
        take = min(missing, lot.spendable_at(moment))
        allocation.append([lot.lot_id, take])
        missing -= take
    return allocation, missing
