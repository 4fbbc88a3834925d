"""Kafka ingest on PostgreSQL: the real consumer against a raw read and a naive baseline.

1. A broker (`LOYALTY_BENCH_KAFKA_BOOTSTRAP`, else a `tansu` broker started here the way
   the test fixture does) and fresh PostgreSQL databases (created here, dropped after).
2. `BENCH_KAFKA_EVENTS` (default 200,000) simulated POS events
   (`services.tools.simulation.generate_events`: purchases, refunds, redemptions,
   reviews, goodwill, ... with ~3% repeats and ~3% rule refusals) are produced to a
   6-partition topic, keyed by `customer_id`.
3. Measured, in the same run:
   (a) raw: kafka-python reads every message (no group, assigned partitions) and decodes
       it with orjson: the ceiling any Python consumer on this machine works under;
   (b) naive: per event, `parse_event` + one `Ledger.record_batch([doc])` (one
       eventsourcing `save`, one transaction) on PostgreSQL, on the first
       `BENCH_KAFKA_BASELINE` (default 5,000) events, scaled to events/second (no Kafka
       and no offset commit: generous to the baseline);
   (c) `loyalty consume` (a subprocess, the real code path: validation, batched
       `record_batch`, dead letters, offset commits; `BENCH_KAFKA_CONSUMERS` of them in
       one group, default 1) plus the projections (the `ProjectionRunner` on a thread
       of this process, as `loyalty project` runs it, with the CLI's GC settings),
       until every offset is committed and the projections reached the store's position.
       The rate is messages / (time from the first stored event until done); the
       process start and group join come before the clock starts and are printed apart.
       Without projections (`container.projections` is None) it measures ingest alone.
       (c) runs once more with the projections off, and both runs report the CPU
       seconds of the consumer process, the PostgreSQL backends and the projections, to
       show where the time goes.
(d) is the event store alone: the same stored events, built beforehand, inserted by the
ledger's recorder in the consumer's batch size into an empty store; the recorder's
table lock serializes inserts, so (d) bounds (c) however it is done.
It prints the rates and the ratios c/a (target >= 0.5), c/b (target >= 30) and d/a (the
ceiling of c/a with this store on this machine), and writes them to
`bench/out/kafka_ingest.md`. `BENCH_KAFKA_PROFILE=1` also runs the
consumer in this process under cProfile (writes `bench/out/kafka_ingest.prof`).
"""

from __future__ import annotations

import contextlib
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg
from eventsourcing.persistence import StoredEvent
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.bootstrap import build
from services.infrastructure.store import StoreURL, open_recorder
from services.ledger.adapters.contract import ContractViolation, load_contract, parse_event
from services.ledger.application.ledger import Ledger
from services.ledger.domain.rules import load_rules_file
from services.ledger.ingest.kafka_consumer import ConsumerOptions, PosEventConsumer
from services.runtime import tune_gc
from services.settings import Settings
from tests.support import servers

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "out"
EVENTS = int(os.environ.get("BENCH_KAFKA_EVENTS", "200000"))
BASELINE = int(os.environ.get("BENCH_KAFKA_BASELINE", "5000"))
CUSTOMERS = int(os.environ.get("BENCH_KAFKA_CUSTOMERS", "20000"))
PROFILE = os.environ.get("BENCH_KAFKA_PROFILE") == "1"
# `loyalty consume` processes in the group for (c). Two lose races on the referrers'
# accounts (a referral writes the referee's and the referrer's, in different partitions).
CONSUMERS = int(os.environ.get("BENCH_KAFKA_CONSUMERS", "1"))
PARTITIONS = 6
PG_SERVER = os.environ.get("LOYALTY_BENCH_POSTGRES_DSN", servers.LOCAL_POSTGRES_DSN)
START = datetime(2025, 1, 1, tzinfo=UTC)
# The consumer's tuning for this run (the `loyalty consume` options).
BATCH = 2000
CONSUME_ARGS = [
    *("--batch-size", str(BATCH), "--max-poll-records", str(BATCH), "--batch-wait-ms", "200")
]


@dataclass
class Stream:
    topic: str
    dlq: str
    values: list[bytes]
    per_partition: dict[int, int]
    produce_seconds: float


