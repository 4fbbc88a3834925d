"""The traffic generator behind `loyalty simulate` and the Kafka benchmark: valid POS
events, deterministic for a seed, with some repeats and some that rules refuse."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from services.ledger.adapters.contract import validate_event
from services.projections.views.common import account_event_names
from services.projections.views.customer import HANDLED_EVENTS
from services.tools.simulation import generate_events

START = datetime(2025, 5, 1, tzinfo=UTC)


def test_the_same_seed_gives_the_same_events_and_another_seed_others() -> None:
    first = list(generate_events(4, 50, 500, START))
    assert first == list(generate_events(4, 50, 500, START))
    assert first != list(generate_events(5, 50, 500, START))


def test_every_event_meets_the_pos_contract_and_new_ones_come_in_time_order() -> None:
    events = list(generate_events(9, 300, 3000, START))
    assert len(events) == 3000
    for event in events:
        validate_event(event)
    seen: set[str] = set()
    times = []
    for e in events:  # a retry keeps its first time
        if e["event_id"] not in seen:
            seen.add(e["event_id"])
            times.append(datetime.fromisoformat(e["occurred_at"]))
    assert times == sorted(times) and times[0] >= START
    kinds = Counter(e["type"] for e in events)
    assert set(kinds) == {
        "purchase",
        "refund",
        "referral",
        "review",
        "goodwill",
        "incident",
        "redemption",
        "redemption_cancel",
        "enrolment",
        "redemption_hold",
        "redemption_capture",
        "redemption_void",
        "donation",
    }
    assert kinds["purchase"] > len(events) / 3


def test_some_events_are_exact_repeats_and_some_break_a_rule() -> None:
    events = list(generate_events(2, 100, 2000, START))
    ids = Counter(e["event_id"] for e in events)
    repeats = [event_id for event_id, n in ids.items() if n > 1]
    assert len(repeats) > 20
    first_of = {e["event_id"]: e for e in reversed(events)}
    assert all(e == first_of[e["event_id"]] for e in events)  # same id, same content
    assert any(e.get("points") == 9_000_000 for e in events)  # more points than anyone holds
    assert any(e.get("referrer_id") == e["customer_id"] for e in events)  # self-referral


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next(generate_events(1, 10, 10, datetime(2025, 1, 1)))


def test_the_fold_handles_every_event_the_account_defines() -> None:
    assert set(account_event_names()) == HANDLED_EVENTS
