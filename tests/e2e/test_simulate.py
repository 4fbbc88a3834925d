"""`loyalty simulate` against a real `loyalty serve` (embedded store, projections in the
API's process): the README's newcomer path, then a read of one customer's standing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from services.cli import app as cli
from tests.support.servers import start_serve, stop_serve

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"pos": "pos-simulate-key-0000", "admin": "admin-simulate-key-00"}


@pytest.fixture
def service(sqlite_url: str, tmp_path: Path) -> Iterator[str]:
    process, url = start_serve(sqlite_url, tmp_path / "var", KEYS.items())
    try:
        yield url
    finally:
        stop_serve(process)


def test_simulate_posts_traffic_and_reports_the_projection_lag(service: str) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--url",
            service,
            "--api-key",
            KEYS["pos"],
            "--admin-key",
            KEYS["admin"],
            "--customers",
            "25",
            "--events",
            "400",
            "--batch-size",
            "100",
            "--start",
            "2026-01-01T00:00:00",
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    accepted = int(re.search(r"accepted\s+│\s+([\d,]+)", result.output)[1].replace(",", ""))  # type: ignore[index]
    assert accepted > 300
    last = int(re.search(r"last position: (\d+)", result.output)[1])  # type: ignore[index]
    assert "projections:" in result.output and "caught up" in result.output

    # The README's next step: one customer's balance, tier and trust, fresh to the end.
    admin = {"Authorization": f"Bearer {KEYS['admin']}"}
    history = httpx.get(f"{service}/v1/audit/events", params={"limit": 50}, headers=admin)
    customer = next(e["customer_id"] for e in history.json()["items"] if e["customer_id"])
    for view in ("balance", "tier", "trust"):
        answer = httpx.get(
            f"{service}/v1/customers/{customer}/{view}",
            params={"min_position": last},
            headers=admin,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["position"] >= last


def test_a_second_run_with_the_same_seed_sends_the_same_traffic(service: str) -> None:
    def run() -> dict[str, int]:
        args = ["simulate", "--url", service, "--api-key", KEYS["pos"]]
        args += ["--customers", "10", "--events", "150", "--batch-size", "50"]
        result = CliRunner().invoke(cli, args, env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        found = re.findall(r"^│ (\S[^│]*?)\s+│\s+([\d,]+) │", result.output, re.MULTILINE)
        return {name: int(count.replace(",", "")) for name, count in found}

    first, second = run(), run()  # no --start: the default must not move with the clock
    assert first["accepted"] > 100
    assert second["accepted"] == 0
    assert second["duplicate"] == first["accepted"] + first["duplicate"]
    assert "rejected: event-id-conflict" not in second
