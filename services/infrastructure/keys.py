"""The customers' keys (SPEC §11): their own table in the store's database, never an event.

    customer_keys(customer_id TEXT PRIMARY KEY, key BLOB NULL, created_at, erased_at)

A customer gets a key the first time a personal field of theirs is written; erasure
overwrites the key with NULL and keeps the row as a tombstone (`erased_at`), so that no key
is ever created for them again: a personal field a POS sends after the erasure is stored
as `{"erased": true}`, never readable. The keys are in the same database as the events
(SQLite file or PostgreSQL), so a backup of the store holds both: see docs/PRIVACY.md
for what that means for erasure and backups.

Key creation is its own short transaction before the batch's append: a key whose
events then fail to append is an unused key, harmless. Two writers creating the same
customer's key race on the primary key; `ON CONFLICT DO NOTHING` and a re-read give both
the one key.

Every statement here is idempotent and is tried again when the store does not answer
(a PostgreSQL restart), as the event store's own writes are: a batch that seals a
personal field must not stop the Kafka intake because the database came back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime

from eventsourcing.utils import retry

from services.infrastructure.sql import TRANSIENT_ERRORS, Database
from services.ledger.domain.privacy import new_key

CHUNK = 500  # ids per IN (...) list: below SQLite's variable limit
# Up to ~10 s: what a PostgreSQL `restart -m immediate` takes here, with room.
_again = retry(TRANSIENT_ERRORS, max_attempts=50, wait=0.2)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class SqlKeyring:
    """The `customer_keys` table on SQLite or PostgreSQL."""

    def __init__(self, db: Database, name: str = "customer_keys") -> None:
        self.db = db
        self.name = name

    def create(self) -> None:
        with self.db.schema() as cur:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.name} (customer_id TEXT PRIMARY KEY, "
                f"key {self.db.blob} NULL, created_at TEXT NOT NULL, erased_at TEXT NULL)"
            )

    @_again
    def _select(self, customer_ids: list[str]) -> dict[str, tuple[bytes | None, bool]]:
        found: dict[str, tuple[bytes | None, bool]] = {}
        with self.db.reading() as cur:
            for start in range(0, len(customer_ids), CHUNK):
                chunk = customer_ids[start : start + CHUNK]
                rows = cur.execute(
                    f"SELECT customer_id, key, erased_at FROM {self.name} "
                    f"WHERE customer_id IN ({', '.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for customer_id, key, erased_at in rows:
                    found[customer_id] = (
                        None if key is None else bytes(key),
                        erased_at is not None,
                    )
        return found

    def keys_for_reading(self, customer_ids: Iterable[str]) -> dict[str, bytes | None]:
        ids = list(dict.fromkeys(customer_ids))
        found = self._select(ids)
        return {c: found[c][0] if c in found else None for c in ids}

    def erased(self, customer_ids: Iterable[str]) -> set[str]:
        return {c for c, (_, erased) in self._select(list(customer_ids)).items() if erased}

    def keys_for_writing(self, customer_ids: Iterable[str]) -> dict[str, bytes | None]:
        ids = list(dict.fromkeys(customer_ids))
        found = self._select(ids)
        missing = [c for c in ids if c not in found]
        if missing:
            self._insert_keys(missing)
            found.update(self._select(missing))  # a concurrent writer's key, if it won
        return {c: found[c][0] for c in ids}

    @_again
    def _insert_keys(self, customer_ids: list[str]) -> None:
        created = _now()
        with self.db.transaction() as cur:
            cur.executemany(
                f"INSERT INTO {self.name} (customer_id, key, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (customer_id) DO NOTHING",
                [(c, new_key(), created) for c in customer_ids],
            )

    @_again
    def erase(self, customer_id: str) -> None:
        now = _now()
        with self.db.transaction() as cur:
            cur.execute(
                f"INSERT INTO {self.name} (customer_id, key, created_at, erased_at) "
                "VALUES (?, NULL, ?, ?) ON CONFLICT (customer_id) DO UPDATE SET key = NULL, "
                f"erased_at = COALESCE({self.name}.erased_at, excluded.erased_at)",
                (customer_id, now, now),
            )


class MemoryKeyring:
    """Keys in a dict: a ledger on the in-memory store (tests) keeps its keys with it."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes | None] = {}
        self._lock = threading.Lock()

    def keys_for_reading(self, customer_ids: Iterable[str]) -> dict[str, bytes | None]:
        return {c: self._keys.get(c) for c in customer_ids}

    def erased(self, customer_ids: Iterable[str]) -> set[str]:
        return {c for c in customer_ids if c in self._keys and self._keys[c] is None}

    def keys_for_writing(self, customer_ids: Iterable[str]) -> dict[str, bytes | None]:
        with self._lock:
            for c in customer_ids:
                if c not in self._keys:
                    self._keys[c] = new_key()
            return {c: self._keys[c] for c in customer_ids}

    def erase(self, customer_id: str) -> None:
        with self._lock:
            self._keys[customer_id] = None
