"""kafka-python settings and helpers (SPEC §6 "Kafka", §7): consumer-group settings, and
`send_acknowledged()` for producers that must know every message arrived.

`consumer_tuning()` is the one place that says how a ledger consumer behaves in its group:
when offsets are committed, where a new group starts, and how fast membership changes are
noticed. Callers merge their own arguments over it, so a caller's value wins:

    KafkaConsumer(topic, **{**consumer_tuning(fast_rebalance=False), "group_id": group})

Two profiles:

- `fast_rebalance=False` (production): Kafka's own defaults for the group protocol. A
  consumer that stalls for a while (a slow PostgreSQL commit, a GC pause) keeps its
  partitions instead of triggering a rebalance storm.
- `fast_rebalance=True` (tests, demos, single-node dev brokers): a member joins, leaves or
  is declared dead within about a second or two. With the `tansu` broker used by the test
  suite a fresh `JoinGroup` is held for about half of `session_timeout_ms` (rounded up to
  a whole second, at least one second), whatever `max_poll_interval_ms` says: the 45 s
  default session costs ~23 s per group join there, 2 s costs ~1 s. Apache Kafka refuses
  session timeouts below the broker's `group.min.session.timeout.ms` (default 6000) with
  `INVALID_SESSION_TIMEOUT`, so a broker used with this profile must lower it
  (`KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS=1000`, as docker-compose.yml and the test fixtures
  do).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

Message = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]  # key, value, headers

# The group protocol's timings, in milliseconds: (session, heartbeat, max poll interval).
_PRODUCTION_TIMINGS = (45_000, 3_000, 300_000)
_FAST_TIMINGS = (2_000, 500, 10_000)


def consumer_tuning(fast_rebalance: bool) -> dict[str, Any]:
    """KafkaConsumer keyword arguments for a ledger consumer in a consumer group.

    Keys:

    - `enable_auto_commit=False`: offsets are committed by the caller, as the last step,
      after the events are durably stored (SPEC §7: at-least-once intake plus idempotency
      on `event_id` makes the effect exactly once). Auto-commit could commit an offset
      whose events were never stored.
    - `auto_offset_reset="earliest"`: a group with no committed offset (a new group, or
      offsets expired on the broker) starts from the oldest retained event instead of
      silently skipping everything published before it started.
    - `max_poll_records=500`: the largest batch one `poll()` returns, i.e. the largest
      unit of work stored in one transaction before its offsets are committed.
    - `session_timeout_ms`: how long the coordinator waits without a heartbeat before it
      declares the member dead and hands its partitions to the others (a crashed instance
      stalls its partitions for this long). On tansu it also sets the join delay.
    - `heartbeat_interval_ms`: how often the background thread heartbeats; a quarter to a
      fifteenth of the session timeout, so a few lost heartbeats do not expire the member.
    - `max_poll_interval_ms`: the longest gap allowed between two `poll()` calls, i.e.
      the time budget for storing one batch; past it kafka-python leaves the group so
      another instance takes the partitions. It is also the rebalance timeout: how long
      Apache Kafka's coordinator waits for members to rejoin during a rebalance.
    """
    session, heartbeat, max_poll_interval = _FAST_TIMINGS if fast_rebalance else _PRODUCTION_TIMINGS
    return {
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": 500,
        "session_timeout_ms": session,
        "heartbeat_interval_ms": heartbeat,
        "max_poll_interval_ms": max_poll_interval,
    }


def send_acknowledged(
    producer: Any,
    topic: str,
    messages: Iterable[Message],
    timeout: float,
    partitions: Iterable[int | None] | None = None,
) -> None:
    """Send every message and wait until the broker acknowledged each one (or raise):
    what the dead letters and the change feed need before they mark anything done.
    `partitions`, one per message, chooses each one's partition (None: by its key)."""
    chosen = partitions if partitions is not None else itertools.repeat(None)
    futures = [
        producer.send(topic, key=key, value=value, headers=headers, partition=partition)
        for (key, value, headers), partition in zip(messages, chosen, strict=False)
    ]
    producer.flush(timeout=timeout)
    for future in futures:
        future.get(timeout=timeout)