# ---- servers -------------------------------------------------------------------------------
@contextmanager
def broker() -> Iterator[str]:
    explicit = os.environ.get("LOYALTY_BENCH_KAFKA_BOOTSTRAP")
    if explicit:
        yield explicit
        return
    with tempfile.TemporaryDirectory() as tmp:
        tansu = servers.TansuBroker(servers.tansu_binary(), Path(tmp) / "tansu.log")
        tansu.start()
        try:
            yield tansu.bootstrap
        finally:
            tansu.stop()


# ---- the stream ----------------------------------------------------------------------------
def produce_stream(bootstrap: str) -> Stream:
    from services.tools.simulation import generate_events

    topic = servers.unique_topic("bench.pos-events")
    dlq = servers.unique_topic("bench.pos-events-dlq")
    servers.create_topics(bootstrap, [topic], partitions=PARTITIONS)
    servers.create_topics(bootstrap, [dlq], partitions=1)
    docs = list(generate_events(7, CUSTOMERS, EVENTS, START))
    values = [orjson.dumps(doc) for doc in docs]
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024
    )
    started = time.perf_counter()
    futures = [
        producer.send(topic, key=doc["customer_id"].encode(), value=value)
        for doc, value in zip(docs, values, strict=True)
    ]
    producer.flush(timeout=300)
    per_partition = Counter(f.get(timeout=60).partition for f in futures)
    seconds = time.perf_counter() - started
    producer.close()
    return Stream(topic, dlq, values, dict(per_partition), seconds)


