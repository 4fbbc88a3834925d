"""Every long-running `loyalty` process serves /metrics on its own port with its own series
and none of the others': the processes are started for real, fed real work, and scraped;
the answers are read with prometheus_client's own parser."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from services.infrastructure.store import StoreURL
from services.ledger.application.ledger import Ledger
from services.ledger.domain.rules import ProgramRules
from services.tools.simulation import generate_events
from tests.integration.kafka_support import Message, intake_event_ids, produce, purchase
from tests.support.servers import create_topics, free_loopback_port, unique_topic

ROOT = Path(__file__).resolve().parents[2]

# The metric families each process alone produces (family names, as the parser gives them:
# a counter's `_total` dropped).
OWN = {
    "serve": {"http_requests", "http_request_duration_seconds", "loyalty_store_position"},
    "project": {
        "loyalty_projection_position",
        "loyalty_projection_lag_events",
        "loyalty_audit_chain_position",
    },
    "consume": {"loyalty_consumer_lag_messages", "loyalty_dead_letters"},
    "relay": {
        "loyalty_outbox_published",
        "loyalty_outbox_unpublished",
        "loyalty_outbox_oldest_unpublished_seconds",
    },
}
SERVE_ALSO = {"loyalty_sweep_runs", "loyalty_sweep_recorded"}


class Process:
    """A `loyalty` command run as its own process, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", *args],
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def scrape(port: int) -> dict[str, list[Sample]]:
    """Family name -> its samples, as prometheus_client's parser reads the answer."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def wait_for(condition: Callable[[], bool], what: str, *logs: Process, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if condition():
                return
        except (OSError, urllib.error.URLError, httpx.TransportError):
            pass  # not listening yet
        if time.monotonic() > deadline or any(p.process.poll() is not None for p in logs):
            tails = "\n".join(f"--- {p.process.args}:\n{p.log()[-3000:]}" for p in logs)
            pytest.fail(f"not within {seconds} s: {what}\n{tails}")
        time.sleep(0.2)


def value(families: dict[str, list[Sample]], sample: str, **labels: str) -> float | None:
    for family in families.values():
        for found in family:
            if found.name == sample and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return None


def assert_only_its_own(
    families: dict[str, list[Sample]], process: str, runs_also: str | None = None
) -> None:
    others = set().union(
        *(names for name, names in OWN.items() if name not in (process, runs_also))
    )
    if process != "serve":
        others |= SERVE_ALSO
    assert OWN[process] <= set(families), sorted(set(families))
    if runs_also:
        assert OWN[runs_also] <= set(families), sorted(set(families))
    assert not others & set(families), f"{process} serves others' series: {others & set(families)}"
    assert "process_resident_memory_bytes" in families  # the process's own, from its registry


@pytest.mark.timeout(120)
def test_serve_counts_requests_by_route_template_and_status_on_its_metrics_port(
    store_url: str, tmp_path: Path, processes: list[Process]
) -> None:
    port, metrics_port = free_loopback_port(), free_loopback_port()
    env = {
        "LOYALTY_STORE": store_url,
        "LOYALTY_VAR_DIR": str(tmp_path / "var"),
        "LOYALTY_API_KEYS": "pos:pos-metrics-key-000000,admin:admin-metrics-key-0000",
    }
    args = ["serve", "--port", str(port), "--metrics-port", str(metrics_port)]
    serve = Process(args, env, tmp_path / "serve.log")
    processes.append(serve)
    api = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{api}/healthz").status_code == 200, "serve answers", serve)

    pos = {"Authorization": "Bearer pos-metrics-key-000000"}
    event = purchase("anna", "p-metrics-1", "20.00", 0)
    assert httpx.post(f"{api}/v1/events", json=event, headers=pos).status_code == 201
    assert httpx.get(f"{api}/v1/customers/anna/balance").status_code == 401
    assert httpx.get(f"{api}/v1/customers/boris/balance").status_code == 401
    # SPEC §6: the API's port answers four paths without a key, and /metrics is not one.
    assert httpx.get(f"{api}/metrics").status_code == 404

    families = scrape(metrics_port)
    # With the embedded store, serve runs the projections in its own process (SPEC §6);
    # with PostgreSQL `loyalty project` does.
    in_process = "project" if store_url.startswith("sqlite:") else None
    assert_only_its_own(families, "serve", runs_also=in_process)
    balance = "/v1/customers/{customer_id}/balance"
    requests = dict(handler=balance, method="GET", status="401")
    assert value(families, "http_requests_total", **requests) == 2  # one series, not one per id
    assert value(families, "http_request_duration_seconds_count", **requests) == 2
    assert value(families, "http_requests_total", handler="/v1/events", status="201") == 1
    assert value(families, "loyalty_events_total", source="http", status="accepted") == 1
    position = httpx.get(f"{api}/readyz").json()["position"]
    assert value(families, "loyalty_store_position") == position > 0


@pytest.mark.postgres
@pytest.mark.kafka
@pytest.mark.timeout(180)
def test_project_and_relay_each_serve_their_own_series(
    postgres_url: str, kafka_bootstrap: str, tmp_path: Path, processes: list[Process]
) -> None:
    ledger = Ledger(env=StoreURL.parse(postgres_url).eventsourcing_env(), rules=ProgramRules())
    try:
        ledger.record_batch(list(generate_events(3, 10, 60, datetime(2025, 1, 1, tzinfo=UTC))))
        store_position = ledger.position()
    finally:
        ledger.close()
    topic = unique_topic("test.projections")
    create_topics(kafka_bootstrap, [topic], partitions=3)
    env = {
        "LOYALTY_STORE": postgres_url,
        "LOYALTY_VAR_DIR": str(tmp_path / "var"),
        "LOYALTY_API_KEYS": "admin:admin-metrics-key-0000",
        "LOYALTY_KAFKA_BOOTSTRAP": kafka_bootstrap,
    }
    project_port, relay_port = free_loopback_port(), free_loopback_port()
    project = Process(["project", "--metrics-port", str(project_port)], env, tmp_path / "p.log")
    processes.append(project)
    relay_args = ["relay", "--topic", topic, "--metrics-port", str(relay_port)]
    relay = Process(relay_args, env, tmp_path / "relay.log")
    processes.append(relay)

    def caught_up() -> bool:
        families = scrape(project_port)
        # At least: `project` sweeps at start, and its maturations come after.
        position = value(families, "loyalty_projection_position")
        return position is not None and position >= store_position

    wait_for(caught_up, f"the projections reach position {store_position}", project)

    def drained() -> bool:
        families = scrape(relay_port)
        published = value(families, "loyalty_outbox_published_total") or 0
        return published > 0 and value(families, "loyalty_outbox_unpublished") == 0

    wait_for(drained, "the relay publishes the whole outbox", relay, project)

    projected = scrape(project_port)
    assert_only_its_own(projected, "project")
    assert value(projected, "loyalty_projection_lag_events") == 0
    assert value(projected, "loyalty_projection_failures_total") == 0
    relayed = scrape(relay_port)
    assert_only_its_own(relayed, "relay")
    assert value(relayed, "loyalty_outbox_oldest_unpublished_seconds") == 0


@pytest.mark.kafka
@pytest.mark.timeout(180)
def test_consume_serves_its_lag_events_and_dead_letters_and_nothing_else(
    sqlite_url: str, kafka_bootstrap: str, tmp_path: Path, processes: list[Process]
) -> None:
    topic, dlq = unique_topic("test.pos-events"), unique_topic("test.pos-events-dlq")
    create_topics(kafka_bootstrap, [topic], partitions=2)
    create_topics(kafka_bootstrap, [dlq], partitions=1)
    metrics_port = free_loopback_port()
    args = [
        *("consume", "--bootstrap", kafka_bootstrap, "--topic", topic, "--dlq-topic", dlq),
        *("--group-id", unique_topic("test-metrics"), "--fast-rebalance"),
        *("--metrics-port", str(metrics_port)),
    ]
    env = {
        "LOYALTY_STORE": sqlite_url,
        "LOYALTY_VAR_DIR": str(tmp_path / "var"),
        "LOYALTY_API_KEYS": "pos:pos-metrics-key-000000",
    }
    consume = Process(args, env, tmp_path / "consume.log")
    processes.append(consume)
    good = [Message.of(purchase(f"c{n}", f"p-{n}", "10.00", n), "accepted") for n in range(6)]
    produce(kafka_bootstrap, topic, [*good, Message(b"c0", b"{not json", [], "malformed-json")])

    def counted() -> bool:
        families = scrape(metrics_port)
        accepted = value(families, "loyalty_events_total", source="kafka", status="accepted")
        return accepted == len(good)

    wait_for(counted, "the consumer counts the accepted events", consume)
    families = scrape(metrics_port)
    assert_only_its_own(families, "consume")
    assert value(families, "loyalty_dead_letters_total", reason="malformed-json") == 1
    assert value(families, "loyalty_batch_seconds_count", source="kafka")
    lags = [s for s in families["loyalty_consumer_lag_messages"] if s.labels["topic"] == topic]
    assert {s.labels["partition"] for s in lags} == {"0", "1"}
    assert all(s.value == 0 for s in lags)
    ledger = Ledger(env=StoreURL.parse(sqlite_url).eventsourcing_env(), rules=ProgramRules())
    try:
        assert len(intake_event_ids(ledger)) == len(good)
    finally:
        ledger.close()


@pytest.mark.timeout(60)
def test_a_metrics_port_already_taken_is_a_usage_error_not_a_process_without_metrics(
    sqlite_url: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "services.cli", "project", "--metrics-port", str(port)],
            cwd=ROOT,
            env={
                **os.environ,
                "LOYALTY_STORE": sqlite_url,
                "LOYALTY_VAR_DIR": str(tmp_path / "var"),
                "LOYALTY_API_KEYS": "admin:admin-metrics-key-0000",
            },
            capture_output=True,
            text=True,
            timeout=50,
        )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"cannot serve /metrics on 127.0.0.1:{port}" in result.stderr
