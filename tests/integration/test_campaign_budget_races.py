"""A campaign's budget and per-customer cap hold under concurrency (SPEC §9: "never
exceeded, under any interleaving"): two `loyalty consume` processes in one group and two
`loyalty serve` processes taking concurrent HTTP batches, all on one PostgreSQL store,
grant from one campaign whose budget runs out mid-stream. The budget is used exactly,
no customer gets more than the cap, every granted point is on an account, and no HTTP
answer is a server error."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.infrastructure.store import StoreURL
from services.ledger.application.ledger import Ledger
from services.ledger.domain.campaigns.campaign import Terms
from services.ledger.domain.rules import load_rules_file
from tests.integration.kafka_support import T0, Message, intake_event_ids, produce, purchase
from tests.support.servers import create_topics, free_loopback_port, unique_topic

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
POS_KEY = "pos-budget-race-key-000"
BONUS, BUDGET, CAP = 10, 3000, 60
CUSTOMERS = 80  # 80 x 60 = 4,800 of caps: the budget binds first
KAFKA_EVENTS, HTTP_EVENTS, BATCH = 1200, 1200, 40


def start(command: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", command, *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_until(condition: Any, seconds: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            tails = "\n".join(
                f"--- {p.name}:\n{p.read_text(errors='replace')[-2000:]}" for p in logs
            )
            pytest.fail(f"not within {seconds} s: {what}\n{tails}")
        time.sleep(0.2)


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz").status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_two_consumers_and_two_servers_never_overrun_a_budget_or_a_cap(
    kafka_bootstrap: str,
    postgres_url: str,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    ledger = Ledger(env=StoreURL.parse(postgres_url).eventsourcing_env(), rules=load_rules_file())
    terms = Terms(
        campaign_id="bonus",
        name="ten points a purchase",
        condition="amount >= 1",
        effect={"kind": "bonus", "points": BONUS},
        starts_at=T0 - timedelta(days=1),
        ends_at=T0 + timedelta(days=365),
        budget_points=BUDGET,
        per_customer_cap=CAP,
        announced=True,
    )
    ledger.create_campaign(
        terms, created_by="maria", created_with_key=None, now=T0 - timedelta(days=2)
    )
    ledger.approve_campaign(
        "bonus", approved_by="oskar", approver_key=None, now=T0 - timedelta(days=1)
    )

    topic, dlq = unique_topic("test.pos-events"), unique_topic("test.pos-events-dlq")
    create_topics(kafka_bootstrap, [topic], partitions=4)
    create_topics(kafka_bootstrap, [dlq], partitions=1)
    env = {
        **os.environ,
        "LOYALTY_STORE": postgres_url,
        "LOYALTY_API_KEYS": f"pos:{POS_KEY}",
        "LOYALTY_SERVE_METRICS_PORT": "0",
        "PYTHONUNBUFFERED": "1",
    }
    consume = [
        *("--bootstrap", kafka_bootstrap, "--topic", topic, "--dlq-topic", dlq),
        *("--group-id", unique_topic("test-budget"), "--fast-rebalance", "--metrics-port", "0"),
        *("--batch-size", "50", "--max-poll-records", "50", "--report-every", "0.5"),
    ]
    logs = []
    urls = []
    for n in range(2):
        logs.append(tmp_path / f"consume-{n}.log")
        processes.append(
            start("consume", consume, {**env, "LOYALTY_VAR_DIR": str(tmp_path / f"c{n}")}, logs[-1])
        )
        port = free_loopback_port()
        urls.append(f"http://127.0.0.1:{port}")
        logs.append(tmp_path / f"serve-{n}.log")
        processes.append(
            start(
                "serve",
                ["--port", str(port)],
                {**env, "LOYALTY_VAR_DIR": str(tmp_path / f"s{n}")},
                logs[-1],
            )
        )
    wait_until(lambda: all(healthy(u) for u in urls), 60, "both servers answer", logs)

    def customer(n: int) -> str:
        return f"c{n % CUSTOMERS:02d}"

    kafka_docs = [
        purchase(customer(n), f"k-{n:05d}", "12.00", n % 500) for n in range(KAFKA_EVENTS)
    ]
    http_docs = [
        purchase(customer(n + 7), f"h-{n:05d}", "12.00", n % 500) for n in range(HTTP_EVENTS)
    ]
    batches = [http_docs[i : i + BATCH] for i in range(0, len(http_docs), BATCH)]

    def send(job: tuple[int, list[dict[str, Any]]]) -> list[int]:
        n, batch = job
        with httpx.Client(base_url=urls[n % 2], timeout=120) as http:
            answer = http.post(
                "/v1/events:batch",
                json={"events": batch},
                headers={"Authorization": f"Bearer {POS_KEY}"},
            )
        statuses = [answer.status_code]
        if answer.status_code == 200:
            statuses += [
                400 if r["status"] == "rejected" else 200 for r in answer.json()["results"]
            ]
        return statuses

    with ThreadPoolExecutor(max_workers=8) as pool:
        produced = pool.submit(
            produce, kafka_bootstrap, topic, [Message.of(d, "accepted") for d in kafka_docs]
        )
        answers = [s for statuses in pool.map(send, enumerate(batches)) for s in statuses]
        produced.result()
    assert [s for s in answers if s >= 400] == [], "every batch and event accepted, no 5xx"

    total = KAFKA_EVENTS + HTTP_EVENTS
    wait_until(lambda: len(set(intake_event_ids(ledger))) >= total, 180, "every event stored", logs)

    consumed = [p.read_text(errors="replace") for p in logs if p.name.startswith("consume")]
    assert all(re.search(r"\d+ messages in .* accepted", log) for log in consumed), consumed
    campaign = ledger.campaign("bonus")
    assert campaign.used == BUDGET and campaign.budget_left() == 0
    per_customer = {}
    for n in range(CUSTOMERS):
        account = ledger.account(customer(n))
        per_customer[customer(n)] = account.campaign_use().points.get("bonus", 0)
    assert max(per_customer.values()) <= CAP
    assert sum(per_customer.values()) == BUDGET  # every point the budget gave is on an account
    ledger.close()
