"""Two `loyalty consume` processes in one group on PostgreSQL; one is killed (SIGKILL) in
the middle of a stream. Every event is stored exactly once, each customer's in the order
produced; the survivor stops gracefully on SIGTERM with every offset committed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.infrastructure.store import StoreURL
from services.ledger.application.ledger import Ledger
from services.ledger.domain.rules import load_rules_file
from tests.integration.kafka_support import (
    Message,
    committed_offsets,
    intake_event_ids,
    produce,
    purchase,
    purchases_by_customer,
    records_per_partition,
)
from tests.support.servers import create_topics, free_loopback_port, unique_topic

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
CUSTOMERS = 40
EVENTS = 3000
CHUNK = 100


class Consumer:
    """A `loyalty consume` process and its log."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "consume", *args],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assigned(self, topic: str) -> set[int]:
        """The partitions of its latest assignment."""
        lines = re.findall(r"partitions assigned: (.*)", self.log())
        return (
            {int(p) for p in re.findall(re.escape(topic) + r"\[(\d+)\]", lines[-1])}
            if lines
            else set()
        )

    def progressed(self) -> bool:
        return bool(re.search(r"\d+ messages in .* accepted", self.log()))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def wait_for(condition: Callable[[], bool], seconds: float, what: str, *logs: Consumer) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {c.name}:\n{c.log()[-3000:]}" for c in logs)
            pytest.fail(f"not within {seconds} s: {what}\n{tails}")
        time.sleep(0.1)


@pytest.fixture
def consumers() -> Iterator[list[Consumer]]:
    started: list[Consumer] = []
    yield started
    for consumer in started:
        consumer.stop()


def test_a_member_killed_mid_stream_loses_nothing_and_repeats_nothing(
    kafka_bootstrap: str, postgres_url: str, tmp_path: Path, consumers: list[Consumer]
) -> None:
    topic, dlq = unique_topic("test.pos-events"), unique_topic("test.pos-events-dlq")
    create_topics(kafka_bootstrap, [topic], partitions=PARTITIONS)
    create_topics(kafka_bootstrap, [dlq], partitions=1)
    group = unique_topic("test-rebalance")
    env = {
        **os.environ,
        "LOYALTY_STORE": postgres_url,
        "LOYALTY_VAR_DIR": str(tmp_path),
        "LOYALTY_API_KEYS": "pos:pos-key-000000000000",
        "PYTHONUNBUFFERED": "1",
    }
    args = [
        *("--bootstrap", kafka_bootstrap, "--topic", topic, "--dlq-topic", dlq),
        *("--group-id", group, "--fast-rebalance", "--report-every", "0.5"),
        *("--batch-size", "200", "--max-poll-records", "100"),
    ]
    metrics_port = free_loopback_port()
    victim = Consumer("victim", [*args, "--metrics-port", "0"], env, tmp_path / "victim.log")
    consumers.append(victim)
    survivor = Consumer(
        "survivor", [*args, "--metrics-port", str(metrics_port)], env, tmp_path / "survivor.log"
    )
    consumers.append(survivor)
    wait_for(
        lambda: (
            victim.assigned(topic) | survivor.assigned(topic) == set(range(PARTITIONS))
            and not victim.assigned(topic) & survivor.assigned(topic)
        ),
        60,
        "both members share the partitions",
        victim,
        survivor,
    )

    # Both processes started at once on the empty database; this one reads what they store.
    ledger = Ledger(env=StoreURL.parse(postgres_url).eventsourcing_env(), rules=load_rules_file())

    # Each customer's events in order, by occurred_at and event_id sequence.
    messages = [
        Message.of(
            purchase(f"c{n % CUSTOMERS:02d}", f"e-{n:05d}", f"{5 + n % 90}.00", n), "accepted"
        )
        for n in range(EVENTS)
    ]
    produced = threading.Event()

    def stream() -> None:
        for start in range(0, EVENTS, CHUNK):
            produce(kafka_bootstrap, topic, messages[start : start + CHUNK])
            time.sleep(0.15)
        produced.set()

    producer = threading.Thread(target=stream, name="pos-stream")
    producer.start()
    wait_for(
        lambda: victim.progressed() and survivor.progressed(),
        60,
        "both members have stored events",
        victim,
        survivor,
    )
    assert not produced.is_set(), "the stream ended before the kill: slow it down"
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(timeout=10)
    producer.join(timeout=120)
    assert produced.is_set()

    wait_for(
        lambda: len(intake_event_ids(ledger)) >= EVENTS,
        120,
        f"{EVENTS} events stored",
        survivor,
    )
    assert survivor.assigned(topic) == set(range(PARTITIONS)), "the survivor took over"
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as answer:
        metrics = answer.read().decode()
    assert "loyalty_consumer_lag_messages{" in metrics
    assert 'loyalty_events_total{source="kafka",status="accepted"}' in metrics

    # Graceful stop: the current batch finishes and its offsets are committed.
    counts = records_per_partition(messages)
    wait_for(
        lambda: (
            committed_offsets(kafka_bootstrap, group, topic)
            == {p: counts.get(p) for p in range(PARTITIONS)}
        ),
        30,
        "every offset committed",
        survivor,
    )
    survivor.process.send_signal(signal.SIGTERM)
    assert survivor.process.wait(timeout=30) == 0, survivor.log()[-3000:]
    assert "SIGTERM: finishing the current batch" in survivor.log()
    assert "consumer closed" in survivor.log()

    # Exactly once: one intake record per event_id; in order per customer.
    stored = intake_event_ids(ledger)
    assert len(stored) == len(set(stored)) == EVENTS
    assert set(stored) == {m.event_id for m in messages}
    expected: dict[str, list[str]] = {}
    for message in messages:
        expected.setdefault(message.key.decode(), []).append(str(message.event_id))  # type: ignore[union-attr]
    assert purchases_by_customer(ledger) == expected
    ledger.close()
