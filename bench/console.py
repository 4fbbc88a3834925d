"""The console's customer page for a customer with 10,000 events (target: < 300 ms).

1. A SQLite store (the embedded default) gets simulated POS traffic for two customers,
   most of it for one (`generate_events`: purchases, refunds, reviews, goodwill,
   redemptions...), through the ledger's own `record_batch`, with a sweep (tick) between
   batches as the days pass, until that customer has 10,000 stored events; the
   projections catch up.
2. In one process with the app (FastAPI's TestClient, the full HTTP stack without a
   socket), signed in as a service key, each read is timed `ROUNDS` times, median and
   worst printed:
   - baseline: the read API's JSON balance `GET /v1/customers/{id}/balance`;
   - the customer page `GET /console/customers/{id}` (balance with lots, tier, segment,
     trust, LTV, the newest 50 timeline events with their why), rendered;
   - the same page as of a day (every event of the customer folded again).

The process runs with the CLI's GC settings (`tune_gc`), as `loyalty serve` does. It
prints the times and writes `bench/out/console.md`. `BENCH_CONSOLE_EVENTS` sets the
customer's events (default 10,000); `BENCH_CONSOLE_STORE=/path/file.db` keeps the store
there and reuses it on the next run (the history takes minutes to build).
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from services.api import create_app
from services.bootstrap import build
from services.http.auth import ApiKeys
from services.ledger.domain.clock import parse_ts
from services.runtime import tune_gc
from services.settings import Settings
from services.tools.simulation import generate_events

OUT = Path(__file__).parent / "out"
EVENTS = int(os.environ.get("BENCH_CONSOLE_EVENTS", "10000"))
ROUNDS = int(os.environ.get("BENCH_CONSOLE_ROUNDS", "15"))
KEYS = {"service": "service-bench-console-00", "admin": "admin-bench-console-000"}
START = datetime(2024, 1, 1, tzinfo=UTC)
TARGET_MS = 300.0


def stored_events(container: object, customer_id: str) -> int:
    from services.infrastructure.store import versions_of
    from services.ledger.domain.account import CustomerAccount

    versions = versions_of(container.ledger.recorder, [CustomerAccount.create_id(customer_id)])  # type: ignore[attr-defined]
    return int(next(iter(versions.values()), 0))


def load(container: object) -> str:
    """Traffic until the busiest customer has EVENTS stored events; returns its id."""
    ledger = container.ledger  # type: ignore[attr-defined]
    traffic = generate_events(7, 2, EVENTS * 3, START)
    customer = "sim7-c000000"
    batch: list[dict[str, object]] = []
    done = 0
    for doc in traffic:
        batch.append(doc)
        if len(batch) < 500:
            continue
        container.tick(parse_ts(str(batch[0]["occurred_at"])))  # type: ignore[attr-defined]
        ledger.record_batch(batch)
        batch = []
        done = stored_events(container, customer)
        if done >= EVENTS:
            break
    print(f"  {customer}: {done:,} stored events; store at {ledger.position():,}", flush=True)
    return customer


def timed(call: Callable[[], object]) -> tuple[float, float]:
    call()  # warm: templates compiled, caches filled
    seconds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1000, max(seconds) * 1000


def main() -> None:
    tune_gc()  # as every `loyalty` command runs, `serve` included
    kept = os.environ.get("BENCH_CONSOLE_STORE")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(kept) if kept else Path(tmp) / "loyalty.db"
        fresh = not store.exists()
        settings = Settings(
            store=f"sqlite:///{store}",
            var_dir=Path(tmp) / "var",
            projections_in_process=True,
            read_wait_seconds=120.0,
        )
        keys = ApiKeys.parse(",".join(f"{r}:{k}" for r, k in KEYS.items()))
        container = build(settings, api_keys=keys)
        try:
            with TestClient(create_app(container)) as client:
                started = time.perf_counter()
                customer = load(container) if fresh else "sim7-c000000"
                events = stored_events(container, customer)
                container.projections.queries.wait_for(container.ledger.position())
                print(f"  history loaded and projected in {time.perf_counter() - started:.0f} s")
                rows = measure(client, customer)
        finally:
            container.close()
    report(rows, customer, events)


def measure(client: TestClient, customer: str) -> list[tuple[str, float, float, int]]:
    headers = {"Authorization": f"Bearer {KEYS['service']}"}
    page = client.get("/console/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    client.post(
        "/console/sign-in",
        data={"key": KEYS["service"], "name": "bench", "csrf_token": token.group(1)},
    )
    last = client.get(f"/v1/customers/{customer}/timeline?limit=1", headers=headers).json()
    assert last["items"], "the customer has no events"
    as_of = "2024-06-30"
    reads = [
        ("JSON balance (baseline)", f"/v1/customers/{customer}/balance", headers),
        ("customer page", f"/console/customers/{customer}", {}),
        (f"customer page as of {as_of}", f"/console/customers/{customer}?as_of={as_of}", {}),
    ]
    rows = []
    for name, path, extra in reads:
        answer = client.get(path, headers=extra)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
        median, worst = timed(lambda p=path, h=extra: client.get(p, headers=h))  # type: ignore[misc]
        rows.append((name, median, worst, len(answer.content)))
        print(
            f"  {name:<34} median {median:7.1f} ms  worst {worst:7.1f} ms  "
            f"{len(answer.content):,} bytes",
            flush=True,
        )
    return rows


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def report(rows: list[tuple[str, float, float, int]], customer: str, events: int) -> None:
    baseline = rows[0][1]
    page = rows[1][1]
    verdict = "met" if page < TARGET_MS else "NOT met"
    print(
        f"  customer page: {page:.0f} ms (target < {TARGET_MS:.0f} ms: {verdict}), "
        f"{page / baseline:.1f} x the JSON balance"
    )
    machine = f"{cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    lines = [
        f"Customer page of {customer} ({events:,} events), SQLite, {ROUNDS} rounds, {machine}",
        "",
        "| read | median ms | worst ms | bytes | x baseline |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {name} | {median:.1f} | {worst:.1f} | {size:,} | {median / baseline:.1f} |"
            for name, median, worst, size in rows
        ),
    ]
    OUT.mkdir(exist_ok=True)
    (OUT / "console.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
