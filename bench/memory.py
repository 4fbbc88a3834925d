"""Resident memory of `consume`, `project` and `serve` for 1,000,000 customers (issue 14
item 2: caches bounded in bytes, not only in count).

On a fresh PostgreSQL database (created here, dropped after) and a `tansu` broker (or
`LOYALTY_BENCH_KAFKA_BOOTSTRAP`), each process is the real command, run as a subprocess
with its default settings, and its resident set (`VmRSS` in /proc) is sampled every
0.2 s:

1. `loyalty consume` starts idle (its baseline), then `BENCH_MEMORY_CUSTOMERS` (default
   1,000,000) purchases are produced, one for each customer, and it stores them all;
2. `loyalty project` starts on the store (its baseline before its first batch) and
   projects every event;
3. `loyalty serve` (the read side in `project`, as in production) answers the balance of
   `BENCH_MEMORY_READS` (default 100,000) customers drawn at random from all of them.

For each it prints the baseline, the resident set after 10%, 50% and 100% of the work,
the peak and peak / baseline: with bounded caches the resident set stops growing once
the caches are full, whatever the number of customers. Writes `bench/out/memory.md`.
"""

from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench.kafka_ingest import broker
from services.infrastructure.sql import Database
from services.infrastructure.store import StoreURL, open_recorder
from services.projections.tables import ProjectionTables
from tests.support import servers

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "out"
CUSTOMERS = int(os.environ.get("BENCH_MEMORY_CUSTOMERS", "1000000"))
READS = int(os.environ.get("BENCH_MEMORY_READS", "100000"))
PARTITIONS = 6
PG_SERVER = os.environ.get("LOYALTY_BENCH_POSTGRES_DSN", servers.LOCAL_POSTGRES_DSN)
SERVICE_KEY = "bench-memory-service-key-0"
KEYS = f"pos:bench-memory-pos-key-000,service:{SERVICE_KEY}"
CHECKPOINTS = (0.1, 0.5, 1.0)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Sampled:
    """A process's resident set: at its baseline, at each checkpoint, at its peak."""

    name: str
    baseline: float = 0.0
    at: dict[float, float] = field(default_factory=dict)
    peak: float = 0.0
    seconds: float = 0.0


