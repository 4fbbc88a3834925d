"""Replay with a diff (SPEC §5): every projection rebuilt from position 0 into fresh tables
and compared with the live ones, row by row, at one position."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.audit.replay import replay
from services.bootstrap import Container
from services.cli import app as cli
from services.infrastructure.store import StoreURL, open_recorder
from tests.integration.audit_support import (
    HistoryMaker,
    make_container,
    raw_events,
    record_history,
)


@pytest.fixture
def projected(store_url: str, tmp_path: Path) -> Iterator[tuple[str, Container]]:
    container = make_container(store_url, tmp_path, with_projections=True)
    record_history(container, 90, expire=True)
    container.projections.runner.catch_up()
    yield store_url, container
    container.close()


def run_replay(url: str, **kwargs: object):  # type: ignore[no-untyped-def]
    recorder, factory = open_recorder(StoreURL.parse(url))
    try:
        return replay(recorder, StoreURL.parse(url), **kwargs)  # type: ignore[arg-type]
    finally:
        factory.close()


def test_a_healthy_ledger_replays_without_differences(projected: tuple[str, Container]) -> None:
    url, container = projected
    report = run_replay(url)
    assert report.ok, report.differences[:5]
    assert report.position == container.ledger.position()
    assert report.folded < report.events  # intake records are skipped, not folded


def test_a_corrupted_balance_is_named_by_the_replay(projected: tuple[str, Container]) -> None:
    url, _ = projected
    with raw_events(url) as (conn, _, _):
        customer, available = conn.execute(
            "SELECT customer_id, available FROM proj_balance ORDER BY customer_id LIMIT 1"
        ).fetchone()
        conn.execute(
            "UPDATE proj_balance SET available = available + 7 WHERE customer_id = ?",
            (customer,),
        )
    report = run_replay(url)
    assert not report.ok
    assert [(d.table, d.key, d.column, d.live, d.replayed) for d in report.differences] == [
        ("balance", {"customer_id": customer}, "available", available + 7, available)
    ]


def test_a_deleted_projection_row_is_named(projected: tuple[str, Container]) -> None:
    url, _ = projected
    with raw_events(url) as (conn, _, _):
        (customer,) = conn.execute(
            "SELECT customer_id FROM proj_tier ORDER BY customer_id DESC LIMIT 1"
        ).fetchone()
        conn.execute("DELETE FROM proj_tier WHERE customer_id = ?", (customer,))
    report = run_replay(url)
    assert [(d.table, d.key, d.column, d.live) for d in report.differences] == [
        ("tier", {"customer_id": customer}, "*", "<no row>")
    ]


def test_replay_first_catches_the_live_projection_up(projected: tuple[str, Container]) -> None:
    url, container = projected
    container.ledger.record_batch(HistoryMaker(seed=23).batch(10))  # not projected yet
    assert container.projections.runner.position() < container.ledger.position()
    report = run_replay(url)
    assert report.ok
    assert report.position == container.ledger.position()


def test_the_cli_prints_the_differences_and_exits_non_zero(
    projected: tuple[str, Container], tmp_path: Path
) -> None:
    url, _ = projected
    env = {"LOYALTY_STORE": url, "LOYALTY_VAR_DIR": str(tmp_path / "var"), "COLUMNS": "200"}
    healthy = CliRunner().invoke(cli, ["audit", "replay"], env=env)
    assert healthy.exit_code == 0, healthy.output
    assert "no differences" in healthy.output
    with raw_events(url) as (conn, _, _):
        (customer,) = conn.execute(
            "SELECT customer_id FROM proj_balance ORDER BY customer_id LIMIT 1"
        ).fetchone()
        conn.execute("UPDATE proj_balance SET pending = 123456 WHERE customer_id = ?", (customer,))
    broken = CliRunner().invoke(cli, ["audit", "replay"], env=env)
    assert broken.exit_code == 1
    assert "1 differences" in broken.output
    assert "123456" in broken.output and customer in broken.output
