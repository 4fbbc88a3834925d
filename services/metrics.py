"""Prometheus metrics shared by the API, the consumer, the projections and the relay."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "loyalty_events_total",
    "POS events by how they entered and what became of them",
    ["source", "status"],
)
BATCH_SECONDS = Histogram(
    "loyalty_batch_seconds",
    "Time to record one batch of POS events (one transaction)",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STORE_POSITION = Gauge("loyalty_store_position", "Highest global position in the event store")
PROJECTION_POSITION = Gauge(
    "loyalty_projection_position", "Position each projection has processed", ["projection"]
)
PROJECTION_LAG = Gauge(
    "loyalty_projection_lag_events", "Store position minus projection position", ["projection"]
)
PROJECTION_FAILURES = Counter(
    "loyalty_projection_failures_total", "Projection batches that failed and stopped the runner"
)
CONSUMER_LAG = Gauge(
    "loyalty_consumer_lag_messages", "Kafka consumer lag by partition", ["topic", "partition"]
)
DEAD_LETTERS = Counter(
    "loyalty_dead_letters_total", "Messages sent to the dead-letter topic", ["reason"]
)
OUTBOX_PUBLISHED = Counter("loyalty_outbox_published_total", "Change-feed messages published")