class Sampler(threading.Thread):
    def __init__(self, process: subprocess.Popen[bytes], sampled: Sampled) -> None:
        super().__init__(daemon=True)
        self.process, self.sampled = process, sampled
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2) and self.process.poll() is None:
            self.sampled.peak = max(self.sampled.peak, rss_mib(self.process.pid))

    def now(self) -> float:
        value = rss_mib(self.process.pid)
        self.sampled.peak = max(self.sampled.peak, value)
        return value

    def checkpoint(self, mark: float) -> None:
        self.sampled.at[mark] = self.now()
        print(f"  {self.sampled.name}: {mark:.0%} at {self.sampled.at[mark]:.0f} MiB", flush=True)

    def follow(self, progress: Callable[[], int], total: int, log: Path) -> None:
        """Read the resident set as `progress()` passes each checkpoint of `total`."""
        began = time.perf_counter()
        for mark in CHECKPOINTS:
            while progress() < mark * total:
                alive(self.process, log)
                time.sleep(0.5)
            self.checkpoint(mark)
        self.sampled.seconds = time.perf_counter() - began


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def alive(process: subprocess.Popen[bytes], log: Path) -> None:
    if process.poll() is not None:
        raise RuntimeError(f"{process.args} exited:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()


def purchases(count: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of one purchase for each of `count` customers, within the last weeks."""
    start = datetime.now(UTC) - timedelta(days=20)
    step = timedelta(days=19) / count
    messages = []
    for n in range(count):
        customer = f"m{n:07d}"
        document = {
            "event_id": f"mem-{n}",
            "type": "purchase",
            "customer_id": customer,
            "occurred_at": (start + step * n).isoformat(),
            "schema_version": 1,
            "store_id": "riga-1",
            "receipt_id": f"mem-r-{n}",
            "amount": {"value": f"{10 + n % 90}.00", "currency": "EUR"},
        }
        messages.append((customer.encode(), orjson.dumps(document)))
    return messages


def committed(watcher: KafkaConsumer, topic: str) -> int:
    return sum(watcher.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS))


def run_consume(bootstrap: str, env: dict[str, str], tmp: Path) -> Sampled:
    topic = servers.unique_topic("bench.memory")
    dlq = servers.unique_topic("bench.memory-dlq")
    servers.create_topics(bootstrap, [topic], partitions=PARTITIONS)
    servers.create_topics(bootstrap, [dlq], partitions=1)
    group = servers.unique_topic("bench-memory")
    log = tmp / "consume.log"
    process = start(
        [
            *("consume", "--bootstrap", bootstrap, "--topic", topic, "--dlq-topic", dlq),
            *("--group-id", group, "--fast-rebalance", "--metrics-port", "0"),
        ],
        env,
        log,
    )
    sampled = Sampled("loyalty consume")
    sampler = Sampler(process, sampled)
    watcher = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        while "consuming" not in log.read_text():
            alive(process, log)
            time.sleep(0.2)
        time.sleep(2)  # the group joined, nothing to do: the idle process
        sampled.baseline = sampler.now()
        sampler.start()
        producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024
        )
        sent = Counter(
            f.get(timeout=600).partition
            for f in [producer.send(topic, key=k, value=v) for k, v in purchases(CUSTOMERS)]
        )
        producer.close()
        print(f"  produced {sum(sent.values()):,} purchases", flush=True)
        sampler.follow(lambda: committed(watcher, topic), CUSTOMERS, log)
    finally:
        sampler.done.set()
        watcher.close()
        stop(process)
    return sampled


def run_project(url: str, env: dict[str, str], tmp: Path) -> Sampled:
    store = StoreURL.parse(url)
    recorder, factory = open_recorder(store)
    target = recorder.max_notification_id() or 0
    factory.close()
    log = tmp / "project.log"
    process = start(["project", "--metrics-port", "0"], env, log)
    sampled = Sampled("loyalty project")
    sampler = Sampler(process, sampled)
    db = Database(store, pool_size=1)
    tables = ProjectionTables(db)
    try:
        while "projecting" not in log.read_text():
            alive(process, log)
            time.sleep(0.05)
        sampled.baseline = sampler.now()
        sampler.start()
        sampler.follow(tables.read_position, target, log)
    finally:
        sampler.done.set()
        stop(process)
        db.close()
    return sampled


def run_serve(env: dict[str, str], tmp: Path) -> Sampled:
    port = servers.free_loopback_port()
    log = tmp / "serve.log"
    process = start(["serve", "--port", str(port), "--metrics-port", "0"], env, log)
    sampled = Sampled("loyalty serve")
    sampler = Sampler(process, sampled)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            alive(process, log)
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        sampled.baseline = sampler.now()
        sampler.start()
        chosen = random.Random(7).sample(range(CUSTOMERS), min(READS, CUSTOMERS))
        headers = {"Authorization": f"Bearer {SERVICE_KEY}"}
        began = time.perf_counter()
        with (
            httpx.Client(base_url=base, headers=headers, timeout=60) as client,
            ThreadPoolExecutor(4) as pool,
        ):

            def read(n: int) -> int:
                return client.get(f"/v1/customers/m{n:07d}/balance").status_code

            done = 0
            for mark in CHECKPOINTS:
                upto = int(mark * len(chosen))
                statuses = Counter(pool.map(read, chosen[done:upto]))
                if set(statuses) != {200}:
                    raise RuntimeError(f"balance reads answered {dict(statuses)}")
                done = upto
                sampler.checkpoint(mark)
        sampled.seconds = time.perf_counter() - began
    finally:
        sampler.done.set()
        stop(process)
    return sampled


def main() -> None:
    results: list[Sampled] = []
    with (
        broker() as bootstrap,
        servers.scratch_database(PG_SERVER, "bench_memory") as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        env = {
            **os.environ,
            "LOYALTY_STORE": url,
            "LOYALTY_VAR_DIR": tmp,
            "LOYALTY_API_KEYS": KEYS,
            "LOYALTY_PROJECTIONS_IN_PROCESS": "false",
        }
        results.append(run_consume(bootstrap, env, Path(tmp)))
        results.append(run_project(url, env, Path(tmp)))
        results.append(run_serve(env, Path(tmp)))
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; PostgreSQL (local), default settings; "
        f"{CUSTOMERS:,} customers (one purchase each), {READS:,} balance reads.",
        "",
        "| process | baseline (MiB) | at 10% | at 50% | at 100% | peak | peak / baseline | "
        "seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in results:
        marks = " | ".join(f"{s.at[m]:.0f}" for m in CHECKPOINTS)
        lines.append(
            f"| {s.name} | {s.baseline:.0f} | {marks} | {s.peak:.0f} | "
            f"{s.peak / s.baseline:.2f} | {s.seconds:.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    OUT.mkdir(exist_ok=True)
    (OUT / "memory.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
