"""POST /v1/events:batch on both stores, against one event per request (the baseline).

For each store (SQLite file, a fresh PostgreSQL database) it starts `loyalty serve` as a
real server on a free loopback port, then posts purchases for many customers:
- baseline: N_SINGLE events, one `POST /v1/events` each;
- batch: N_BATCH events in batches of 500 via `POST /v1/events:batch`.
It prints events/second for both and the ratio, and writes `bench/out/http_batch.md`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support import servers

OUT = Path(__file__).parent / "out"
N_SINGLE = int(os.environ.get("BENCH_HTTP_SINGLE", "1000"))
N_BATCH = int(os.environ.get("BENCH_HTTP_BATCH", "20000"))
BATCH = 500
KEY = "pos-bench-key-0000000000"
PG_SERVER = os.environ.get("LOYALTY_BENCH_POSTGRES_DSN", servers.LOCAL_POSTGRES_DSN)


def purchase(i: int, run: str) -> dict[str, Any]:
    return {
        "event_id": f"{run}-{i}",
        "type": "purchase",
        "customer_id": f"c{i % 5000}",
        "occurred_at": "2026-10-01T12:00:00+00:00",
        "store_id": f"s{i % 20}",
        "schema_version": 1,
        "receipt_id": f"{run}-r{i}",
        "amount": {"value": f"{10 + i % 190}.{i % 100:02d}", "currency": "EUR"},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(store: str, var_dir: str) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "LOYALTY_STORE": store,
        "LOYALTY_API_KEYS": f"pos:{KEY},admin:admin-bench-key-000000000",
        "LOYALTY_VAR_DIR": var_dir,
        "LOYALTY_PROJECTIONS_IN_PROCESS": "false",
    }
    cmd = [sys.executable, "-m", "services.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"server did not start: {proc.stderr.read() if proc.stderr else ''}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measure(url: str) -> tuple[float, float]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        started = time.perf_counter()
        for i in range(N_SINGLE):
            client.post("/v1/events", json=purchase(i, "single")).raise_for_status()
        single = N_SINGLE / (time.perf_counter() - started)
        events = [purchase(i, "batch") for i in range(N_BATCH)]
        started = time.perf_counter()
        for start in range(0, N_BATCH, BATCH):
            answer = client.post("/v1/events:batch", json={"events": events[start : start + BATCH]})
            answer.raise_for_status()
            statuses = {r["status"] for r in answer.json()["results"]}
            assert statuses == {"accepted"}, statuses
        batch = N_BATCH / (time.perf_counter() - started)
    return single, batch


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, server(f"sqlite:///{tmp}/bench.db", tmp) as url:
        rows.append(("SQLite (file, WAL)", *measure(url)))
    with (
        servers.scratch_database(PG_SERVER, "bench") as dsn,
        tempfile.TemporaryDirectory() as tmp,
        server(dsn, tmp) as url,
    ):
        rows.append(("PostgreSQL (local)", *measure(url)))
    lines = [
        "| store | one event per POST (events/s) | POST /v1/events:batch of 500 (events/s)"
        " | ratio |",
        "|---|---:|---:|---:|",
    ]
    for name, single, batch in rows:
        lines.append(f"| {name} | {single:,.0f} | {batch:,.0f} | {batch / single:.1f}x |")
    table = "\n".join(lines)
    print(f"\nHTTP intake: {N_SINGLE} single posts, {N_BATCH} events in batches of {BATCH}\n")
    print(table)
    OUT.mkdir(exist_ok=True)
    (OUT / "http_batch.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
