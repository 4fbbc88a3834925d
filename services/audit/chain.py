"""Tamper evidence: a hash chain over the stored events (SPEC §5).

Each link is SHA-256 over the previous link and a canonical encoding of one stored event:
its position, originator id, originator version, topic and state bytes, each length- or
width-delimited so that no two different events encode alike. The links live in their own
table, `audit_chain(position PRIMARY KEY, link, chained_at)`, written by a follower that
chains each new event within seconds of its commit (docs/AUDIT.md says why a follower and
not the write transaction, and what the chain does and does not prove).

The follower is idempotent and resumable: it starts after the highest chained position, and
a link is a pure function of the events before it, so two followers (or a re-run) write the
same rows and `ON CONFLICT DO NOTHING` keeps the first.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from eventsourcing.persistence import ApplicationRecorder
from prometheus_client import Counter, Gauge

from services.audit.stored import PAGE, StoredRow, iter_rows
from services.infrastructure.sql import TRANSIENT_ERRORS, Database

log = logging.getLogger(__name__)

GENESIS = bytes(32)
_MAGIC = b"loyalty-ledger/chain/v1"

TRANSIENT = TRANSIENT_ERRORS  # worth another round, not a stop

CHAIN_POSITION = Gauge("loyalty_audit_chain_position", "Highest stored position in the hash chain")
CHAIN_FAILURES = Counter(
    "loyalty_audit_chain_failures_total", "Hash-chain follower rounds that failed"
)


def canonical(row: StoredRow) -> bytes:
    """The bytes a link covers: fixed-width integers, length-prefixed text and state."""
    topic = row.topic.encode("utf-8")
    return b"".join(
        (
            _MAGIC,
            row.position.to_bytes(8, "big"),
            row.originator_id.bytes,
            row.originator_version.to_bytes(8, "big", signed=True),
            len(topic).to_bytes(4, "big"),
            topic,
            len(row.state).to_bytes(8, "big"),
            row.state,
        )
    )


def next_link(previous: bytes, row: StoredRow) -> bytes:
    return hashlib.sha256(previous + canonical(row)).digest()


@dataclass(frozen=True, slots=True)
class Link:
    position: int
    link: str  # hex


class ChainTable:
    """The `audit_chain` table in the store's own database."""

    def __init__(self, db: Database, name: str = "audit_chain") -> None:
        self.db = db
        self.name = name

    def create(self) -> None:
        with self.db.schema() as cur:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.name} ("
                "position BIGINT PRIMARY KEY, link TEXT NOT NULL, chained_at TEXT NOT NULL)"
            )

    def head(self) -> Link | None:
        """The highest chained position and its link, if any."""
        with self.db.reading() as cur:
            row = cur.execute(
                f"SELECT position, link FROM {self.name} ORDER BY position DESC LIMIT 1"
            ).fetchone()
        return Link(int(row[0]), str(row[1])) if row else None

    def append(self, links: Sequence[Link]) -> None:
        if not links:
            return
        chained_at = datetime.now(UTC).isoformat()
        with self.db.transaction() as cur:
            cur.executemany(
                f"INSERT INTO {self.name} (position, link, chained_at) VALUES (?, ?, ?) "
                "ON CONFLICT (position) DO NOTHING",
                [(link.position, link.link, chained_at) for link in links],
            )

    def links_between(self, first: int, last: int) -> dict[int, str]:
        """The links of the positions in [first, last]."""
        with self.db.reading() as cur:
            rows = cur.execute(
                f"SELECT position, link FROM {self.name} WHERE position >= ? AND position <= ?",
                (first, last),
            ).fetchall()
        return {int(p): str(link) for p, link in rows}

    def iter_links(self, *, upto: int, page: int = PAGE) -> Iterator[Link]:
        """Every link with position <= `upto`, in position order, page by page."""
        after = 0
        while True:
            with self.db.reading() as cur:
                rows = cur.execute(
                    f"SELECT position, link FROM {self.name} WHERE position > ? AND position <= ? "
                    "ORDER BY position LIMIT ?",
                    (after, upto, page),
                ).fetchall()
            for position, link in rows:
                yield Link(int(position), str(link))
            if len(rows) < page:
                return
            after = int(rows[-1][0])


class ChainFollower:
    """Chains each new stored event after the chain's head; safe to run more than once."""

    def __init__(self, recorder: ApplicationRecorder, table: ChainTable, batch: int = PAGE):
        self.recorder = recorder
        self.table = table
        self.batch = batch

    def position(self) -> int:
        head = self.table.head()
        return head.position if head else 0

    def catch_up(self, stop: int | None = None) -> int:
        """Chain every stored event not chained yet (up to `stop`); returns how many."""
        head = self.table.head()
        after, previous = (head.position, bytes.fromhex(head.link)) if head else (0, GENESIS)
        chained = 0
        pending: list[Link] = []
        for row in iter_rows(self.recorder, after=after, stop=stop, page=self.batch):
            previous = next_link(previous, row)
            pending.append(Link(row.position, previous.hex()))
            if len(pending) >= self.batch:
                self.table.append(pending)
                chained += len(pending)
                pending = []
        self.table.append(pending)
        chained += len(pending)
        CHAIN_POSITION.set(self.position() if chained else after)
        return chained

    def run_forever(self, stop_event: threading.Event, interval: float = 1.0) -> None:
        """Chain new events every `interval` seconds until `stop_event` is set.

        A lost connection is retried on the next round; any other error stops the loop
        (and is raised): a chain that skipped an event would be worse than one that stops,
        and `loyalty_audit_chain_position` stops moving, which operators see.
        """
        while not stop_event.is_set():
            try:
                self.catch_up()
            except TRANSIENT:
                CHAIN_FAILURES.inc()
                log.warning("hash chain: the store did not answer; retrying", exc_info=True)
            except Exception:
                CHAIN_FAILURES.inc()
                log.exception("hash chain: stopped")
                raise
            stop_event.wait(interval)