# ---- (a) raw consume + orjson ----------------------------------------------------------------
def raw_consume(bootstrap: str, stream: Stream) -> float:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    partitions = [TopicPartition(stream.topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    count = 0
    loads = orjson.loads
    started = time.perf_counter()
    while count < EVENTS:
        for records in consumer.poll(timeout_ms=1000, max_records=2000).values():
            for record in records:
                loads(record.value)
            count += len(records)
    seconds = time.perf_counter() - started
    consumer.close()
    return count / seconds


# ---- (b) naive: one save per event -----------------------------------------------------------
def naive(stream: Stream) -> tuple[float, Counter[str]]:
    with servers.scratch_database(PG_SERVER, "bench_naive") as url:
        ledger = Ledger(env=StoreURL.parse(url).eventsourcing_env(), rules=load_rules_file())
        load_contract()
        statuses: Counter[str] = Counter()
        started = time.perf_counter()
        for value in stream.values[:BASELINE]:
            try:
                statuses[ledger.record_batch([parse_event(value)])[0].status] += 1
            except ContractViolation:
                statuses["invalid"] += 1
        seconds = time.perf_counter() - started
        ledger.close()
    return BASELINE / seconds, statuses


# ---- (d) the event store alone: a ceiling for (c) -------------------------------------------
def store_alone(stream: Stream) -> tuple[float, int]:
    """The stored events that (c) writes, built beforehand (through `record_batch` into a
    scratch store, not timed), then inserted into an empty store by the ledger's
    recorder in batches of the consumer's size: no Kafka, no validation, no decisions,
    no projections. The recorder serializes inserts with its table lock, so no consumer,
    however many of them, stores these events faster. Returns (POS events/s, batches)."""
    documents = []
    for value in stream.values:
        with contextlib.suppress(ContractViolation):
            documents.append(parse_event(value))
    with servers.scratch_database(PG_SERVER, "bench_built") as url:
        ledger = Ledger(env=StoreURL.parse(url).eventsourcing_env(), rules=load_rules_file())
        for first in range(0, len(documents), BATCH):
            ledger.record_batch(documents[first : first + BATCH])
        stored = [
            StoredEvent(n.originator_id, n.originator_version, n.topic, n.state)
            for n in ledger.recorder.select_notifications(start=1, limit=2**31)
        ]
        ledger.close()
    per_batch = max(1, len(stored) * BATCH // len(documents))
    batches = [stored[i : i + per_batch] for i in range(0, len(stored), per_batch)]
    with servers.scratch_database(PG_SERVER, "bench_store") as url:
        recorder, factory = open_recorder(StoreURL.parse(url))
        started = time.perf_counter()
        for batch in batches:
            recorder.insert_events(batch)
        seconds = time.perf_counter() - started
        factory.close()
    return EVENTS / seconds, len(batches)


# ---- (c) loyalty consume + projections -------------------------------------------------------
@dataclass
class Consumed:
    rate: float  # POS events / seconds from the first stored event until done
    ingest_rate: float  # ... until every offset was committed
    startup_seconds: float  # process start, store connection and group join
    projected: bool
    stored_events: int
    cpu: dict[str, float]  # CPU seconds by component while measured


def consume(
    bootstrap: str, stream: Stream, *, project: bool = True, consumers: int = CONSUMERS
) -> Consumed:
    """`consumers` processes of `loyalty consume` in one group; the projections (when
    `project` and the read side is wired) on a thread of this process."""
    with (
        servers.scratch_database(PG_SERVER, "bench_consume") as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        settings = Settings(store=url, var_dir=Path(tmp), api_keys="pos:bench-pos-key-00000000")
        container = build(settings)  # creates the store's and projections' tables first
        projections = container.projections if project else None
        group = servers.unique_topic("bench-consume")
        env = {
            **os.environ,
            "LOYALTY_STORE": url,
            "LOYALTY_VAR_DIR": tmp,
            "LOYALTY_API_KEYS": "pos:bench-pos-key-00000000",
        }
        args = [
            *("--bootstrap", bootstrap, "--topic", stream.topic, "--dlq-topic", stream.dlq),
            *("--group-id", group, "--fast-rebalance", "--metrics-port", "0", *CONSUME_ARGS),
        ]
        stop = threading.Event()
        projection_cpu: list[float] = []
        runner = None
        if projections is not None:

            def run_projections() -> None:
                try:
                    projections.runner.run_forever(stop, 0.05)
                finally:
                    projection_cpu.append(time.thread_time())

            runner = threading.Thread(target=run_projections, daemon=True)
            runner.start()
        launched = time.perf_counter()
        logs = [Path(tmp) / f"consume-{n}.log" for n in range(consumers)]
        processes = []
        for log_path in logs:
            with log_path.open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "services.cli", "consume", *args],
                        cwd=ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )

        def check_running() -> None:
            for process, log_path in zip(processes, logs, strict=True):
                if process.poll() is not None:
                    raise RuntimeError(f"loyalty consume exited:\n{log_path.read_text()}")

        watcher = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        try:
            initial = container.ledger.position()
            while container.ledger.position() == initial:
                check_running()
                time.sleep(0.02)
            first_stored = time.perf_counter()
            cpu_start = {"loyalty consume": sum(cpu_seconds(p.pid) for p in processes)}
            cpu_start["PostgreSQL"] = postgres_cpu(url)
            while not all_committed(watcher, stream):
                check_running()
                time.sleep(0.1)
            ingested = time.perf_counter()
            target = container.ledger.position()
            if projections is not None:
                while projections.runner.position() < target:
                    time.sleep(0.05)
            done = time.perf_counter()
            cpu = {
                "loyalty consume": sum(cpu_seconds(p.pid) for p in processes)
                - cpu_start["loyalty consume"],
                "PostgreSQL": postgres_cpu(url) - cpu_start["PostgreSQL"],
            }
        finally:
            watcher.close()
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=60)
            stop.set()
            if runner is not None and projections is not None:
                projections.runner.wake()
                runner.join(timeout=60)
            container.close()
    if projection_cpu:
        cpu["projections"] = projection_cpu[0]
    return Consumed(
        rate=EVENTS / (done - first_stored),
        ingest_rate=EVENTS / (ingested - first_stored),
        startup_seconds=first_stored - launched,
        projected=projections is not None,
        stored_events=target,
        cpu={name: round(seconds, 1) for name, seconds in cpu.items()},
    )


def all_committed(watcher: KafkaConsumer, stream: Stream) -> bool:
    partitions = [TopicPartition(stream.topic, p) for p in range(PARTITIONS)]
    offsets = {tp.partition: watcher.committed(tp) for tp in partitions}
    return all(offsets[p] == stream.per_partition.get(p) for p in offsets)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc); 0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu(url: str) -> float:
    """CPU time of the PostgreSQL backends serving the bench database."""
    with psycopg.connect(url, autocommit=True) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
        ]
    return sum(cpu_seconds(pid) for pid in pids)


