"""Reads under a steady batch ingest, measured with wrk: each read's p99 against the p99 of
`/healthz` measured at the same time (issue target: balance and tier p99 <= 2x).

For each store it starts the service in the shape it runs in: on a SQLite file (the
embedded default, `make run`) one `loyalty serve` with the projections in the process,
the reads sharing it with the writes and the projections; on a fresh PostgreSQL database
`loyalty serve` and `loyalty project` as two processes (production), then again with the
writes sent to a second `serve` (as when the POS writes reach their own instances, or
Kafka and `loyalty consume`), so the serve that answers reads does no ingest. Then it:
1. seeds a hot customer with `HOT` purchases (one open lot each) and `CUSTOMERS`
   ordinary customers with 3 purchases each, in batches of 500, runs the sweep (the
   lots mature) and waits for the projections;
2. starts a steady ingest: a batch of `INGEST_BATCH` purchases for ordinary customers
   every `INGEST_EVERY` seconds, from a thread of this process, for the whole run;
3. for each read, runs wrk for `SECONDS` on `/healthz`, then on the read (2 connections
   each), and prints both p99s and their ratio. One after the other, not at once: wrk
   sends as fast as it is answered, so a wrk on `/healthz` beside the read is a load of
   its own (thousands of requests a second on the event loop, starving the reads'
   worker threads of the GIL: a read's p99 rose tenfold);
4. times `AS_OF_ROUNDS` as-of balances of the hot customer one after another (p50, max),
   and the size of the hot customer's balance (the default page and `lots_limit=1000`).

Writes `bench/out/reads_under_load.md`. Needs wrk (Debian's package `wrk`).
`BENCH_READS_STORES=sqlite` (or `postgres`) runs one store only; `BENCH_READS_PACE_MS=5`
makes each wrk connection wait 5 ms between requests (a steady read load, the same for
the read and for `/healthz`) instead of sending as fast as it is answered.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.http_batch import free_port
from tests.support import servers

OUT = Path(__file__).parent / "out"
HOT = int(os.environ.get("BENCH_READS_HOT", "5000"))
CUSTOMERS = int(os.environ.get("BENCH_READS_CUSTOMERS", "2000"))
SECONDS = int(os.environ.get("BENCH_READS_SECONDS", "10"))
INGEST_BATCH = int(os.environ.get("BENCH_READS_INGEST_BATCH", "100"))
INGEST_EVERY = float(os.environ.get("BENCH_READS_INGEST_EVERY", "0.5"))
AS_OF_ROUNDS = int(os.environ.get("BENCH_READS_AS_OF_ROUNDS", "10"))
STORES = os.environ.get("BENCH_READS_STORES", "sqlite,postgres").split(",")
PACE_MS = int(os.environ.get("BENCH_READS_PACE_MS", "0"))
POS_KEY = "pos-bench-reads-000000000"
SERVICE_KEY = "service-bench-reads-00000"
ADMIN_KEY = "admin-bench-reads-0000000"
PG_SERVER = os.environ.get("LOYALTY_BENCH_POSTGRES_DSN", servers.LOCAL_POSTGRES_DSN)
HOT_ID = "hot-0001"


def purchase(event_id: str, customer: str, day: int) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "purchase",
        "customer_id": customer,
        "occurred_at": f"2026-{1 + day // 28 % 11:02d}-{1 + day % 28:02d}T12:00:00+00:00",
        "store_id": f"s{day % 20}",
        "schema_version": 1,
        "receipt_id": f"r-{event_id}",
        "amount": {"value": f"{10 + day % 90}.50", "currency": "EUR"},
    }


@contextmanager
def server(store: str, var_dir: str, *, in_process: bool, split: bool = False) -> Iterator[Urls]:
    """`loyalty serve` (and `loyalty project` unless the projections run in it); with
    `split`, a second `serve` that takes the writes, so the one read sees no ingest."""
    env = {
        **os.environ,
        "LOYALTY_STORE": store,
        "LOYALTY_API_KEYS": f"pos:{POS_KEY},service:{SERVICE_KEY},admin:{ADMIN_KEY}",
        "LOYALTY_VAR_DIR": var_dir,
        "LOYALTY_PROJECTIONS_IN_PROCESS": str(in_process).lower(),
        "LOYALTY_READ_WAIT_SECONDS": "30",
    }
    loyalty = [sys.executable, "-m", "services.cli"]
    out = subprocess.DEVNULL
    processes: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for _ in range(2 if split else 1):
            port = free_port()
            processes.append(
                subprocess.Popen(
                    [*loyalty, "serve", "--port", str(port), "--metrics-port", "0"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.PIPE,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        if not in_process:
            processes.append(
                subprocess.Popen([*loyalty, "project", "--metrics-port", "0"], env=env, stdout=out)
            )
        for url, proc in zip(urls, processes, strict=False):
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "no start")
                time.sleep(0.2)
        yield Urls(reads=urls[0], writes=urls[-1])
    finally:
        for running in reversed(processes):
            running.terminate()
            running.wait(timeout=30)


@dataclass(frozen=True)
class Urls:
    reads: str
    writes: str


def post(client: httpx.Client, events: list[dict[str, Any]]) -> int:
    answer = client.post("/v1/events:batch", json={"events": events})
    answer.raise_for_status()
    results = answer.json()["results"]
    assert {r["status"] for r in results} == {"accepted"}, results[:3]
    return max(int(r["position"]) for r in results)


def seed(url: str) -> int:
    events = [purchase(f"hot-{n}", HOT_ID, n) for n in range(HOT)]
    events += [
        purchase(f"seed-{c}-{n}", f"c{c:05d}", c + n * 7)
        for c in range(CUSTOMERS)
        for n in range(3)
    ]
    position = 0
    with httpx.Client(base_url=url, headers=auth(POS_KEY), timeout=300) as client:
        for start in range(0, len(events), 500):
            position = post(client, events[start : start + 500])
        # the sweep matures the lots, as it would have day by day: the hot customer's open
        # lots are available, as a real customer's mostly are
        swept = client.post("/v1/admin/tick", json={}, headers=auth(ADMIN_KEY), timeout=600)
        swept.raise_for_status()
        position = max(position, int(swept.json().get("position") or 0))
        # the projections reach the last position before anything is timed
        client.get(
            f"/v1/customers/{HOT_ID}/balance",
            params={"min_position": position, "lots_limit": 0},
            headers=auth(SERVICE_KEY),
        ).raise_for_status()
    return len(events)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Ingest(threading.Thread):
    """A batch of purchases every INGEST_EVERY seconds until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.events = 0
        self.seconds = 0.0

    def run(self) -> None:
        started = time.perf_counter()
        n = 0
        with httpx.Client(base_url=self.url, headers=auth(POS_KEY), timeout=120) as client:
            while not self.stop.is_set():
                began = time.perf_counter()
                batch = [
                    purchase(f"live-{n + i}", f"c{(n + i) % CUSTOMERS:05d}", (n + i) % 300)
                    for i in range(INGEST_BATCH)
                ]
                post(client, batch)
                n += INGEST_BATCH
                self.events = n
                self.stop.wait(max(0.0, INGEST_EVERY - (time.perf_counter() - began)))
        self.seconds = time.perf_counter() - started


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, seconds: int) -> subprocess.Popen[str]:
    """wrk on `url`; with PACE_MS each connection waits that long between requests (wrk's
    `delay()`): a steady read load instead of as many as the server answers."""
    paced: list[str] = []
    if PACE_MS > 0:
        script = OUT / "pace.lua"
        OUT.mkdir(exist_ok=True)
        script.write_text(f"function delay()\n  return {PACE_MS}\nend\n")
        paced = ["-s", str(script)]
    return subprocess.Popen(
        [
            "wrk",
            "-t1",
            "-c2",
            f"-d{seconds}s",
            "--latency",
            *paced,
            "-H",
            f"Authorization: Bearer {SERVICE_KEY}",
            url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def parsed(proc: subprocess.Popen[str]) -> tuple[float, float, int]:
    """(p99 in ms, requests per second, non-2xx answers) from wrk's report."""
    out, _ = proc.communicate()
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if p99 is None or rate is None:
        raise RuntimeError(f"wrk said:\n{out}")
    return float(p99[1]) * _UNITS[p99[2]], float(rate[1]), int(bad[1]) if bad else 0


def reads(url: str) -> list[tuple[str, str]]:
    customer = f"{url}/v1/customers"
    return [
        ("balance, an ordinary customer", f"{customer}/c00042/balance"),
        ("tier, an ordinary customer", f"{customer}/c00042/tier"),
        (
            f"balance, the hot customer ({HOT:,} lots; a page of 100)",
            f"{customer}/{HOT_ID}/balance",
        ),
        ("tier, the hot customer", f"{customer}/{HOT_ID}/tier"),
        (
            "balance, the hot customer, lots_limit=1000",
            f"{customer}/{HOT_ID}/balance?lots_limit=1000",
        ),
    ]


def measure(urls: Urls) -> dict[str, Any]:
    url = urls.reads
    seeded = seed(urls.writes)
    ingest = Ingest(urls.writes)
    ingest.start()
    rows = []
    try:
        for name, target in reads(url):
            health_p99, _, _ = parsed(wrk(f"{url}/healthz", SECONDS))
            read_p99, read_rate, bad = parsed(wrk(target, SECONDS))
            if bad:
                raise RuntimeError(f"{name}: {bad} answers were not 2xx")
            rows.append((name, read_p99, health_p99, read_rate))
        as_of = []
        with httpx.Client(base_url=url, headers=auth(SERVICE_KEY), timeout=120) as client:
            for _ in range(AS_OF_ROUNDS):
                started = time.perf_counter()
                answer = client.get(
                    f"/v1/customers/{HOT_ID}/balance", params={"as_of": "2026-12-01T00:00:00Z"}
                )
                answer.raise_for_status()
                as_of.append((time.perf_counter() - started) * 1e3)
            page = len(client.get(f"/v1/customers/{HOT_ID}/balance").content)
            big = len(
                client.get(f"/v1/customers/{HOT_ID}/balance", params={"lots_limit": 1000}).content
            )
    finally:
        ingest.stop.set()
        ingest.join()
    return {
        "seeded": seeded,
        "rows": rows,
        "ingest": ingest.events / ingest.seconds,
        "as_of": (statistics.median(as_of), max(as_of)),
        "sizes": (page, big),
    }


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    results = []
    if "sqlite" in STORES:
        with (
            tempfile.TemporaryDirectory() as tmp,
            server(f"sqlite:///{tmp}/bench.db", tmp, in_process=True) as urls,
        ):
            results.append(("SQLite (file, WAL): one serve, projections in it", measure(urls)))
    if "postgres" in STORES:
        for split, shape in [
            (False, "one serve for reads and writes, and project"),
            (True, "the writes on a second serve, and project"),
        ]:
            with (
                servers.scratch_database(PG_SERVER, "bench") as dsn,
                tempfile.TemporaryDirectory() as tmp,
                server(dsn, tmp, in_process=False, split=split) as urls,
            ):
                results.append((f"PostgreSQL (local): {shape}", measure(urls)))
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; "
        f"wrk -t1 -c2 -d{SECONDS}s{f' paced {PACE_MS} ms' if PACE_MS else ''} on /healthz, "
        "then on the read, during an ingest of "
        f"{INGEST_BATCH} purchases every {INGEST_EVERY:g} s.",
        "",
    ]
    for store, found in results:
        lines += [
            f"**{store}**: {found['seeded']:,} events seeded; ingest during the reads "
            f"{found['ingest']:,.0f} events/s",
            "",
            "| read | p99 (ms) | /healthz p99 just before (ms) | ratio | reads/s |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, p99, health, rate in found["rows"]:
            lines.append(
                f"| {name} | {p99:.1f} | {health:.1f} | {p99 / health:.2f} | {rate:,.0f} |"
            )
        median, worst = found["as_of"]
        page, big = found["sizes"]
        lines += [
            "",
            f"As-of balance of the hot customer (every event folded): median {median:.0f} ms, "
            f"worst {worst:.0f} ms of {AS_OF_ROUNDS}. Its balance answer: {page:,} bytes "
            f"(default page), {big:,} bytes (lots_limit=1000).",
            "",
        ]
    table = "\n".join(lines)
    print(table)
    OUT.mkdir(exist_ok=True)
    (OUT / "reads_under_load.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
