"""The change feed's messages (SPEC §4, §6 Kafka `loyalty.projections.v1`): one per change
of a customer's balance, tier, segment or trust status, written to the outbox in the
same transaction as the projection rows. Their JSON Schemas are in
`schemas/projections/<Kind>.v1.json`.

`message_id` is `<kind>:<customer_id>:<position>`: stable across replays, so a consumer
deduplicates on it; `position` is the account event's position in the store.
"""

from __future__ import annotations

from typing import Any

import orjson

from services.ledger.domain.rules import ProgramRules
from services.projections.views.answers import tier_fields
from services.projections.views.common import Data
from services.projections.views.customer import CustomerView
from services.projections.views.watch import Change

KINDS = (
    "BalanceChanged",
    "TierChanged",
    "SegmentChanged",
    "TrustStatusChanged",
    # SPEC §11: downstream consumers erase their copies of the customer's personal data.
    "CustomerErased",
)
SCHEMA_VERSION = 1

# (message_id, customer_id, kind, payload, position): an outbox row without its clock.
Message = tuple[str, str, str, str, int]


def message(
    change: Change,
    view: CustomerView,
    position: int,
    cause: str,
    data: Data,
    recorded_at: str,
    rules: ProgramRules,
) -> Message:
    kind, previous = change
    watch = view.watch
    assert watch is not None, "the change feed needs the live runner's watch"
    payload: dict[str, Any] = {
        "message_id": f"{kind}:{view.customer_id}:{position}",
        "kind": kind,
        "schema_version": SCHEMA_VERSION,
        "customer_id": view.customer_id,
        "position": position,
        "cause": cause,
        "occurred_at": view.moment,
        "recorded_at": recorded_at,
    }
    if kind == "BalanceChanged":
        delta = {
            "available": view.d_available,
            "pending": view.d_pending,
            "debt": view.d_debt,
            "held": view.d_held,
        }
        payload.update(
            available=view.available,
            pending=view.pending,
            debt=view.debt,
            held=view.held,
            lifetime_earned=view.lifetime_earned,
            redeemed=view.redeemed,
            expired=view.expired,
            delta=delta,
        )
    elif kind == "TierChanged":
        payload["previous_tier"] = previous
        fields = tier_fields(watch.tier_standing(rules), watch.windows.at, rules)
        fields.pop("held_by_grace")
        payload.update(fields, currency=rules.currency)
    elif kind == "CustomerErased":
        payload.update(erased_at=data["decided_at"])  # no personal data: ids and times
    elif kind == "SegmentChanged":
        standing = watch.segment_standing(view)
        payload.update(previous_segment=previous, segment=standing.segment, why=standing.why)
    else:
        payload["previous_status"] = previous[0] if previous else None
        payload["previous_flagged"] = previous[1] if previous else None
        payload.update(
            status=watch.status,
            flagged=watch.flagged,
            deposit=view.deposit,
            good_jobs=view.good_jobs,
            mistakes=view.mistakes,
        )
    return (
        payload["message_id"],
        view.customer_id,
        kind,
        orjson.dumps(payload).decode(),
        position,
    )
