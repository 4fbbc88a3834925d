"""`loyalty project`: the projections as a process of their own, stopped gracefully."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from services.infrastructure.sql import Database
from services.infrastructure.store import StoreURL
from services.ledger.application.ledger import Ledger
from services.ledger.domain.rules import ProgramRules
from services.projections.tables import ProjectionTables
from services.tools.simulation import generate_events

ROOT = Path(__file__).resolve().parents[2]


def test_project_follows_the_store_and_stops_on_sigterm(store_url: str, tmp_path: Path) -> None:
    store = StoreURL.parse(store_url)
    ledger = Ledger(env=store.eventsourcing_env(), rules=ProgramRules())
    db = Database(store)
    try:
        ledger.record_batch(list(generate_events(1, 20, 200, datetime(2025, 1, 1, tzinfo=UTC))))
        env = {
            **os.environ,
            "LOYALTY_STORE": store_url,
            "LOYALTY_VAR_DIR": str(tmp_path / "var"),
            "LOYALTY_API_KEYS": "admin:admin-key-project-0000",
            "LOYALTY_PROJECT_METRICS_PORT": "0",  # test_process_metrics scrapes it
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
            tables = ProjectionTables(db)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if tables.exists() and tables.read_position() == ledger.position():
                    break
                time.sleep(0.2)
            assert tables.read_position() == ledger.position()
            ledger.record_batch(list(generate_events(2, 5, 20, datetime(2025, 6, 1, tzinfo=UTC))))
            while time.monotonic() < deadline and tables.read_position() < ledger.position():
                time.sleep(0.1)
            assert tables.read_position() == ledger.position()
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output
        assert "SIGTERM" in output and f"stopped at position {ledger.position()}" in output
    finally:
        db.close()
        ledger.close()
