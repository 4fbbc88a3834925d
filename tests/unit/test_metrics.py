"""services.metrics: one registry per process, and names a Prometheus user can trust.

The names are read back with prometheus_client's exposition parser, the one Prometheus'
own Python tooling uses; tests/integration/test_process_metrics.py scrapes the running
processes."""

from __future__ import annotations

import re

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services import metrics

PARTS = (metrics.API, metrics.PROJECTIONS, metrics.CONSUMER, metrics.RELAY)
NAME = re.compile(r"loyalty_[a-z][a-z0-9_]*")


def observe_everything() -> None:
    """One observation on every labelled series, so each family has samples to parse."""
    metrics.EVENTS.labels("kafka", "accepted").inc(0)
    metrics.BATCH_SECONDS.labels("kafka").observe(0.01)
    metrics.CONSUMER_LAG.labels("t", "0").set(0)
    metrics.DEAD_LETTERS.labels("malformed-json").inc(0)
    metrics.SWEEP_RECORDED.labels("expired").inc(0)
    metrics.PROJECTION_POSITION.labels("proj").set(0)
    metrics.PROJECTION_LAG.labels("proj").set(0)


def families(*parts: str) -> dict[str, str]:
    """Family name -> type, of the loyalty_* families a registry of `parts` serves."""
    text = generate_latest(metrics.registry(*parts))
    return {
        family.name: family.type
        for family in text_string_to_metric_families(text.decode())
        if family.name.startswith("loyalty_")
    }


@pytest.mark.parametrize("part", PARTS)
def test_every_series_is_named_by_the_prometheus_conventions(part: str) -> None:
    observe_everything()
    text = generate_latest(metrics.registry(part)).decode()
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("loyalty_"):
            continue
        assert NAME.fullmatch(family.name), family.name
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name.endswith("_total"), sample.name
            elif family.type == "histogram":
                assert family.name.endswith("_seconds"), family.name
            else:
                assert not sample.name.endswith("_total"), sample.name


def test_the_consumer_serves_no_store_position_and_no_read_side_series() -> None:
    consumer = families(metrics.CONSUMER)
    assert set(consumer) >= {"loyalty_events", "loyalty_consumer_lag_messages"}
    assert not {name for name in consumer if "projection" in name or "outbox" in name}
    assert "loyalty_store_position" not in consumer


def test_parts_do_not_share_series_except_the_intake_counters() -> None:
    observe_everything()
    seen = {part: set(families(part)) for part in PARTS}
    shared = seen[metrics.API] & seen[metrics.CONSUMER]
    assert shared == {"loyalty_events", "loyalty_batch_seconds"}  # labelled by source
    for part in PARTS:
        for other in PARTS:
            if {part, other} != {metrics.API, metrics.CONSUMER} and part != other:
                assert not seen[part] & seen[other], (part, other)


def test_store_position_is_read_when_scraped_and_left_out_when_the_store_fails() -> None:
    positions = iter([5, 9])
    collector = metrics.StorePosition(lambda: next(positions))
    assert [f.samples[0].value for f in collector.collect()] == [5]
    assert [f.samples[0].value for f in collector.collect()] == [9]

    def broken() -> int:
        raise ConnectionError("store down")

    assert list(metrics.StorePosition(broken).collect()) == []

    reads: list[int] = []
    registry = metrics.registry(
        metrics.API, extra=[metrics.StorePosition(lambda: reads.append(1) or 3)]
    )
    assert reads == []  # building the registry reads no store; a scrape does
    assert registry.get_sample_value("loyalty_store_position") == 3 and reads == [1]
