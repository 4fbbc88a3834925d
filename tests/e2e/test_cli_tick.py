"""`loyalty tick`: the sweep from the command line records what is due at the time it is given."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from services.cli import app as cli
from services.resources import schema_dir
from tests.integration.audit_support import make_container


def purchase() -> dict[str, object]:
    return orjson.loads((schema_dir() / "examples" / "purchase-with-items.json").read_bytes())


def test_tick_matures_what_is_due_at_the_given_time(sqlite_url: str, tmp_path: Path) -> None:
    container = make_container(sqlite_url, tmp_path / "var")
    try:
        container.ledger.record_batch([purchase()])
        stored = container.ledger.position()
    finally:
        container.close()
    env = {
        "LOYALTY_STORE": sqlite_url,
        "LOYALTY_VAR_DIR": str(tmp_path / "var"),
        "COLUMNS": "200",
    }

    early = CliRunner().invoke(cli, ["tick", "--now", "2026-03-02T00:00:00Z"], env=env)
    assert early.exit_code == 0, early.output
    assert "0 recorded" in early.output

    due = CliRunner().invoke(cli, ["tick", "--now", "2026-03-20T00:00:00+02:00"], env=env)
    assert due.exit_code == 0, due.output
    assert "1 recorded" in due.output and "cust-42" in due.output and "matured" in due.output

    container = make_container(sqlite_url, tmp_path / "var")
    try:
        assert container.ledger.position() == stored + 1
    finally:
        container.close()


def test_tick_refuses_a_time_without_an_offset(sqlite_url: str, tmp_path: Path) -> None:
    env = {
        "LOYALTY_STORE": sqlite_url,
        "LOYALTY_VAR_DIR": str(tmp_path / "var"),
        "COLUMNS": "200",
    }
    for text, why in (("2026-03-20T00:00:00", "has no offset"), ("next week", "not an ISO")):
        result = CliRunner().invoke(cli, ["tick", "--now", text], env=env)
        assert result.exit_code == 2, result.output
        assert why in result.output


def test_tick_refuses_a_time_ahead_of_the_ledger_clock_or_out_of_range(
    sqlite_url: str, tmp_path: Path
) -> None:
    env = {
        "LOYALTY_STORE": sqlite_url,
        "LOYALTY_VAR_DIR": str(tmp_path / "var"),
        "COLUMNS": "200",
    }
    for text, why in (
        ("9999-12-31T23:59:59Z", "between the years"),
        ("2999-01-01T00:00:00Z", "ledger clock"),
        ("0001-01-01T00:00:00+23:59", "between the years"),
    ):
        result = CliRunner().invoke(cli, ["tick", "--now", text], env=env)
        assert result.exit_code == 2, result.output
        assert why in result.output
