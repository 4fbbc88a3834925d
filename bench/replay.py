"""Speed for auditors: a full replay of 1,000,000 stored events on PostgreSQL.

1. Generate the history fast, without HTTP: POS documents (purchases, refunds,
   redemptions and their cancellations, reviews, goodwill, incidents) run through the same
   account commands the ledger runs (`apply_pos_event`), in memory, for many customers;
   each customer's due maturations and expiries are swept before their next event (a
   tick); each accepted event gets its `IntakeRecord`, as in `Ledger.record_batch`. The
   resulting stored events go into a fresh PostgreSQL database through the ledger's own
   recorder, `insert_events`, in big batches.
2. Raw read: the same rows and columns (`notification_id, originator_id,
   originator_version, topic, state`) fetched with psycopg, page by page, in position order.
3. Replay: the projections' `rebuild()` folds every event from position 0 into fresh
   tables, as `loyalty audit replay` does.

It prints events per second for both and their ratio (target: replay >= 0.3 x raw) and
writes `bench/out/replay.md`. `BENCH_REPLAY_EVENTS` sets the size (default 1,000,000).
"""

from __future__ import annotations

import os
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from services.infrastructure.keys import MemoryKeyring
from services.infrastructure.sql import Database
from services.infrastructure.store import StoreURL, open_recorder
from services.ledger.application.commands import apply_pos_event
from services.ledger.application.ledger import Ledger
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.errors import LedgerError
from services.ledger.domain.intake import IntakeRecord, fingerprint
from services.ledger.domain.privacy import Sealer
from services.ledger.domain.rules import ProgramRules
from services.projections.runner import TOPICS, ProjectionRunner, RebuildResult
from services.projections.tables import ProjectionTables
from services.runtime import tune_gc
from tests.support import servers

OUT = Path(__file__).parent / "out"
EVENTS = int(os.environ.get("BENCH_REPLAY_EVENTS", "1000000"))
CUSTOMERS = int(os.environ.get("BENCH_REPLAY_CUSTOMERS", "25000"))
PAGE = int(os.environ.get("BENCH_REPLAY_PAGE", "5000"))
# Bytes of state per `insert_events` call. psycopg's pipeline mode (which the library's
# recorder uses) hangs for good once one batch carries more than about 4.5 MB here
# (psycopg/psycopg#685): keep well below.
INSERT_BYTES = 2_000_000
PG_SERVER = os.environ.get("LOYALTY_BENCH_POSTGRES_DSN", servers.LOCAL_POSTGRES_DSN)
START = datetime(2025, 1, 1, tzinfo=UTC)


# ---- 1. a realistic history, generated in memory -------------------------------------------
class MemoryAccounts:
    """What `apply_pos_event` needs of the ledger's `Accounts`, over accounts in memory."""

    def __init__(self) -> None:
        self.loaded: dict[str, CustomerAccount] = {}
        self.touched: dict[str, CustomerAccount] = {}
        self.campaigns = None  # no campaigns in the benchmarks' programme
        self.sealer = Sealer(MemoryKeyring())  # personal fields sealed, keys in memory
        self.receipts: set[tuple[str | None, str]] = set()  # (store_id, receipt_id) used

    def receipt_used(self, store_id: str | None, receipt_id: str) -> bool:
        return (store_id, receipt_id) in self.receipts

    def use_receipt(
        self, store_id: str | None, receipt_id: str, customer_id: str, event_id: str
    ) -> None:
        self.receipts.add((store_id, receipt_id))

    def get(self, customer_id: str) -> CustomerAccount:
        account = self.loaded.get(customer_id)
        if account is None:
            account = self.loaded[customer_id] = CustomerAccount(customer_id)
            self.touched[customer_id] = account
        return account

    def touch(self, *accounts: CustomerAccount) -> None:
        for account in accounts:
            self.touched[account.customer_id] = account


