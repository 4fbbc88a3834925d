"""Shared by the audit tests: a ledger on a given store, realistic histories, raw SQL."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from services.bootstrap import Container, build
from services.infrastructure.store import StoreURL
from services.settings import Settings

KEYS = {
    "pos": "pos-key-000000000000",
    "service": "service-key-00000000",
    "auditor": "auditor-key-00000000",
    "admin": "admin-key-0000000000",
}
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def settings_for(url: str, var_dir: Path) -> Settings:
    return Settings(
        store=url,
        api_keys=",".join(f"{role}:{key}" for role, key in KEYS.items()),
        var_dir=var_dir,
        # The tick asks the projections for its candidates: on PostgreSQL with no
        # `loyalty project` running it would wait for them, so this process runs them.
        projections_in_process=True,
    )


def make_container(url: str, var_dir: Path, *, with_projections: bool = False) -> Container:
    return build(settings_for(url, var_dir), with_projections=with_projections)


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}"}


class HistoryMaker:
    """Plausible POS traffic: purchases mostly, then refunds, redemptions, reviews,
    goodwill, incidents, referrals, with ticks that mature and expire lots."""

    def __init__(self, seed: int = 7, customers: int = 6) -> None:
        self.run = f"s{seed}"
        self.rng = random.Random(seed)
        self.customers = [f"cust-{i}" for i in range(customers)]
        self.purchases: dict[str, list[str]] = {c: [] for c in self.customers}
        self.redemptions: dict[str, list[str]] = {c: [] for c in self.customers}
        self.n = 0
        self.now = START

    def _envelope(self, kind: str, customer: str) -> dict[str, Any]:
        self.n += 1
        self.now += timedelta(hours=self.rng.randint(1, 30))
        return {
            "event_id": f"{self.run}-ev-{self.n}",
            "type": kind,
            "customer_id": customer,
            "occurred_at": self.now.isoformat(),
            "store_id": f"store-{self.rng.randint(1, 3)}",
            "schema_version": 1,
        }

    def event(self) -> dict[str, Any]:
        rng = self.rng
        customer = rng.choice(self.customers)
        roll = rng.random()
        if roll < 0.05:
            referee = f"{self.run}-new-{self.n}"
            self.customers.append(referee)
            self.purchases[referee] = []
            self.redemptions[referee] = []
            doc = self._envelope("referral", referee)
            doc["referrer_id"] = customer
            return doc
        if roll < 0.55 or not self.purchases[customer]:
            doc = self._envelope("purchase", customer)
            doc["receipt_id"] = f"{self.run}-rc-{self.n}"
            doc["amount"] = {
                "value": f"{rng.randint(5, 400)}.{rng.randint(0, 99):02d}",
                "currency": "EUR",
            }
            self.purchases[customer].append(doc["event_id"])
            return doc
        if roll < 0.63:
            doc = self._envelope("refund", customer)
            doc["original_event_id"] = rng.choice(self.purchases[customer])
            doc["amount"] = {"value": f"{rng.randint(1, 20)}.00", "currency": "EUR"}
            return doc
        if roll < 0.75:
            doc = self._envelope("redemption", customer)
            doc["points"] = rng.randint(1, 80)
            doc["reward_id"] = f"reward-{rng.randint(1, 5)}"
            self.redemptions[customer].append(doc["event_id"])
            return doc
        if roll < 0.79 and self.redemptions[customer]:
            doc = self._envelope("redemption_cancel", customer)
            doc["original_event_id"] = rng.choice(self.redemptions[customer])
            return doc
        if roll < 0.90:
            doc = self._envelope("review", customer)
            doc["rating"] = rng.randint(0, 10)
            doc["touchpoint"] = rng.choice(["sales", "service"])
            return doc
        if roll < 0.96:
            doc = self._envelope("goodwill", customer)
            doc["points"] = rng.choice([100, 500, 4000])
            doc["reason_code"] = "late-delivery"
            doc["issued_by"] = "agent-1"
            return doc
        doc = self._envelope("incident", customer)
        doc["severity"] = rng.choice(["minor", "major"])
        doc["description"] = "the parcel arrived broken"
        return doc

    def batch(self, size: int) -> list[dict[str, Any]]:
        return [self.event() for _ in range(size)]


def record_history(
    container: Container, events: int, *, seed: int = 7, batch: int = 7, expire: bool = False
) -> None:
    """Record `events` POS events in small batches, with a tick after each batch (and, with
    `expire`, a last tick a year and more later, so that lots expire)."""
    maker = HistoryMaker(seed)
    while maker.n < events:
        container.ledger.record_batch(maker.batch(min(batch, events - maker.n)))
        container.tick(maker.now)
    if expire:
        container.tick(maker.now + timedelta(days=400))


@contextmanager
def raw_events(url: str) -> Iterator[tuple[Any, str, str]]:
    """A raw connection to the events table: (connection, table, position column)."""
    store = StoreURL.parse(url)
    if store.kind == "sqlite":
        conn = sqlite3.connect(store.path)
        try:
            yield conn, "stored_events", "rowid"
            conn.commit()
        finally:
            conn.close()
        return
    with psycopg.connect(
        host=store.host, port=store.port, user=store.user, dbname=store.dbname, autocommit=True
    ) as pg:
        yield _PgAdapter(pg), "ledger_events", "notification_id"


class _PgAdapter:
    """`execute` with `?` placeholders, like sqlite3, so a test writes its SQL once."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
