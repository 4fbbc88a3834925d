"""A lot as the read side keeps it: one credit and what became of its points."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Lot:
    # the lots table's columns a view is read back from (`from_row`), in that order
    COLUMNS = (
        "lot_id, source, status, points, used, reversed, expired, earned_at, matures_at, "
        "expires_at, rule_version"
    )

    __slots__ = (
        "earned_at",
        "expired",
        "expires_at",
        "lot_id",
        "matures_at",
        "pending",
        "points",
        "promoter_dt",
        "reversed",
        "rule_version",
        "source",
        "used",
    )

    def __init__(
        self,
        lot_id: str,
        source: str,
        points: int,
        pending: bool,
        earned_at: str,
        matures_at: str | None,
        expires_at: str,
        rule_version: int,
        used: int = 0,
        reversed: int = 0,
        expired: int = 0,
    ) -> None:
        self.lot_id = lot_id
        self.source = source
        self.points = points
        self.pending = pending
        self.earned_at = earned_at
        self.matures_at = matures_at
        self.expires_at = expires_at
        self.rule_version = rule_version
        self.used = used
        self.reversed = reversed
        self.expired = expired

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Lot:
        """The lot from its row's `COLUMNS`."""
        lot_id, source, status, points, used, reversed_, expired, earned, matures, expires, rv = row
        return cls(
            lot_id,
            source,
            int(points),
            status == "pending",
            earned,
            matures,
            expires,
            int(rv),
            int(used),
            int(reversed_),
            int(expired),
        )

    @property
    def remaining(self) -> int:
        return self.points - self.used - self.reversed - self.expired

    def row(self, customer_id: str) -> tuple[Any, ...]:
        """The lot's row in the lots table."""
        remaining = self.points - self.used - self.reversed - self.expired
        status = "pending" if self.pending else "available" if remaining > 0 else "closed"
        return (
            customer_id,
            self.lot_id,
            self.source,
            status,
            self.points,
            self.used,
            self.reversed,
            self.expired,
            remaining,
            self.earned_at,
            self.matures_at,
            self.expires_at,
            self.rule_version,
        )

    @property
    def status(self) -> str:
        if self.pending:
            return "pending"
        return "available" if self.remaining > 0 else "closed"


class HoldRow:
    """A checkout hold as the read side keeps it (SPEC §9): `status` open, captured,
    voided or expired; `captured` the points a capture redeemed."""

    # the holds table's columns a hold is read back from (`from_row`), in that order
    COLUMNS = "hold_id, points, reward_id, held_at, expires_at, status, captured"

    __slots__ = ("captured", "expires_at", "held_at", "hold_id", "points", "reward_id", "status")

    def __init__(
        self,
        hold_id: str,
        points: int,
        reward_id: str,
        held_at: str,
        expires_at: str,
        status: str,
        captured: int,
    ) -> None:
        self.hold_id = hold_id
        self.points = points
        self.reward_id = reward_id
        self.held_at = held_at
        self.expires_at = expires_at
        self.status = status
        self.captured = captured

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> HoldRow:
        """The hold from its row's `COLUMNS`."""
        hold_id, points, reward_id, held_at, expires_at, status, captured = row
        return cls(hold_id, int(points), reward_id, held_at, expires_at, status, int(captured))

    def row(self, customer_id: str) -> tuple[Any, ...]:
        return (
            customer_id,
            self.hold_id,
            self.points,
            self.reward_id,
            self.held_at,
            self.expires_at,
            self.status,
            self.captured,
        )

    def answer(self) -> dict[str, Any]:
        return {
            "hold_id": self.hold_id,
            "points": self.points,
            "reward_id": self.reward_id,
            "held_at": self.held_at,
            "expires_at": self.expires_at,
            "status": self.status,
            "captured": self.captured,
        }
