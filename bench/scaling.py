"""Past one machine, by measurement: the two ceilings of ingest and how each one moves
with more consumers and more stores (issue 14 item 6, docs/SCALING.md).

An ingest pipeline is bounded by its slower stage:
- **decide**: a consumer's CPU per event (validation, the account's decision, the
  mapping to stored events). Consumers own disjoint partitions, hence disjoint customers,
  so they share nothing but cores;
- **store**: one PostgreSQL event store takes inserts one transaction at a time (the
  table lock that keeps positions in commit order, which the projections and the hash
  chain rely on), so more writers into one store add nothing.

Measured here, in the same run, on `BENCH_SCALING_EVENTS` POS events (default 40,000)
of `BENCH_SCALING_CUSTOMERS` customers, split into two partition groups by customer:
1. decide: the account commands over the events in memory (`apply_pos_event`, and the
   stored events they make), by 1 process, then by 2 processes on the two halves;
2. store: the stored events of (1), in batches of 2,000, inserted by 1 writer into 1
   database (the baseline), by 2 writers into the same database, and by 2 writers each
   into a database of its own (the store split by partition group).

It prints rates and ratios to the one-process / one-store baselines, the model's
prediction for P partitions, N consumers and S stores on C cores, and writes
`bench/out/scaling.md`.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import zlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from eventsourcing.persistence import StoredEvent

from bench import replay
from bench.replay import START, MemoryAccounts, Traffic
from services.infrastructure.store import StoreURL, open_recorder
from services.ledger.application.ledger import Ledger
from services.ledger.domain.rules import ProgramRules
from services.runtime import tune_gc
from tests.support import servers

OUT = Path(__file__).parent / "out"
EVENTS = int(os.environ.get("BENCH_SCALING_EVENTS", "40000"))
CUSTOMERS = int(os.environ.get("BENCH_SCALING_CUSTOMERS", "4000"))
PG_SERVER = os.environ.get("LOYALTY_BENCH_POSTGRES_DSN", servers.LOCAL_POSTGRES_DSN)
BATCH = 2000
RULES = ProgramRules()

Halves = tuple[list[dict[str, Any]], list[dict[str, Any]]]


def traffic() -> Halves:
    """The POS documents, split into two partition groups by customer (crc32, as a
    partitioner would hash the key)."""
    source = Traffic(CUSTOMERS)
    step = 2 * 365 * 24 * 3600 / EVENTS
    halves: Halves = ([], [])
    for _ in range(EVENTS):
        doc = source.document(step)
        halves[zlib.crc32(doc["customer_id"].encode()) % 2].append(doc)
    return halves


def decide(documents: list[dict[str, Any]]) -> list[StoredEvent]:
    """What a consumer computes per event: the account's decision (after the sweep that
    would have run), the intake record, the stored events."""
    ledger = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, rules=RULES)
    mapper = ledger.mapper
    accounts = MemoryAccounts()
    stored: list[StoredEvent] = []
    for doc in documents:
        # far ahead: nothing pending at the sweep before each event
        events = replay.decide(doc, accounts, RULES, swept_at=START + timedelta(days=365 * 3))
        stored += [mapper.to_stored_event(e) for e in events]
    ledger.close()
    return stored


def _timed_decide(documents: list[dict[str, Any]]) -> tuple[float, int]:
    tune_gc()
    started = time.perf_counter()
    count = len(decide(documents))
    return time.perf_counter() - started, count


def _timed_insert(job: tuple[str, list[StoredEvent]]) -> float:
    url, stored = job
    recorder, factory = open_recorder(StoreURL.parse(url))
    try:
        started = time.perf_counter()
        for first in range(0, len(stored), BATCH):
            recorder.insert_events(stored[first : first + BATCH])
        return time.perf_counter() - started
    finally:
        factory.close()


def in_parallel(work: Callable[[Any], Any], jobs: list[Any]) -> tuple[float, list[Any]]:
    """Wall seconds for `jobs` run at once, one process each; and their results."""
    context = multiprocessing.get_context("fork")
    with context.Pool(len(jobs)) as pool:
        started = time.perf_counter()
        results = pool.map(work, jobs)
        return time.perf_counter() - started, results


def empty_store(url: str) -> None:
    """No tables, then the ledger's, created by a ledger start (then closed)."""
    servers.empty_database(url)
    Ledger(env=StoreURL.parse(url).eventsourcing_env(), rules=RULES).close()


