"""The change feed's relay (SPEC §4, §6 "Kafka"): the projection outbox to Kafka.

The projection runner writes each change message to `proj_outbox` in the same
transaction as the projection rows (the transactional outbox); this relay publishes the
rows to `loyalty.projections.v1` and marks them. A message on the topic:

- key: `customer_id` (one partition per customer, so a customer's changes stay in order);
- value: the row's `payload`, the JSON document as the runner wrote it;
- headers: `message-id` (the row's `message_id`, stable across republishing: consumers
  drop repeats on it), `kind` (BalanceChanged | TierChanged | SegmentChanged |
  TrustStatusChanged | CustomerErased) and `position` (the store position of the event
  behind it).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from kafka import KafkaProducer

from services.infrastructure.kafka_settings import send_acknowledged
from services.infrastructure.sql import Cursor, Database
from services.metrics import OUTBOX_PUBLISHED

log = logging.getLogger("loyalty.relay")

CHANGES_TOPIC = "loyalty.projections.v1"
OUTBOX_TABLE = "proj_outbox"
MESSAGE_ID = "message-id"
KIND = "kind"
POSITION = "position"
# pg_advisory_xact_lock key: one relay publishes at a time ("loyalty-relay" as an int).
_RELAY_LOCK = 0x6C6F79616C7479


@dataclass(frozen=True)
class OutboxRow:
    id: int
    message_id: str
    customer_id: str
    kind: str
    payload: str
    position: int


class RelayFailed(Exception):
    """Kafka did not acknowledge every message of a cycle; nothing was marked."""


def relay_producer(bootstrap: str, client_id: str = "loyalty-relay") -> KafkaProducer:
    """A producer that keeps the outbox order: every message acknowledged by all in-sync
    replicas, and one request in flight per connection, so a retried request can never
    overtake the one after it."""
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        max_in_flight_requests_per_connection=1,
        linger_ms=5,
    )


class OutboxRelay:
    """Publishes `proj_outbox` to the change feed, at least once and in order.

    The contract:

    - **One cycle** (`publish_once`) runs in one database transaction: it takes the relay
      lock (PostgreSQL: `pg_advisory_xact_lock`; SQLite: the write lock of
      `BEGIN IMMEDIATE`), selects the oldest unpublished rows (`published_at IS NULL`,
      by `id`, at most `batch_size`), produces them in that order, flushes, waits for
      every acknowledgement, and only then sets their `published_at` and commits.
    - **At least once.** A crash (or a Kafka error) after producing and before the commit
      leaves the rows unpublished; the next cycle, of this relay or another, publishes
      them again with the same `message-id` header. Consumers drop repeats on it.
    - **Order.** Rows go out in `id` order, keyed by `customer_id`, from a producer with
      one request in flight, so each customer's messages reach their partition in outbox
      order. Several relays may run (e.g. one per instance): the lock makes them publish
      in turn, never interleaved. The outbox must be appended in commit order, which
      holds with its one writer, the projection runner.
    - **Failures** roll the cycle back (nothing marked) and `run` tries again after a
      backoff. A missing outbox table means the projections have not started yet: the
      relay waits for it.
    """

    def __init__(
        self,
        db: Database,
        producer: KafkaProducer,
        topic: str = CHANGES_TOPIC,
        *,
        batch_size: int = 500,
        timeout_seconds: float = 60.0,
    ) -> None:
        self.db = db
        self.producer = producer
        self.topic = topic
        self.batch_size = batch_size
        self.timeout_seconds = timeout_seconds
        self.published = 0

    def publish_once(self) -> int:
        """Publish the next batch of unpublished rows; the number published (0: none)."""
        with self.db.transaction() as cur:
            if self.db.dialect == "postgres":
                cur.execute("SELECT pg_advisory_xact_lock(?)", (_RELAY_LOCK,))
            rows = self.unpublished(cur)
            if not rows:
                return 0
            self.produce(rows)
            self.mark_published(cur, rows)
        self.published += len(rows)
        OUTBOX_PUBLISHED.inc(len(rows))
        log.debug("published outbox rows %d..%d", rows[0].id, rows[-1].id)
        return len(rows)

    def unpublished(self, cur: Cursor) -> list[OutboxRow]:
        cur.execute(
            "SELECT id, message_id, customer_id, kind, payload, position "
            f"FROM {OUTBOX_TABLE} WHERE published_at IS NULL ORDER BY id LIMIT ?",
            (self.batch_size,),
        )
        return [OutboxRow(*row) for row in cur.fetchall()]

    def produce(self, rows: list[OutboxRow]) -> None:
        try:
            send_acknowledged(
                self.producer,
                self.topic,
                (
                    (
                        row.customer_id.encode(),
                        row.payload.encode(),
                        [
                            (MESSAGE_ID, row.message_id.encode()),
                            (KIND, row.kind.encode()),
                            (POSITION, str(row.position).encode()),
                        ],
                    )
                    for row in rows
                ),
                self.timeout_seconds,
            )
        except Exception as error:
            raise RelayFailed(
                f"{len(rows)} outbox rows not acknowledged by {self.topic!r}: {error!r}"
            ) from error

    def mark_published(self, cur: Cursor, rows: list[OutboxRow]) -> None:
        """Set `published_at` on the rows (a seam: tests crash here to prove republishing)."""
        marks = ",".join("?" * len(rows))
        cur.execute(
            f"UPDATE {OUTBOX_TABLE} SET published_at = ? WHERE id IN ({marks})",
            (datetime.now(UTC).isoformat(), *(row.id for row in rows)),
        )

    def outbox_exists(self) -> bool:
        with self.db.reading() as cur:
            if self.db.dialect == "postgres":
                cur.execute("SELECT to_regclass(?) IS NOT NULL", (OUTBOX_TABLE,))
            else:
                cur.execute(
                    "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?",
                    (OUTBOX_TABLE,),
                )
            row = cur.fetchone()
        return bool(row and row[0])

    def run(self, stop: threading.Event, *, idle_seconds: float = 0.2) -> None:
        """Publish until `stop` is set: at once while there is a backlog, else every
        `idle_seconds`; after a failure, back off (1 s doubling to 30 s)."""
        backoff = 0.0
        waiting_logged = False
        reported, reported_at = self.published, time.monotonic()
        while not stop.is_set():
            if time.monotonic() - reported_at >= 10 and self.published > reported:
                log.info("published %d change messages", self.published - reported)
                reported, reported_at = self.published, time.monotonic()
            try:
                if not self.outbox_exists():
                    if not waiting_logged:
                        log.info("waiting for the projections to create %s", OUTBOX_TABLE)
                        waiting_logged = True
                    stop.wait(1.0)
                    continue
                published = self.publish_once()
                backoff = 0.0
            except Exception as error:
                backoff = min(30.0, max(1.0, backoff * 2))
                log.warning("relay cycle failed (%r); trying again in %.0f s", error, backoff)
                stop.wait(backoff)
                continue
            if published < self.batch_size:
                stop.wait(idle_seconds)

    def close(self) -> None:
        self.producer.close(timeout=10)
