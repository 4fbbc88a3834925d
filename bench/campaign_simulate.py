"""A campaign's dry run over a month of history (SPEC §9 "Dry run", issue 11 item 5).

1. The history: `BENCH_SIMULATE_PURCHASES` purchases (default 100,000) over one month,
   from 20,000 customers, each with one to three receipt lines in one of five categories,
   recorded by the ledger (`record_batch`, 1,000 a batch) into a fresh SQLite store.
2. The baseline, in the same run: the same rows read raw, the accepted intake records in
   store order (the library's `select_notifications` with a topic filter) and each one's
   state decoded with orjson: what any dry run over the stored history must do at least.
3. The dry run (`Ledger.simulate_campaign`) of three campaigns over the whole month: a
   double-points weekend, a category multiplier with a budget that runs out, and a stamp
   card with a per-customer cap.

It prints seconds and purchases per second for each, the dry run / raw read ratio, and
writes `bench/out/campaign_simulate.md`.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from services.infrastructure.store import StoreURL
from services.ledger.application.ledger import Ledger
from services.ledger.domain import topics
from services.ledger.domain.campaigns.campaign import Terms
from services.ledger.domain.rules import ProgramRules
from services.runtime import tune_gc

OUT = Path(__file__).parent / "out"
PURCHASES = int(os.environ.get("BENCH_SIMULATE_PURCHASES", "100000"))
CUSTOMERS = 20_000
START = datetime(2026, 5, 1, tzinfo=UTC)
MONTH = timedelta(days=31)
CATEGORIES = ("coffee", "bakery", "dairy", "produce", "household")

CAMPAIGNS = [
    (
        "double-weekend",
        'weekday in ["saturday", "sunday"]',
        {"kind": "multiplier", "factor": "2"},
        None,
        None,
    ),
    (
        "coffee-x3",
        'amount >= 5 and [i for i in items if i.category == "coffee"].length > 0',
        {"kind": "category_multiplier", "category": "coffee", "factor": "3"},
        50_000,
        None,
    ),
    ("card", "amount >= 10", {"kind": "stamp", "stamps_needed": 5, "reward_points": 50}, None, 100),
]


def purchases(n: int) -> list[dict[str, Any]]:
    rng = random.Random(11)
    step = MONTH / n
    docs = []
    for i in range(n):
        lines = []
        for _ in range(rng.randint(1, 3)):
            price = f"{rng.randint(1, 30)}.{rng.randint(0, 99):02d}"
            lines.append(
                {
                    "sku": f"sku-{rng.randint(1, 500)}",
                    "qty": rng.randint(1, 3),
                    "unit_price": {"value": price, "currency": "EUR"},
                    "category": rng.choice(CATEGORIES),
                }
            )
        total = sum(float(line["unit_price"]["value"]) * line["qty"] for line in lines)
        docs.append(
            {
                "event_id": f"p-{i}",
                "type": "purchase",
                "customer_id": f"c{rng.randrange(CUSTOMERS):05d}",
                "occurred_at": (START + step * i).isoformat(),
                "store_id": f"store-{rng.randint(1, 20)}",
                "schema_version": 1,
                "receipt_id": f"r-{i}",
                "amount": {"value": f"{total:.2f}", "currency": "EUR"},
                "items": lines,
            }
        )
    return docs


def raw_read(ledger: Ledger) -> int:
    topic = topics.INTAKE_EVENTS["Accepted"]
    stop = ledger.recorder.max_notification_id() or 0
    after, found = 0, 0
    while after < stop:
        page = ledger.recorder.select_notifications(after + 1, 5_000, stop=stop, topics=[topic])
        if not page:
            break
        after = page[-1].id
        found += sum(1 for n in page if orjson.loads(n.state)["type"] == "purchase")
    return found


def main() -> None:
    tune_gc()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        ledger = Ledger(env=StoreURL.parse(url).eventsourcing_env(), rules=ProgramRules())
        started = time.perf_counter()
        docs = purchases(PURCHASES)
        for i in range(0, len(docs), 1000):
            ledger.record_batch(docs[i : i + 1000])
        print(f"history: {PURCHASES:,} purchases recorded in {time.perf_counter() - started:.1f} s")
        position = ledger.position()

        started = time.perf_counter()
        read = raw_read(ledger)
        raw_s = time.perf_counter() - started
        print(f"raw read: {read:,} purchases in {raw_s:.2f} s ({read / raw_s:,.0f}/s)")
        rows = []
        for campaign_id, condition, effect, budget, cap in CAMPAIGNS:
            terms = Terms(
                campaign_id, campaign_id, condition, effect, START, START + MONTH, budget, cap, True
            )
            started = time.perf_counter()
            result = ledger.simulate_campaign(terms, START, START + MONTH)
            took = time.perf_counter() - started
            assert ledger.position() == position and result.events_read == PURCHASES
            print(
                f"dry run {campaign_id}: {took:.2f} s ({PURCHASES / took:,.0f}/s), "
                f"{result.points:,} points, {result.events_matched:,} purchases, "
                f"{len(result.customers):,} customers, budget out at {result.budget_exhausted_at}"
            )
            rows.append((campaign_id, took, result))
        ledger.close()

    lines = [
        f"{PURCHASES:,} purchases over a month, {CUSTOMERS:,} customers, SQLite file.",
        "",
        f"| dry run | seconds | purchases/s | vs raw read ({raw_s:.2f} s) | points "
        "| purchases earning | budget out at |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for campaign_id, took, result in rows:
        lines.append(
            f"| {campaign_id} | {took:.2f} | {PURCHASES / took:,.0f} | {raw_s / took:.2f}x | "
            f"{result.points:,} | {result.events_matched:,} | {result.budget_exhausted_at or '-'} |"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "campaign_simulate.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
