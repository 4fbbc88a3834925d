"""Long-running processes survive what production does to them (issue: reliability).

- `loyalty project` keeps going when PostgreSQL restarts under it (`pg_ctl restart -m
  immediate`: every connection dies at once) and catches up afterwards; before, it exited
  with status 1 and nothing projected until someone restarted it.
- The sweep (`tick`) finishes while the intake keeps winning races on its accounts;
  before, three lost races ended it with an error, part of its chunks committed.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from services.infrastructure.sql import TRANSIENT_ERRORS
from services.infrastructure.store import StoreURL
from services.ledger.application.ledger import Ledger
from services.ledger.domain.rules import ProgramRules
from tests.support.servers import PrivateCluster

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def purchase(n: int, customer: str) -> dict[str, Any]:
    return {
        "event_id": f"p-{n}",
        "type": "purchase",
        "customer_id": customer,
        "occurred_at": (START + timedelta(minutes=n)).isoformat(),
        "schema_version": 1,
        "receipt_id": f"r-{n}",
        "amount": {"value": "10.00", "currency": "EUR"},
    }


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PrivateCluster]:
    cluster = PrivateCluster(Path("/tmp") / f"loyalty-pg-{os.getpid()}-{time.monotonic_ns()}")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def projected_position(url: str) -> int:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            row = conn.execute("SELECT position FROM proj_tracking").fetchone()
    except psycopg.Error:
        return -1
    return int(row[0]) if row else -1


def record(ledger: Ledger, documents: list[dict[str, Any]]) -> None:
    """The writer tries again too (its pool's connections died with the server)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            ledger.record_batch(documents)
            return
        except TRANSIENT_ERRORS:
            assert time.monotonic() < deadline, "the store did not come back"
            time.sleep(0.2)


def wait_for_projection(url: str, position: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 90
    while projected_position(url) < position:
        assert process.poll() is None, f"loyalty project exited:\n{process.communicate()[0]}"
        assert time.monotonic() < deadline, f"projected {projected_position(url)} of {position}"
        time.sleep(0.2)


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_project_survives_an_immediate_postgres_restart_and_catches_up(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    url = cluster.url
    ledger = Ledger(env=StoreURL.parse(url).eventsourcing_env(), rules=ProgramRules())
    env = {
        **os.environ,
        "LOYALTY_PROJECT_METRICS_PORT": "0",
        "LOYALTY_STORE": url,
        "LOYALTY_VAR_DIR": str(tmp_path / "var"),
        "LOYALTY_API_KEYS": "admin:admin-come-back-key-000",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "project"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        record(ledger, [purchase(n, f"c{n % 7}") for n in range(50)])
        wait_for_projection(url, ledger.position(), process)

        cluster.restart_immediately()
        record(ledger, [purchase(n, f"c{n % 7}") for n in range(50, 120)])
        wait_for_projection(url, ledger.position(), process)
        assert process.poll() is None, "loyalty project is still running"
    finally:
        process.terminate()
        output = process.communicate(timeout=60)[0]
        ledger.close()
    assert "trying again" in output, output[-2000:]


def test_the_sweep_finishes_while_the_intake_keeps_winning_races(sqlite_url: str) -> None:
    ledger = Ledger(env=StoreURL.parse(sqlite_url).eventsourcing_env(), rules=ProgramRules())
    customers = [f"c{n}" for n in range(40)]
    ledger.record_batch([purchase(n, c) for n, c in enumerate(customers)])
    # A hot customer: every chunk that holds c7 loses its race five times over (more
    # than one unit of work's retries), as if the intake saved c7 each time first.
    losses = {"left": 5}
    tick_chunk = ledger._tick_chunk

    def racing(now: datetime, ids: list[str], rules: ProgramRules) -> Any:
        if "c7" in ids and losses["left"] > 0:
            losses["left"] -= 1
            raise IntegrityError("a concurrent writer saved c7 first (simulated)")
        return tick_chunk(now, ids, rules)

    ledger._tick_chunk = racing  # type: ignore[method-assign]
    try:
        result = ledger.tick(START + timedelta(days=30), customers, chunk=16)
    finally:
        ledger.close()
    matured = sorted(e["customer_id"] for e in result.recorded if e.get("action") == "matured")
    assert losses["left"] == 0
    assert matured == sorted(customers), "every due lot matured, the hot account's too"


@pytest.mark.postgres
def test_the_customers_keys_are_read_and_made_again_once_postgres_is_back(
    cluster: PrivateCluster,
) -> None:
    """A batch that seals a personal field fetches the customers' keys first: an immediate
    PostgreSQL restart under `loyalty consume` stopped it with exit 1 (the fault soak found
    it). The keyring tries again until the server answers, as the event store's writes do."""
    from services.infrastructure.keys import SqlKeyring
    from services.infrastructure.sql import Database
    from services.infrastructure.store import StoreURL

    keyring = SqlKeyring(Database(StoreURL.parse(cluster.url), pool_size=2))
    keyring.create()
    first = keyring.keys_for_writing(["anna"])
    cluster.restart_immediately()  # the pooled connection is dead now
    again = keyring.keys_for_writing(["anna", "ben"])
    assert again["anna"] == first["anna"] and again["ben"] is not None
    keyring.erase("ben")
    assert keyring.keys_for_reading(["ben"]) == {"ben": None}


def pool_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if "pool" in t.name.lower()}


@pytest.fixture
def meets_a_dead_connection(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Start-up's last step meets a connection that PostgreSQL's restart killed (what the
    fault soak's `pg_ctl restart -m immediate` did to `loyalty consume`, exit 1), as many
    times as `faults["left"]` says; the steps before it have opened their pools."""
    from services.projections.tables import ProjectionTables

    create = ProjectionTables.create
    faults = {"left": 1}

    def create_or_fail(self: ProjectionTables) -> None:
        if faults["left"]:
            faults["left"] -= 1
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        create(self)

    monkeypatch.setattr(ProjectionTables, "create", create_or_fail)
    return faults


@pytest.mark.postgres
def test_start_up_waits_for_a_store_that_restarts_and_leaves_nothing_open_behind(
    postgres_url: str, tmp_path: Path, meets_a_dead_connection: dict[str, int], caplog: Any
) -> None:
    """`serve`, `consume` and `project` start with `build_patiently`: a transient error
    builds again (the failed attempt's pools closed) until the store answers."""
    from services.bootstrap import build_patiently
    from services.settings import Settings

    before = pool_threads()
    # No keys configured: the first start makes them, and shows them once, after the
    # attempt that works (a second attempt must not make others that nobody sees).
    settings = Settings(store=postgres_url, var_dir=tmp_path / "var")
    with caplog.at_level(logging.WARNING, logger="loyalty"):
        container = build_patiently(settings)
    try:
        assert meets_a_dead_connection["left"] == 0
        assert "the store does not answer yet" in caplog.text
        assert set(container.created_keys) >= {"admin"}
        key = container.created_keys["admin"]
        principal = container.api_keys.authenticate(key)
        assert principal is not None and principal.role == "admin"
        record(container.ledger, [purchase(n, "anna") for n in range(3)])
        account = container.ledger.find_account("anna")
        assert account is not None and account.version > 0
    finally:
        container.close()
    time.sleep(0.5)  # a closed pool's workers finish their last task
    assert pool_threads() <= before, "no pool of the failed attempt is left running"


@pytest.mark.postgres
def test_a_store_that_does_not_come_back_ends_start_up_with_one_line_and_exit_1(
    postgres_url: str,
    tmp_path: Path,
    meets_a_dead_connection: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from services.cli import app

    meets_a_dead_connection["left"] = 1_000
    monkeypatch.setenv("LOYALTY_STORE", postgres_url)
    monkeypatch.setenv("LOYALTY_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("LOYALTY_API_KEYS", "admin:admin-come-back-key-000")
    monkeypatch.setenv("LOYALTY_STARTUP_PATIENCE_SECONDS", "1")
    result = CliRunner().invoke(app, ["project", "--metrics-port", "0"])
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("loyalty: the store did not answer within 1 s"), result.output
    assert "server closed the connection unexpectedly" in last
    assert "Traceback" not in result.output


@pytest.mark.postgres
def test_a_write_the_server_ended_for_idling_in_its_transaction_is_tried_again(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server ends a transaction idle past `idle_in_transaction_session_timeout` (the
    library sets it, 5 s): a consumer frozen 20 s between its insert and its commit on an
    overloaded host (the 1,000,000-event fault soak) got an InternalError and exited 1.
    Nothing of that transaction is kept, so the write is tried again and stored once."""
    from services.ledger.adapters.eventstore.postgres import BinaryBatchPostgresRecorder

    env = {
        **StoreURL.parse(postgres_url).eventsourcing_env(),
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "1",
    }
    ledger = Ledger(env=env, rules=ProgramRules())
    insert = BinaryBatchPostgresRecorder._insert_stored_events
    stalls = {"left": 1}

    def stalled(self: Any, curs: Any, stored: Any, **kwargs: Any) -> None:
        insert(self, curs, stored, **kwargs)
        if stalls["left"]:
            stalls["left"] -= 1
            time.sleep(2.5)  # inside the transaction, the table locked, idle

    monkeypatch.setattr(BinaryBatchPostgresRecorder, "_insert_stored_events", stalled)
    try:
        outcomes = ledger.record_batch([purchase(n, "anna") for n in range(3)])
        assert stalls["left"] == 0
        assert [o.status for o in outcomes] == ["accepted"] * 3
        account = ledger.find_account("anna")
        assert account is not None and len(account.purchases) == 3
        assert ledger.record_batch([purchase(0, "anna")])[0].status == "duplicate"
    finally:
        ledger.close()
