"""Prometheus metrics: each process serves the series it produces, and only those.

The metric objects live here, registered nowhere (`registry=None`); the code that observes
them imports them by name. Each process builds its own `CollectorRegistry` from the parts
it runs (`registry(...)`) and serves it on its own metrics port (`serve`), so `consume`
never reports a store position it does not read and `relay` no projection lag. Default
registry contents (prometheus_client's REGISTRY) are never served.

| part          | process                           | series                                    |
|---------------|-----------------------------------|-------------------------------------------|
| `API`         | `serve`                           | HTTP (the instrumentator), `events{http}`, |
|               |                                   | batch seconds, store position, sweeps     |
| `PROJECTIONS` | `project` (and `serve` on SQLite) | projection position, lag, failures,       |
|               |                                   | hash-chain position and failures          |
| `CONSUMER`    | `consume`                         | `events{kafka}`, batch seconds, consumer  |
|               |                                   | lag, dead letters                         |
| `RELAY`       | `relay`                           | change messages published, outbox backlog |

Every registry also holds the process's own `process_*`, `python_gc_*` and `python_info`;
no `*_created` series (see `registry`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.infrastructure.sql import Database

log = logging.getLogger("loyalty.metrics")

# ---- the write side: HTTP and Kafka intake ------------------------------------------------
EVENTS = Counter(
    "loyalty_events_total",
    "POS events by how they entered and what became of them",
    ["source", "status"],
    registry=None,
)
BATCH_SECONDS = Histogram(
    "loyalty_batch_seconds",
    "Time to record one batch of POS events (one transaction)",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=None,
)
CONSUMER_LAG = Gauge(
    "loyalty_consumer_lag_messages",
    "Kafka consumer lag by partition",
    ["topic", "partition"],
    registry=None,
)
DEAD_LETTERS = Counter(
    "loyalty_dead_letters_total",
    "Messages sent to the dead-letter topic",
    ["reason"],
    registry=None,
)
SWEEP_RUNS = Counter("loyalty_sweep_runs_total", "Sweeps (tick) run by this process", registry=None)
SWEEP_RECORDED = Counter(
    "loyalty_sweep_recorded_total",
    "Maturations and expiries the sweeps recorded",
    ["action"],
    registry=None,
)

# ---- the read side --------------------------------------------------------------------------
PROJECTION_POSITION = Gauge(
    "loyalty_projection_position",
    "Position each projection has processed",
    ["projection"],
    registry=None,
)
PROJECTION_LAG = Gauge(
    "loyalty_projection_lag_events",
    "Store position minus projection position",
    ["projection"],
    registry=None,
)
PROJECTION_FAILURES = Counter(
    "loyalty_projection_failures_total",
    "Projection batches that failed and stopped the runner",
    registry=None,
)
OUTBOX_PUBLISHED = Counter(
    "loyalty_outbox_published_total",
    "Change-feed messages published to Kafka by this relay",
    registry=None,
)

API, PROJECTIONS, CONSUMER, RELAY = "api", "projections", "consumer", "relay"


class StorePosition(Collector):
    """`loyalty_store_position`, read from the store when scraped (no stale value between
    scrapes, and nothing to keep up to date between them)."""

    def __init__(self, position: Callable[[], int]) -> None:
        self.position = position

    def describe(self) -> list[GaugeMetricFamily]:  # registering reads no store
        return [GaugeMetricFamily("loyalty_store_position", "")]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            value = self.position()
        except Exception as error:  # the store is down: no sample rather than a wrong one
            log.warning("store position unavailable for /metrics: %r", error)
            return
        yield GaugeMetricFamily(
            "loyalty_store_position", "Highest global position in the event store", value=value
        )


class OutboxBacklog(Collector):
    """The relay's lag, read from the outbox when scraped: rows not yet published, and the
    age of the oldest of them (0 when none wait). Both come from the partial index on
    unpublished rows, so a scrape costs what the backlog is long."""

    def __init__(self, db: Database, table: str = "proj_outbox") -> None:
        self.db = db
        self.table = table

    def describe(self) -> list[GaugeMetricFamily]:  # registering reads no database
        return [
            GaugeMetricFamily("loyalty_outbox_unpublished", ""),
            GaugeMetricFamily("loyalty_outbox_oldest_unpublished_seconds", ""),
        ]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with self.db.reading() as cur:
                cur.execute(
                    f"SELECT count(*), min(created_at) FROM {self.table} WHERE published_at IS NULL"
                )
                row = cur.fetchone()
        except Exception as error:  # no outbox yet (projections not started) or no database
            log.debug("outbox backlog unavailable for /metrics: %r", error)
            return
        count, oldest = (row[0], row[1]) if row else (0, None)
        age = 0.0
        if oldest:
            age = max((datetime.now(UTC) - datetime.fromisoformat(oldest)).total_seconds(), 0.0)
        yield GaugeMetricFamily(
            "loyalty_outbox_unpublished", "Change-feed messages waiting in the outbox", count
        )
        yield GaugeMetricFamily(
            "loyalty_outbox_oldest_unpublished_seconds",
            "Age of the oldest change-feed message waiting in the outbox (0: none waits)",
            age,
        )


def _part_collectors(part: str) -> list[Collector]:
    if part == API:
        return [EVENTS, BATCH_SECONDS, SWEEP_RUNS, SWEEP_RECORDED]
    if part == PROJECTIONS:
        # The hash-chain follower runs beside the projections (services.audit.wiring).
        from services.audit.chain import CHAIN_FAILURES, CHAIN_POSITION

        return [
            PROJECTION_POSITION,
            PROJECTION_LAG,
            PROJECTION_FAILURES,
            CHAIN_POSITION,
            CHAIN_FAILURES,
        ]
    if part == CONSUMER:
        return [EVENTS, BATCH_SECONDS, CONSUMER_LAG, DEAD_LETTERS]
    if part == RELAY:
        return [OUTBOX_PUBLISHED]
    raise ValueError(f"no metrics part {part!r}")


def registry(*parts: str, extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """A registry with the process collectors and the series of `parts` (API,
    PROJECTIONS, CONSUMER, RELAY), plus `extra` collectors (e.g. `StorePosition`).

    It also turns off prometheus_client's `*_created` samples for the process: in the
    text format Prometheus stores each as one more gauge per child series, which nobody
    queries (counters reset on restart either way)."""
    disable_created_metrics()
    found = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=found)
    PlatformCollector(registry=found)
    GCCollector(registry=found)
    seen: set[int] = set()
    for collector in [*(c for part in parts for c in _part_collectors(part)), *extra]:
        if id(collector) not in seen:
            seen.add(id(collector))
            found.register(collector)
    return found


def serve(metrics: CollectorRegistry, port: int, host: str) -> bool:
    """Serve `metrics` at http://host:port/metrics in a daemon thread; False when the port
    is 0 or less (metrics off). Raises OSError when the port cannot be bound."""
    if port <= 0:
        return False
    start_http_server(port, addr=host, registry=metrics)
    log.info("metrics on http://%s:%d/metrics", host, port)
    return True
