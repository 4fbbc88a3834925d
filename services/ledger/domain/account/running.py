"""The account's running state: what its decisions read, kept up to date by the handlers.

A decision must not cost more for a customer with 100,000 events than for a new one
(issue 14). The handlers (`apply`) keep, beside the lots and purchases themselves:

- `LotIndex`: the available and pending totals, and the lots a redemption, claw-back or
  sweep looks at, each in the order it looks at them: spendable lots (available, points
  left) by (expiry, earning, lot id), which is `lots.soonest_expiring`'s order, and
  pending lots by maturity.
- `SpendIndex`: the purchases' net spend by time, for the tier's rolling windows: prefix
  sums (a Fenwick tree) over the purchases in time order, and a small buffer for the few
  dated before the latest one, merged in when it grows.

Both are derived from the events as they are applied, never stored: a replay rebuilds
them, and the stored events are unchanged. The slow computations they replace stay the
reference (`lots.allocate`, `tiers.tier_at`, the property tests compare them).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from math import isqrt

from sortedcontainers import SortedList

from services.ledger.domain.lots import Allocation, Lot
from services.ledger.domain.rules import ProgramRules, TierStep
from services.ledger.domain.tiers import _step_for

# Datetimes are whole microseconds: "expires at or before m" is "expires before m + 1 µs".
_TICK = timedelta(microseconds=1)
_ZERO = Decimal("0")

SpendableKey = tuple[datetime, datetime, str]


def _after(moment: datetime) -> tuple[datetime]:
    """The smallest key of a lot expiring after `moment` (keys are compared as tuples)."""
    try:
        return (moment + _TICK,)
    except OverflowError:  # datetime.max: nothing expires after it
        return (datetime.max.replace(tzinfo=moment.tzinfo),)


class _Compared:
    """Equal when every slot is: a refused command is tested to leave the state as it was."""

    __slots__: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({fields})"


class LotIndex(_Compared):
    """Totals and orders over the account's lots. Every change to a lot goes through
    `leave` (before) and `enter` (after), so that what the lot counts for moves with it."""

    __slots__ = ("available", "maturing", "pending", "spendable", "spendable_points")

    def __init__(self) -> None:
        self.available = 0  # the sum of remaining points over lots not pending
        self.pending = 0  # ... over pending lots
        self.spendable_points = 0  # the points of `spendable`'s lots
        self.spendable: SortedList = SortedList()  # SpendableKey of lots available, > 0 left
        self.maturing: SortedList = SortedList()  # (matures_at, lot_id) of pending lots

    @staticmethod
    def key(lot: Lot) -> SpendableKey:
        return (lot.expires_at, lot.earned_at, lot.lot_id)

    def leave(self, lot: Lot) -> None:
        remaining = lot.remaining
        if lot.pending:
            self.pending -= remaining
            if lot.matures_at is not None:
                self.maturing.remove((lot.matures_at, lot.lot_id))
        else:
            self.available -= remaining
            if remaining > 0:
                self.spendable.remove(self.key(lot))
                self.spendable_points -= remaining

    def enter(self, lot: Lot) -> None:
        remaining = lot.remaining
        if lot.pending:
            self.pending += remaining
            if lot.matures_at is not None:
                self.maturing.add((lot.matures_at, lot.lot_id))
        else:
            self.available += remaining
            if remaining > 0:
                self.spendable.add(self.key(lot))
                self.spendable_points += remaining

    # ---- what the decisions read -------------------------------------------------------
    def expired_by(self, moment: datetime) -> Iterator[SpendableKey]:
        """Spendable lots whose expiry is at or before `moment` (not yet swept)."""
        return self.spendable.irange(maximum=_after(moment), inclusive=(True, False))

    def spendable_at(self, moment: datetime, lots: dict[str, Lot]) -> int:
        """`sum(lot.spendable_at(moment) for lot in lots.values())`, from the totals."""
        unswept = self.spendable.bisect_left(_after(moment))
        if not unswept:  # the sweep is up to date: the usual case
            return self.spendable_points
        expired = sum(lots[lot_id].remaining for _, _, lot_id in self.spendable.islice(0, unswept))
        return self.spendable_points - expired

    def allocate(
        self, lots: dict[str, Lot], points: int, moment: datetime, *, exclude: str | None = None
    ) -> tuple[Allocation, int]:
        """`lots.allocate`: soonest-expiring first, reading only the lots it takes from."""
        allocation: Allocation = []
        missing = points
        if missing == 0:
            return allocation, missing
        for _, _, lot_id in self.spendable.irange(minimum=_after(moment)):
            if lot_id == exclude:
                continue
            take = min(missing, lots[lot_id].remaining)
            allocation.append([lot_id, take])
            missing -= take
            if missing == 0:
                break
        return allocation, missing

    def maturing_by(self, now: datetime) -> Iterator[tuple[datetime, str]]:
        return self.maturing.irange(maximum=_after(now), inclusive=(True, False))


class SpendIndex(_Compared):
    """Net spend (amount - refunded) of the purchases by time, summed over any window."""

    __slots__ = ("ids", "late", "negative", "times", "tree", "values", "where")

    def __init__(self) -> None:
        self.times: list[datetime] = []  # the purchases merged in, in time order
        self.values: list[Decimal] = []  # their net spend, in the same order
        self.ids: list[str | None] = []  # their ids (None: replaced by a later record)
        self.tree: list[Decimal] = [_ZERO]  # Fenwick tree over `values` (1-based)
        self.where: dict[str, int] = {}  # purchase -> index in `times`
        self.late: dict[str, tuple[datetime, Decimal]] = {}  # purchase -> (when, net)
        self.negative = 0  # purchases whose net spend is below zero (a refund never is)

    def _slack(self) -> int:
        """How many entries a late purchase may move at once, or wait in `late`."""
        return max(64, isqrt(len(self.times)))

    # ---- changes ------------------------------------------------------------------------
    def add(self, purchase_id: str, when: datetime, net: Decimal) -> None:
        if purchase_id in self.where or purchase_id in self.late:
            self._drop(purchase_id)  # a purchase recorded again replaces the first
        if net < 0:
            self.negative += 1
        times = self.times
        if not times or when >= times[-1]:
            self._splice(len(times), [(when, purchase_id, net)])
            return
        # Dated before the latest purchase: merged in at once when only a few purchases
        # follow it, else held in `late` (scanned by every sum) until enough wait.
        at = bisect_right(times, when)
        if len(times) - at <= self._slack():
            self._splice(at, [(when, purchase_id, net), *self._tail(at)])
            return
        self.late[purchase_id] = (when, net)
        if len(self.late) > self._slack():
            at = bisect_right(times, min(w for w, _ in self.late.values()))
            entries = [*self._tail(at), *((w, i, v) for i, (w, v) in self.late.items())]
            entries.sort(key=lambda entry: entry[0])
            self.late = {}
            self._splice(at, entries)

    def change(self, purchase_id: str, delta: Decimal) -> None:
        late = self.late.get(purchase_id)
        if late is not None:
            when, before = late
            after = before + delta
            self.late[purchase_id] = (when, after)
        else:
            index = self.where[purchase_id]
            before = self.values[index]
            self.values[index] = after = before + delta
            i = index + 1
            tree = self.tree
            while i < len(tree):
                tree[i] += delta
                i += i & -i
        self.negative += (after < 0) - (before < 0)

    def _drop(self, purchase_id: str) -> None:
        # Kept at zero spend until the next splice: a moment more looked at, no peak moved.
        late = self.late.get(purchase_id)
        net = late[1] if late is not None else self.values[self.where[purchase_id]]
        self.change(purchase_id, -net)
        self.late.pop(purchase_id, None)
        index = self.where.pop(purchase_id, None)
        if index is not None:
            self.ids[index] = None

    def _tail(self, at: int) -> list[tuple[datetime, str, Decimal]]:
        """The merged purchases from index `at` on (but the replaced ones)."""
        ids = self.ids
        return [
            (self.times[i], pid, self.values[i])
            for i in range(at, len(ids))
            if (pid := ids[i]) is not None
        ]

    def _splice(self, at: int, entries: list[tuple[datetime, str, Decimal]]) -> None:
        """Replace the entries from index `at` on by `entries` (in time order). Tree nodes
        up to `at` cover only entries before it and stay; the others are recomputed as
        differences of prefix sums, from those nodes and the new entries."""
        times, values, ids, tree, where = self.times, self.values, self.ids, self.tree, self.where
        del times[at:], values[at:], ids[at:], tree[at + 1 :]
        running = [self._prefix(at)]  # running[k]: the sum of the first at + k entries
        for when, pid, net in entries:
            where[pid] = len(times)
            times.append(when)
            values.append(net)
            ids.append(pid)
            running.append(running[-1] + net)
        for i in range(at + 1, len(times) + 1):
            low = i - (i & -i)
            below = running[low - at] if low >= at else self._prefix(low)
            tree.append(running[i - at] - below)

    # ---- sums -----------------------------------------------------------------------------
    def _prefix(self, i: int) -> Decimal:
        total = _ZERO
        tree = self.tree
        while i > 0:
            total += tree[i]
            i -= i & -i
        return total

    def spend(self, start: datetime, end: datetime) -> Decimal:
        """Net spend with occurred_at in (start, end]."""
        times = self.times
        total = self._prefix(bisect_right(times, end)) - self._prefix(bisect_right(times, start))
        for when, net in self.late.values():
            if start < when <= end:
                total += net
        return total

    def times_in(self, start: datetime, end: datetime) -> list[datetime]:
        """The purchases' times in (start, end], in time order."""
        times = self.times
        found = times[bisect_right(times, start) : bisect_right(times, end)]
        late = [w for w, _ in self.late.values() if start < w <= end]
        if late:
            found = sorted(found + late)
        return found

    def tier_step(self, at: datetime, rules: ProgramRules) -> TierStep:
        """`tiers.tier_at(entries, at, rules).step`, from the sums; the caller falls back
        to `tier_at` itself when a purchase's net spend is negative (`negative`)."""
        ladder = rules.tier_ladder
        window = timedelta(days=rules.tier_window_days)
        grace_start = at - timedelta(days=rules.tier_grace_days)
        oldest = grace_start - window
        # (tier_at only looks at purchases after `oldest`: it matters if grace were < 0.)
        qualifying = _step_for(self.spend(max(at - window, oldest), at), ladder)
        if qualifying is ladder[-1]:  # nothing above it to hold
            return qualifying
        rank = {s.name: i for i, s in enumerate(ladder)}
        held = qualifying
        # No net spend is negative: every window of the grace period holds at most what
        # the whole (oldest, at] holds (tier_at's ceiling).
        ceiling = _step_for(self.spend(oldest, at), ladder)
        if rank[ceiling.name] > rank[held.name]:
            # The highest spend of the grace period is at its start or at a purchase.
            for moment in [grace_start, *self.times_in(grace_start, at)]:
                step = _step_for(self.spend(moment - window, min(moment, at)), ladder)
                if rank[step.name] > rank[held.name]:
                    held = step
                    if held.name == ceiling.name:
                        break
        return held