class Traffic:
    """POS documents with plausible proportions; about 2.3 stored events per document."""

    def __init__(self, customers: int, seed: int = 42) -> None:
        self.rng = random.Random(seed)
        self.customers = [f"c{i:06d}" for i in range(customers)]
        self.purchases: dict[str, list[str]] = {}
        self.redemptions: dict[str, list[str]] = {}
        self.n = 0
        self.now = START

    def document(self, step_seconds: float) -> dict[str, Any]:
        rng = self.rng
        self.n += 1
        self.now += timedelta(seconds=rng.expovariate(1 / step_seconds))
        # Regulars (a tenth of the customers) bring a third of the traffic.
        regulars = max(len(self.customers) // 10, 1)
        pool = regulars if rng.random() < 0.33 else len(self.customers)
        customer = self.customers[rng.randrange(pool)]
        doc: dict[str, Any] = {
            "event_id": f"pos-{self.n}",
            "customer_id": customer,
            "occurred_at": self.now.isoformat(),
            "store_id": f"store-{rng.randint(1, 40)}",
            "schema_version": 1,
        }
        bought = self.purchases.setdefault(customer, [])
        redeemed = self.redemptions.setdefault(customer, [])
        roll = rng.random()
        if roll < 0.55 or not bought:
            doc.update(type="purchase", receipt_id=f"r-{self.n}")
            doc["amount"] = {
                "value": f"{rng.randint(3, 300)}.{rng.randint(0, 99):02d}",
                "currency": "EUR",
            }
            bought.append(doc["event_id"])
        elif roll < 0.63:
            doc.update(type="refund", original_event_id=rng.choice(bought[-10:]))
            doc["amount"] = {"value": f"{rng.randint(1, 15)}.00", "currency": "EUR"}
        elif roll < 0.75:
            doc.update(type="redemption", points=rng.randint(5, 120), reward_id="coffee")
            redeemed.append(doc["event_id"])
        elif roll < 0.77 and redeemed:
            doc.update(type="redemption_cancel", original_event_id=redeemed.pop())
        elif roll < 0.93:
            doc.update(type="review", rating=rng.randint(0, 10), touchpoint="sales")
        elif roll < 0.97:
            doc.update(
                type="goodwill",
                points=rng.choice([100, 300, 3000]),
                reason_code="late-delivery",
                issued_by="agent-7",
            )
        else:
            doc.update(type="incident", severity="minor", description="long queue")
        return doc


def decide(
    doc: dict[str, Any], accounts: MemoryAccounts, rules: ProgramRules, swept_at: datetime
) -> list[Any]:
    """The domain events one POS document makes, as the ledger would record them: the
    sweep that ran before it (at `swept_at`), its command, its intake record if accepted."""
    account = accounts.get(doc["customer_id"])
    account.sweep(swept_at)
    accounts.touch(account)
    try:
        effect = apply_pos_event(doc, accounts, rules)
    except LedgerError:
        effect = None
    events: list[Any] = []
    for touched in accounts.touched.values():
        events += touched.collect_events()
    accounts.touched.clear()
    if effect is not None:
        intake = IntakeRecord(
            event_id=doc["event_id"],
            customer_id=doc["customer_id"],
            type=doc["type"],
            fingerprint=fingerprint(doc),
            document=doc,
            effect=effect,
        )
        events += intake.collect_events()
    return events


def generate(ledger: Ledger, target: int, customers: int) -> int:
    """Record about `target` stored events; returns how many were written."""
    rules: ProgramRules = ledger.rules
    traffic = Traffic(customers)
    accounts = MemoryAccounts()
    mapper = ledger.mapper
    step = 2 * 365 * 24 * 3600 / (target / 2.3)  # two years of traffic
    written = ledger.position()
    pending: list[Any] = []
    pending_bytes = 0
    while written + len(pending) < target:
        doc = traffic.document(step)
        events = decide(doc, accounts, rules, swept_at=traffic.now)
        stored = [mapper.to_stored_event(e) for e in events]
        pending += stored
        pending_bytes += sum(len(e.state) for e in stored)
        if pending_bytes >= INSERT_BYTES:
            ledger.recorder.insert_events(pending)
            written += len(pending)
            pending, pending_bytes = [], 0
    ledger.recorder.insert_events(pending)
    return written + len(pending)


# ---- 2. the raw read ------------------------------------------------------------------------
def raw_select(dsn: str, topics: list[str] | None, page: int = PAGE) -> tuple[int, float]:
    """The stored columns of the rows a replay reads (or of all rows, `topics=None`),
    fetched with psycopg page by page in position order, as the replay pages them."""
    where = "notification_id > %s" + (" AND topic = ANY(%s)" if topics else "")
    sql = (
        "SELECT notification_id, originator_id, originator_version, topic, state "
        f"FROM ledger_events WHERE {where} ORDER BY notification_id LIMIT %s"
    )
    count, after = 0, 0
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        while True:
            cur.execute(sql, (after, topics, page) if topics else (after, page))
            rows = cur.fetchall()
            count += len(rows)
            if len(rows) < page:
                break
            after = rows[-1][0]
    return count, time.perf_counter() - started


# ---- 3. the replay ----------------------------------------------------------------------------
def replay(url: str) -> RebuildResult:
    """The projections' full rebuild into fresh tables (what `loyalty audit replay` folds)."""
    store = StoreURL.parse(url)
    recorder, factory = open_recorder(store)
    db = Database(store)
    try:
        live = ProjectionTables(db)
        live.create()
        result = ProjectionRunner(recorder, live).rebuild("replay_", page_size=PAGE)
        ProjectionTables(db, "replay_").drop()
        return result
    finally:
        db.close()
        factory.close()


@dataclass
class Result:
    events: int
    generate_seconds: float
    all_rows: tuple[int, float]
    same_rows: tuple[int, float]
    rebuild: RebuildResult

    def table(self) -> str:
        all_count, all_seconds = self.all_rows
        raw_count, raw_seconds = self.same_rows
        raw_eps = raw_count / raw_seconds
        folded_eps = self.rebuild.folded / self.rebuild.seconds
        return "\n".join(
            [
                "| measure | rows | seconds | rows/s |",
                "|---|---:|---:|---:|",
                f"| generate + insert (recorder, {INSERT_BYTES / 1e6:.0f} MB batches) "
                f"| {self.events:,} | {self.generate_seconds:.1f} "
                f"| {self.events / self.generate_seconds:,.0f} |",
                f"| raw SELECT, every stored event | {all_count:,} | {all_seconds:.1f} "
                f"| {all_count / all_seconds:,.0f} |",
                f"| raw SELECT, the rows a replay reads (account + program topics) "
                f"| {raw_count:,} | {raw_seconds:.1f} | {raw_eps:,.0f} |",
                f"| full replay: rows folded into fresh tables | {self.rebuild.folded:,} "
                f"| {self.rebuild.seconds:.1f} | {folded_eps:,.0f} |",
                f"| full replay: stored events covered (intake records skipped) "
                f"| {self.rebuild.events:,} | {self.rebuild.seconds:.1f} "
                f"| {self.rebuild.events_per_second:,.0f} |",
                "",
                f"replay / raw SELECT of the same rows = **{folded_eps / raw_eps:.2f}** "
                "(target >= 0.3)",
            ]
        )


def main() -> None:
    tune_gc()  # as `loyalty audit replay` runs (every `loyalty` command does)
    with servers.scratch_database(PG_SERVER, "bench_replay") as url:
        store = StoreURL.parse(url)
        ledger = Ledger(env=store.eventsourcing_env(), rules=ProgramRules())
        started = time.perf_counter()
        events = generate(ledger, EVENTS, CUSTOMERS)
        generated = time.perf_counter() - started
        ledger.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE ledger_events")
        raw_select(url, None)  # warm the cache: every read below finds the rows in memory
        all_rows = raw_select(url, None)
        same_rows = raw_select(url, TOPICS)
        rebuild = replay(url)
    result = Result(events, generated, all_rows, same_rows, rebuild)
    table = result.table()
    print(f"\nFull replay of {events:,} stored events on PostgreSQL\n", file=sys.stderr)
    print(table)
    OUT.mkdir(exist_ok=True)
    (OUT / "replay.md").write_text(
        f"Full replay of {events:,} stored events on PostgreSQL "
        "(`make bench`, or `python -m bench.replay`)\n\n" + table + "\n"
    )


if __name__ == "__main__":
    main()
