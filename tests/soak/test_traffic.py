"""The soak's traffic stays in the past however long the soak: a 1,000,000-event run had
97% of its events dated years ahead and refused as occurred-in-future."""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson

from tests.soak.traffic import SPAN_SECONDS, START, messages


def last_date(events: int) -> datetime:
    latest = START
    for message in messages(seed=5, events=events, customers=500):
        if message.valid and message.value is not None:
            occurred = orjson.loads(message.value).get("occurred_at")
            if occurred:
                latest = max(latest, datetime.fromisoformat(occurred))
    return latest


def test_a_long_soak_packs_its_events_into_the_same_span_as_a_short_one() -> None:
    span = timedelta(seconds=SPAN_SECONDS)
    short, long = last_date(3_000), last_date(60_000)
    assert START + span * 0.8 < long <= START + span * 1.1
    assert short <= START + span * 1.1