def profile_consumer(bootstrap: str, stream: Stream) -> None:
    """The consumer in this process under cProfile, on a fresh database and group."""
    with servers.scratch_database(PG_SERVER, "bench_profile") as url:
        ledger = Ledger(env=StoreURL.parse(url).eventsourcing_env(), rules=load_rules_file())
        options = ConsumerOptions(
            bootstrap=bootstrap,
            topics=(stream.topic,),
            dlq_topic=stream.dlq,
            group_id=servers.unique_topic("bench-profile"),
            batch_size=2000,
            max_poll_records=2000,
            batch_wait_ms=200,
            fast_rebalance=True,
        )
        consumer = PosEventConsumer(ledger, options)
        consumer.open()
        profiler = cProfile.Profile()
        seen = 0
        started = time.perf_counter()
        profiler.enable()
        while seen < EVENTS:
            report = consumer.run_once()
            seen += report.records if report is not None and not report.retry else 0
        profiler.disable()
        seconds = time.perf_counter() - started
        consumer.close()
        ledger.close()
    OUT.mkdir(exist_ok=True)
    profiler.dump_stats(OUT / "kafka_ingest.prof")
    print(f"\nprofiled consumer: {EVENTS / seconds:,.0f} events/s (under cProfile)")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


def main() -> None:
    tune_gc()  # as every `loyalty` command does: (b) and the projections run in this process
    with broker() as bootstrap:
        print(f"broker {bootstrap}; producing {EVENTS:,} POS events ...", flush=True)
        stream = produce_stream(bootstrap)
        print(f"produced in {stream.produce_seconds:.1f} s", flush=True)
        raw = raw_consume(bootstrap, stream)
        print(f"(a) raw consume + orjson: {raw:,.0f} events/s", flush=True)
        baseline, statuses = naive(stream)
        print(f"(b) one save per event: {baseline:,.0f} events/s {dict(statuses)}", flush=True)
        consumed = consume(bootstrap, stream)
        print(f"(c) {consumed}", flush=True)
        alone = consume(bootstrap, stream, project=False) if consumed.projected else None
        if alone is not None:
            print(f"(c) without projections: {alone}", flush=True)
        ceiling, batches = store_alone(stream)
        print(f"(d) the event store alone: {ceiling:,.0f} events/s ({batches} batches)", flush=True)
        if PROFILE:
            profile_consumer(bootstrap, stream)
    what = "loyalty consume + projections"
    if not consumed.projected:
        what = "loyalty consume (ingest alone: the projections are not wired)"
    lines = [
        f"Kafka ingest on PostgreSQL: {EVENTS:,} simulated POS events ({consumed.stored_events:,} "
        f"stored events), {PARTITIONS} partitions, {os.cpu_count()} CPUs (load average "
        f"{os.getloadavg()[1]:.1f} over the last 5 min); baseline on "
        f"{BASELINE:,} events. `loyalty consume {' '.join(CONSUME_ARGS)}`.",
        "",
        "| path | events/s | notes |",
        "|---|---:|---|",
        f"| (a) raw kafka-python consume + orjson decode | {raw:,.0f} | |",
        f"| (b) one `Ledger.record_batch([doc])` (one save) per event | {baseline:,.0f} | |",
        f"| (c) {what} | {consumed.rate:,.0f} | all offsets committed at "
        f"{consumed.ingest_rate:,.0f}/s; CPU s: {_cpu(consumed)} |",
    ]
    if alone is not None:
        lines.append(
            f"| (c) without projections running | {alone.rate:,.0f} | CPU s: {_cpu(alone)} |"
        )
    lines += [
        f"| (d) the event store alone: (c)'s stored events, built beforehand, inserted "
        f"in {batches} batches | {ceiling:,.0f} | no Kafka, validation, decisions or "
        "projections: no consumer stores faster |",
        f"| c/a | {consumed.rate / raw:.2f} | target >= 0.5 |",
        f"| c/b | {consumed.rate / baseline:.1f} | target >= 30 |",
        f"| d/a | {ceiling / raw:.2f} | the most c/a can be with this store here |",
    ]
    table = "\n".join(lines)
    print("\n" + table)
    OUT.mkdir(exist_ok=True)
    (OUT / "kafka_ingest.md").write_text(table + "\n")


def _cpu(consumed: Consumed) -> str:
    return ", ".join(f"{name} {seconds:g}" for name, seconds in consumed.cpu.items())


if __name__ == "__main__":
    main()
