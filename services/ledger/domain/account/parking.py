"""Follow-ups that arrive before their original wait on the account (SPEC §8 "Out of
order"): a refund or redemption cancel whose purchase or redemption is not known yet is
parked, applied in the same transaction as its original when that arrives (in
`occurred_at` order), and refused with `unknown-original-event` once it has waited
`park_days` (the sweep). The application decides when to park and release
(`application/parking.py`); the account keeps what waits, by original event id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.ledger.domain.account.bookkeeping import Bookkeeping
from services.ledger.domain.account.events import FollowUpParked, FollowUpReleased
from services.ledger.domain.clock import days, iso, parse_ts

APPLIED, REFUSED, EXPIRED = "applied", "refused", "expired"


@dataclass(frozen=True, slots=True)
class ParkedFollowUp:
    event_id: str
    type: str
    original_event_id: str
    occurred_at: str
    park_until: str


class Parking(Bookkeeping):
    def park_follow_up(
        self,
        *,
        event_id: str,
        type: str,
        original_event_id: str,
        occurred_at: datetime,
        park_days: int,
    ) -> ParkedFollowUp:
        self.trigger_event(
            FollowUpParked,
            event_id=event_id,
            customer_id=self.customer_id,
            type=type,
            original_event_id=original_event_id,
            occurred_at=iso(occurred_at),
            park_until=iso(occurred_at + days(park_days)),
        )
        return self.parked[event_id]

    def parked_for(self, original_event_id: str) -> list[ParkedFollowUp]:
        """What waits for this original, in the order it is applied (occurred_at)."""
        waiting = [p for p in self.parked.values() if p.original_event_id == original_event_id]
        return sorted(waiting, key=lambda p: (p.occurred_at, p.event_id))

    def parked_due(self, now: datetime) -> list[ParkedFollowUp]:
        """What has waited past its `park_until` by `now` (the sweep refuses these)."""
        due = [p for p in self.parked.values() if parse_ts(p.park_until) < now]
        return sorted(due, key=lambda p: (p.park_until, p.event_id))

    def release_follow_up(self, event_id: str, verdict: str, decided_at: datetime) -> None:
        parked = self.parked[event_id]
        self.trigger_event(
            FollowUpReleased,
            event_id=event_id,
            original_event_id=parked.original_event_id,
            verdict=verdict,
            decided_at=iso(decided_at),
        )

    # ---- applying the events ------------------------------------------------------------
    def on_follow_up_parked(self, e: FollowUpParked) -> None:
        self.parked[e.event_id] = ParkedFollowUp(
            e.event_id, e.type, e.original_event_id, e.occurred_at, e.park_until
        )

    def on_follow_up_released(self, e: FollowUpReleased) -> None:
        self.parked.pop(e.event_id, None)
