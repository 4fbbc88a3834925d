"""What a POS command did: one frozen dataclass per kind of answer.

The application's commands (`application/commands.py`) answer one of these; the intake
record stores `to_json()` (the effect a repeat answers again), and the HTTP and Kafka
edges send it. `to_json()` is the answer's JSON object exactly as the API documents it:
the fields in their order, a field that only some answers have (a purchase's
`purchase_points`, `campaigns`) left out when it is None. An effect also reads like that
object (`effect["points"]`, `dict(effect)`, `effect == {...}`), so code that looked at
the answer before it was typed reads it the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any, ClassVar, Self


@cache
def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


class PosEffect(Mapping[str, Any]):
    """The base of every effect (a dataclass subclass with `kw_only`, `frozen`, `slots`
    and `eq=False`: equality is the JSON object's, `Mapping`'s)."""

    __slots__ = ()
    optional: ClassVar[frozenset[str]] = frozenset()  # left out of the JSON when None

    def to_json(self) -> dict[str, Any]:
        optional = self.optional
        if not optional:
            return {name: getattr(self, name) for name in _names(type(self))}
        found = ((name, getattr(self, name)) for name in _names(type(self)))
        return {k: v for k, v in found if v is not None or k not in optional}

    @classmethod
    def of(cls, answer: Mapping[str, Any]) -> Self:
        """The effect of an account's answer (its keys are the fields: no more, no less)."""
        return cls(**answer)

    def __getitem__(self, key: str) -> Any:
        if key in _names(type(self)):
            value = getattr(self, key)
            if value is not None or key not in self.optional:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_json()!r})"


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class PurchaseEffect(PosEffect):
    optional: ClassVar[frozenset[str]] = frozenset({"purchase_points", "campaigns"})
    points: int  # with the campaigns' points, when any met
    earned_on: str
    status: str
    lot_id: str
    matures_at: Any
    expires_at: Any
    tier: str
    multiplier: Any
    rule_version: int
    purchase_points: int | None = None  # the purchase's own, when campaigns granted more
    campaigns: list[dict[str, Any]] | None = None  # None: the ledger has no campaigns


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class RefundEffect(PosEffect):
    points_reversed: int
    takes: Any
    debt_added: int
    rule_version: int
    refunded_total: str


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class ReferralEffect(PosEffect):
    referrer_id: str
    reward_points: int
    reward_status: str


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class ReviewEffect(PosEffect):
    points: int
    no_reward_reason: str | None
    rule_version: int


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class GoodwillEffect(PosEffect):
    """A goodwill granted (at once, or when an admin approved it)."""

    status: str  # "granted"
    points: int
    approved_by: str | None
    debt_repaid: int
    rule_version: int


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class AwaitingApproval(PosEffect):
    status: str  # "awaiting_approval"
    points: int
    waits_because: str


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class IncidentEffect(PosEffect):
    severity: str
    trust: str


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class RedemptionEffect(PosEffect):
    points: int
    allocation: Any
    available_after: int


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class RedemptionCancelEffect(PosEffect):
    points: int
    allocation: Any
    debt_repaid: int
    expired: Any


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class EnrolmentEffect(PosEffect):
    welcome_points: int
    status: str
    lot_id: str
    expires_at: Any
    debt_repaid: int
    rule_version: int


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class HoldEffect(PosEffect):
    points: int
    hold_id: str
    expires_at: Any
    allocation: Any
    available_after: int
    held_after: int


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class CaptureEffect(PosEffect):
    hold_id: str
    points: int
    released: int
    debt_repaid: int
    available_after: int


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class HoldReleaseEffect(PosEffect):
    hold_id: str
    reason: str
    points: int
    debt_repaid: int


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class DonationEffect(PosEffect):
    points: int
    charity_id: str
    allocation: Any
    available_after: int


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class OpeningBalanceEffect(PosEffect):
    points: int
    lot_id: str
    earned_at: str
    expires_at: str
    debt_repaid: int


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class FollowUpsApplied(PosEffect):
    """An accepted event's effect, and the parked follow-ups applied right after it."""

    effect: PosEffect
    applied_follow_ups: list[str]

    def to_json(self) -> dict[str, Any]:
        return {**self.effect.to_json(), "applied_follow_ups": self.applied_follow_ups}

    def __getitem__(self, key: str) -> Any:
        return self.applied_follow_ups if key == "applied_follow_ups" else self.effect[key]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class Parked(PosEffect):
    """A follow-up that waits for its original (SPEC §8)."""

    original_event_id: str | None


def as_json(answer: Mapping[str, Any]) -> dict[str, Any]:
    """An answer as its JSON object: a typed effect's `to_json()`, or a copy of one that
    is a mapping already (an effect read back from its intake record, an admin's)."""
    return answer.to_json() if isinstance(answer, PosEffect) else dict(answer)
