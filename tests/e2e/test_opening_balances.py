"""Opening balances (SPEC §9): `loyalty import balances FILE.jsonl` and
`POST /v1/admin/opening-balances:batch`, idempotent by import_id; the lots keep their
original dates and expire on them; a line already past its expiry is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from services.api import create_app
from services.bootstrap import build
from services.http.auth import ApiKeys
from services.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"admin": "admin-key-openings-0000", "service": "service-key-openings-00"}
ADMIN = {"Authorization": f"Bearer {KEYS['admin']}"}
NOW = datetime.now(UTC).replace(microsecond=0)


def line(import_id: str, customer: str, points: int, earned: int, expires: int) -> dict[str, Any]:
    """earned and expires in days from now."""
    return {
        "import_id": import_id,
        "customer_id": customer,
        "points": points,
        "earned_at": (NOW + timedelta(days=earned)).isoformat(),
        "expires_at": (NOW + timedelta(days=expires)).isoformat(),
    }


LINES = [
    line("old-1", "anna", 700, -300, 65),
    line("old-2", "bruno", 50, -200, 10),
    line("old-3", "carla", 90, -400, -5),  # expired in the old programme
]


def loyalty(store: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LOYALTY_STORE": store,
        "LOYALTY_VAR_DIR": str(tmp_path / "var"),
        "LOYALTY_API_KEYS": ",".join(f"{r}:{k}" for r, k in KEYS.items()),
    }
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_imports_once_and_refuses_an_expired_line(sqlite_url: str, tmp_path: Path) -> None:
    file = tmp_path / "balances.jsonl"
    file.write_bytes(b"\n".join(orjson.dumps(x) for x in LINES) + b"\n")
    first = loyalty(sqlite_url, tmp_path, "import", "balances", str(file))
    assert first.returncode == 1, first.stderr
    assert "imported 2 opening balances, 0 already imported, 1 refused" in first.stderr
    assert "old-3: opening-balance-expired" in first.stderr
    again = loyalty(sqlite_url, tmp_path, "import", "balances", str(file))
    assert "imported 0 opening balances, 2 already imported, 1 refused" in again.stderr
    container = build(Settings(store=sqlite_url, var_dir=tmp_path / "var2"))
    try:
        anna = container.ledger.account("anna")
        lot = anna.lots["import/old-1"]
        assert (anna.available, lot.earned_at, lot.expires_at) == (
            700,
            NOW - timedelta(days=300),
            NOW + timedelta(days=65),
        )
        assert container.ledger.find_account("carla") is None
        swept = container.tick(NOW + timedelta(days=11))
        assert [(r["customer_id"], r["action"]) for r in swept.recorded] == [("bruno", "expired")]
    finally:
        container.close()


def test_a_bad_line_imports_nothing_and_exits_2(sqlite_url: str, tmp_path: Path) -> None:
    file = tmp_path / "balances.jsonl"
    bad = {**LINES[0], "points": "700"}
    file.write_bytes(orjson.dumps(LINES[1]) + b"\n" + orjson.dumps(bad) + b"\n")
    answer = loyalty(sqlite_url, tmp_path, "import", "balances", str(file))
    assert answer.returncode == 2
    assert answer.stderr.strip().startswith("loyalty: ") and ":2: points" in answer.stderr


@pytest.fixture
def client(store_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(store=store_url, var_dir=tmp_path / "var", projections_in_process=True)
    container = build(
        settings, api_keys=ApiKeys.parse(",".join(f"{r}:{k}" for r, k in KEYS.items()))
    )
    try:
        with TestClient(create_app(container)) as found:
            yield found
    finally:
        container.close()


def test_the_batch_endpoint_is_idempotent_by_import_id(client: TestClient) -> None:
    url = "/v1/admin/opening-balances:batch"
    answer = client.post(url, json={"balances": LINES}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [(r["event_id"], r["status"]) for r in results] == [
        ("old-1", "accepted"),
        ("old-2", "accepted"),
        ("old-3", "rejected"),
    ]
    assert results[2]["problem"]["type"].endswith("/opening-balance-expired")
    again = client.post(url, json={"balances": LINES[:1]}, headers=ADMIN).json()["results"]
    assert again[0]["status"] == "duplicate"
    changed = {**LINES[0], "points": 701}
    other = client.post(url, json={"balances": [changed]}, headers=ADMIN).json()["results"]
    assert other[0]["problem"]["type"].endswith("/event-id-conflict")
    service = {"Authorization": f"Bearer {KEYS['service']}"}
    assert client.post(url, json={"balances": LINES}, headers=service).status_code == 403
    balance = client.get(
        "/v1/customers/anna/balance",
        params={"min_position": results[1]["position"]},
        headers=service,
    ).json()
    assert balance["available"] == 700
    assert balance["lots"][0]["lot_id"] == "import/old-1"
    timeline = client.get("/v1/customers/anna/timeline", headers=service).json()
    assert "opening balance old-1: 700 points" in timeline["items"][-1]["effect"]["summary"]
    invalid = client.post(url, json={"balances": [{**LINES[0], "points": 0}]}, headers=ADMIN)
    assert invalid.status_code == 422
