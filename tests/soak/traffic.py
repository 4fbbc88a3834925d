"""The soak's traffic: realistic POS events (`generate_events`: duplicates and rule
refusals included) with a few poison messages mixed in, each keyed by customer_id."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from services.tools.simulation import generate_events

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
# The traffic's dates fit in 300 days from START, however many events: at the
# simulation's usual 15 minutes apart, 1,000,000 events would run 28 years past START
# and all but the first ~3% be refused as occurred-in-future (the first 1M-event run).
SPAN_SECONDS = 300 * 86_400
POISON_EVERY = 1000  # about one message in this many is poison


@dataclass(frozen=True)
class Outgoing:
    key: bytes
    value: bytes | None
    customer_id: str
    event_id: str | None
    valid: bool


def poison(rng: random.Random, n: int, customer_id: str) -> Outgoing:
    """A message the consumer must dead-letter as invalid and never store."""
    event_id = f"poison-{n:06d}"
    kind = n % 4
    if kind == 0:
        value: bytes | None = b'{"event_id": "' + event_id.encode() + b'", not json'
    elif kind == 1:  # the contract: no occurred_at, no amount
        value = orjson.dumps(
            {
                "event_id": event_id,
                "type": "purchase",
                "customer_id": customer_id,
                "schema_version": 1,
            }
        )
    elif kind == 2:  # nested past the validator's recursion limit (issue 15, item 1)
        depth = 260 + rng.randrange(40)
        value = (
            b'{"event_id": "'
            + event_id.encode()
            + b'", "type": "purchase", "x": '
            + b"[" * depth
            + b"]" * depth
            + b"}"
        )
    else:  # a tombstone
        value = None
    return Outgoing(customer_id.encode(), value, customer_id, event_id, valid=False)


def messages(seed: int, events: int, customers: int) -> Iterator[Outgoing]:
    """`events` simulated POS events plus about events/POISON_EVERY poison messages."""
    rng = random.Random(f"soak-poison-{seed}")
    n = 0
    gap = min(900.0, SPAN_SECONDS / max(events, 1))
    for doc in generate_events(seed, customers, events, START, gap_seconds=gap):
        customer = str(doc["customer_id"])
        yield Outgoing(customer.encode(), orjson.dumps(doc), customer, doc["event_id"], True)
        if rng.randrange(POISON_EVERY) == 0 or (n < 4 and rng.randrange(50) == 0):
            yield poison(rng, n, customer)
            n += 1
    while n < 4:  # every kind at least once, even in a small run
        yield poison(rng, n, f"sim{seed}-c000000")
        n += 1
