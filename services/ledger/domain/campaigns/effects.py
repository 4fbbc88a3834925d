"""What a campaign gives (SPEC §9): its `effect` is data, one of four kinds.

- `multiplier` (`factor`): the purchase's own points times `factor`; the campaign's
  points are the part above the points the purchase earned anyway.
- `bonus` (`points`): a fixed number of points.
- `category_multiplier` (`category`, `factor`): the points the purchase's lines of that
  category earned, times `factor` minus one (the same earn rate and tier multiplier).
- `stamp` (`stamps_needed`, `reward_points`): the "gift in parts" card of seed 004 §9:
  each matching purchase is one stamp; the purchase that completes the card earns
  `reward_points` and starts a new card.

Factors are decimal strings (never floats); points are integers; all points floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from services.ledger.domain import errors
from services.ledger.domain.lots import floor_points

KINDS = ("multiplier", "bonus", "category_multiplier", "stamp")
MAX_FACTOR = Decimal(100)
MAX_POINTS = 1_000_000_000


class InvalidEffect(errors.LedgerError):
    slug = "invalid-effect"
    title = "The campaign's effect is not one the ledger knows"


@dataclass(frozen=True)
class CampaignEffect:
    kind: str
    factor: Decimal = Decimal(1)
    points: int = 0
    category: str | None = None
    stamps_needed: int = 0

    def points_for(self, *, base_points: int, category_spend: Decimal, earn_rate: Decimal) -> int:
        """The points of a matching purchase (before budget and cap), for every kind but
        `stamp`, whose reward depends on the card (`Stamps`). `category_spend` is the
        money of the purchase's lines in `category`; `earn_rate` includes the tier's."""
        if self.kind == "multiplier":
            return floor_points(Decimal(base_points) * (self.factor - 1))
        if self.kind == "bonus":
            return self.points
        if self.kind == "category_multiplier":
            return floor_points(category_spend * earn_rate * (self.factor - 1))
        return 0


def _factor(raw: Any) -> Decimal:
    if not isinstance(raw, str):
        raise InvalidEffect('factor must be a decimal string, e.g. "2"', field="effect.factor")
    try:
        factor = Decimal(raw)
    except InvalidOperation:
        raise InvalidEffect(f"factor {raw!r} is not a decimal", field="effect.factor") from None
    if not factor.is_finite() or not Decimal(1) <= factor <= MAX_FACTOR:
        raise InvalidEffect(f"factor must be between 1 and {MAX_FACTOR}", field="effect.factor")
    return factor


def _points(raw: Any, name: str) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or not 1 <= raw <= MAX_POINTS:
        raise InvalidEffect(
            f"{name} must be an integer from 1 to {MAX_POINTS}", field=f"effect.{name}"
        )
    return raw


def parse_effect(document: dict[str, Any]) -> CampaignEffect:
    """The effect document checked; `InvalidEffect` names the field that is wrong."""
    kind = document.get("kind")
    if kind not in KINDS:
        raise InvalidEffect(f"kind must be one of {', '.join(KINDS)}", field="effect.kind")
    allowed = {
        "multiplier": {"kind", "factor"},
        "bonus": {"kind", "points"},
        "category_multiplier": {"kind", "category", "factor"},
        "stamp": {"kind", "stamps_needed", "reward_points"},
    }[kind]
    extra = sorted(set(document) - allowed)
    if extra:
        raise InvalidEffect(f"{kind} takes no {extra[0]!r}", field=f"effect.{extra[0]}")
    if kind == "multiplier":
        return CampaignEffect(kind, factor=_factor(document.get("factor")))
    if kind == "bonus":
        return CampaignEffect(kind, points=_points(document.get("points"), "points"))
    if kind == "category_multiplier":
        category = document.get("category")
        if not isinstance(category, str) or not 1 <= len(category) <= 64:
            raise InvalidEffect(
                "category must be a string of 1 to 64 characters", field="effect.category"
            )
        return CampaignEffect(kind, factor=_factor(document.get("factor")), category=category)
    needed = document.get("stamps_needed")
    if not isinstance(needed, int) or isinstance(needed, bool) or not 1 <= needed <= 1000:
        raise InvalidEffect(
            "stamps_needed must be an integer from 1 to 1000", field="effect.stamps_needed"
        )
    return CampaignEffect(
        kind, points=_points(document.get("reward_points"), "reward_points"), stamps_needed=needed
    )