def main() -> None:
    tune_gc()
    halves = traffic()
    everything = halves[0] + halves[1]
    print(
        f"{EVENTS:,} POS events, {CUSTOMERS:,} customers, halves {len(halves[0]):,}"
        f" / {len(halves[1]):,}"
    )

    one_seconds, _ = in_parallel(_timed_decide, [everything])
    two_seconds, _ = in_parallel(_timed_decide, list(halves))
    decide_1, decide_2 = EVENTS / one_seconds, EVENTS / two_seconds
    print(f"decide: 1 process {decide_1:,.0f} events/s, 2 processes {decide_2:,.0f}/s")

    stored_halves = [decide(half) for half in halves]
    stored_all = stored_halves[0] + stored_halves[1]
    print(f"stored events: {len(stored_all):,} ({len(stored_all) / EVENTS:.2f} a POS event)")
    with (
        servers.scratch_database(PG_SERVER, "bench_scale_a") as first,
        servers.scratch_database(PG_SERVER, "bench_scale_b") as second,
    ):
        rates: dict[str, float] = {}
        for label, jobs in (
            ("1 writer, 1 store", [(first, stored_all)]),
            ("2 writers, 1 store", [(first, stored_halves[0]), (first, stored_halves[1])]),
            ("2 writers, 2 stores", [(first, stored_halves[0]), (second, stored_halves[1])]),
        ):
            empty_store(first)
            empty_store(second)
            seconds, _ = in_parallel(_timed_insert, jobs)
            rates[label] = EVENTS / seconds
            print(f"store, {label}: {rates[label]:,.0f} POS events/s", flush=True)

    store_1 = rates["1 writer, 1 store"]
    cores = os.cpu_count() or 1
    rows = [
        ("decide, 1 process", decide_1, 1.0),
        ("decide, 2 processes (disjoint customers)", decide_2, decide_2 / decide_1),
        *((f"store, {label}", rate, rate / store_1) for label, rate in rates.items()),
    ]

    # Per-process efficiency at two consumers, measured (1.0 = perfect scaling). Two stores
    # on this one server share its cores and its one WAL, so they say nothing of stores on
    # servers of their own: those are taken to add up (an assumption, docs/SCALING.md).
    decide_eff = min(1.0, decide_2 / decide_1 / 2)

    def model(consumers: int, partitions: int, stores: int) -> tuple[float, str]:
        """A core per consumer, a server per store; consumers beyond partitions idle."""
        decided = decide_1 * min(consumers, partitions) * (decide_eff if consumers > 1 else 1)
        stored = store_1 * stores
        return min(decided, stored), "decide" if decided < stored else "store"

    table = "\n".join(
        [
            f"{EVENTS:,} POS events ({len(stored_all):,} stored events), {CUSTOMERS:,}"
            f" customers, {cores} cores:",
            "",
            "| stage | POS events/s | / its 1-process, 1-store baseline |",
            "|---|---:|---:|",
            *(f"| {what} | {rate:,.0f} | {ratio:.2f}x |" for what, rate, ratio in rows),
            "",
            "The model: min(decide x consumers at work x their measured efficiency"
            f" ({decide_eff:.2f}), store x stores), a core for each consumer and a server"
            " for each store (two stores on one server share its CPU and WAL: the last"
            " store row above is not a split):",
            "",
            "| partitions | consumers | stores | predicted POS events/s | bound by |",
            "|---:|---:|---:|---:|---|",
            *(
                f"| {p} | {n} | {s} | {model(n, p, s)[0]:,.0f} | {model(n, p, s)[1]} |"
                for p, n, s in (
                    (6, 1, 1),
                    (6, 2, 1),
                    (6, 6, 1),
                    (12, 12, 1),
                    (12, 12, 2),
                    (24, 24, 4),
                )
            ),
        ]
    )
    print(table)
    OUT.mkdir(exist_ok=True)
    (OUT / "scaling.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
