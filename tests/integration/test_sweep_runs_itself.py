"""The sweep runs by itself (SPEC §8): `serve` (embedded) and `project` sweep at start and
every `sweep_interval_seconds`; concurrent sweeps record nothing twice; reads never show a
lapsed lot as available; a read side nobody runs says how to start it."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api import create_app
from services.bootstrap import build
from services.ledger.domain.clock import iso, utcnow
from services.sweeper import Sweeper
from tests.integration.audit_support import auth, make_container, settings_for
from tests.integration.test_process_metrics import Process, processes, wait_for
from tests.support.servers import free_loopback_port

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
__all__ = ["processes"]  # the fixture, shared with the metrics tests


def purchase(customer: str, n: int, when: Any, value: str = "100.00") -> dict[str, Any]:
    return {
        "event_id": f"{customer}-ev-{n}",
        "type": "purchase",
        "customer_id": customer,
        "occurred_at": iso(when),
        "store_id": "s-1",
        "schema_version": 1,
        "receipt_id": f"{customer}-r-{n}",
        "amount": {"value": value, "currency": "EUR"},
    }


def test_the_sweeper_matures_lots_without_a_tick(sqlite_url: str, tmp_path: Path) -> None:
    container = make_container(sqlite_url, tmp_path, with_projections=True)
    sweeper = Sweeper(container)
    try:
        container.ledger.record(purchase("anna", 1, utcnow() - timedelta(days=20)))
        assert container.ledger.account("anna").pending == 100
        sweeper.start()
        deadline = time.monotonic() + 30
        while container.ledger.account("anna").available != 100:
            assert time.monotonic() < deadline, sweeper.last_error
            time.sleep(0.05)
        assert sweeper.sweeps >= 1
    finally:
        sweeper.stop()
        container.close()


def test_a_lapsed_lot_is_never_shown_as_available(sqlite_url: str, tmp_path: Path) -> None:
    container = make_container(sqlite_url, tmp_path, with_projections=True)
    try:
        bought = utcnow() - timedelta(days=400)
        container.ledger.record(purchase("anna", 1, bought))
        container.tick(bought + timedelta(days=20))  # matured; its expiry not swept yet
        container.projections.runner.catch_up()
        balance = container.projections.queries.balance("anna")
        assert (balance["available"], balance["expired"]) == (0, 100)
        redemption = {
            **purchase("anna", 2, utcnow()),
            "type": "redemption",
            "points": 10,
            "reward_id": "mug",
        }
        del redemption["amount"], redemption["receipt_id"]
        refused = container.ledger.record(redemption)
        assert refused.error is not None and refused.error.slug == "insufficient-points"
    finally:
        container.close()


def test_two_concurrent_sweeps_record_each_maturation_once(store_url: str, tmp_path: Path) -> None:
    first = make_container(store_url, tmp_path / "a", with_projections=False)
    second = make_container(store_url, tmp_path / "b", with_projections=False)
    try:
        customers = [f"c{i}" for i in range(60)]
        bought = utcnow() - timedelta(days=20)
        first.ledger.record_batch([purchase(c, 1, bought) for c in customers])
        results: list[Any] = []
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def sweep(container: Any) -> None:
            start.wait()
            try:
                results.append(container.ledger.tick(utcnow(), customers, chunk=7))
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=sweep, args=(c,)) for c in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        matured = [item for result in results for item in result.recorded]
        assert sorted(item["customer_id"] for item in matured) == sorted(customers)
        for customer in customers:
            account = first.ledger.account(customer)
            assert (account.available, account.pending) == (100, 0)
        assert first.ledger.tick(utcnow(), customers).recorded == []
    finally:
        first.close()
        second.close()


@pytest.mark.postgres
def test_a_read_side_nobody_runs_says_how_to_start_it(postgres_url: str, tmp_path: Path) -> None:
    settings = settings_for(postgres_url, tmp_path).model_copy(
        update={"projections_in_process": False, "read_wait_seconds": 0.3}
    )
    container = build(settings)
    try:
        with TestClient(create_app(container)) as client:
            outcome = container.ledger.record(purchase("anna", 1, utcnow()))
            answer = client.get(
                "/v1/customers/anna/balance",
                params={"min_position": outcome.position},
                headers=auth("auditor"),
            )
        assert answer.status_code == 503
        assert "the projections are not running" in answer.json()["detail"]
        assert "loyalty project" in answer.json()["detail"]
    finally:
        container.close()


@pytest.mark.parametrize("command", ["serve", "project"])
def test_serve_and_project_sweep_at_start(
    command: str, sqlite_url: str, tmp_path: Path, processes: list[Process]
) -> None:
    container = make_container(sqlite_url, tmp_path, with_projections=False)
    container.ledger.record(purchase("anna", 1, utcnow() - timedelta(days=20)))
    container.close()
    env = {
        "LOYALTY_STORE": sqlite_url,
        "LOYALTY_VAR_DIR": str(tmp_path / "var"),
        "LOYALTY_API_KEYS": settings_for(sqlite_url, tmp_path).api_keys or "",
    }
    args = [command, "--metrics-port", "0"]
    if command == "serve":
        args += ["--port", str(free_loopback_port())]
    processes.append(Process(args, env, tmp_path / f"{command}.log"))

    def matured() -> bool:
        reader = make_container(sqlite_url, tmp_path, with_projections=False)
        try:
            return reader.ledger.account("anna").available == 100
        finally:
            reader.close()

    wait_for(matured, f"{command} matures the lot by itself", *processes)
