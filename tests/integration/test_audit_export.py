"""Export as JSON Lines and import into an empty ledger (SPEC §5): byte-exact, at the same
positions, on the other kind of store, with the same hash chain."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from services.api import create_app
from services.audit.export import export_lines
from services.audit.importer import ImportRefused, import_file
from services.audit.stored import iter_rows
from services.audit.verify import verify
from services.audit.wiring import Audit, attach
from services.cli import app as cli
from services.infrastructure.store import StoreURL, open_recorder
from tests.integration.audit_support import (
    auth,
    make_container,
    raw_events,
    record_history,
)

OTHER = [("sqlite", "postgres"), ("postgres", "sqlite")]


def stored_rows(url: str) -> list[tuple[int, str, int, str, bytes]]:
    audit = Audit.open(StoreURL.parse(url))
    try:
        return [
            (r.position, str(r.originator_id), r.originator_version, r.topic, r.state)
            for r in iter_rows(audit.recorder)
        ]
    finally:
        audit.close()


def chain_of(url: str) -> list[tuple[int, str]]:
    audit = Audit.open(StoreURL.parse(url))
    try:
        audit.follower.catch_up()
        assert verify(audit.recorder, audit.chain).ok
        return [(link.position, link.link) for link in audit.chain.iter_links(upto=10**12)]
    finally:
        audit.close()


def projection_rows(url: str, var_dir: Path) -> dict[str, list[tuple[object, ...]]]:
    container = make_container(url, var_dir, with_projections=True)
    try:
        projections = container.projections
        projections.runner.catch_up()
        tables = projections.tables
        return {key: tables.rows(key) for key in tables.compared()}
    finally:
        container.close()


def cli_env(url: str, tmp_path: Path) -> dict[str, str]:
    return {"LOYALTY_STORE": url, "LOYALTY_VAR_DIR": str(tmp_path / "var")}


@pytest.mark.postgres
@pytest.mark.parametrize(("source", "target"), OTHER)
def test_export_then_import_on_the_other_store_is_identical(
    request: pytest.FixtureRequest, tmp_path: Path, source: str, target: str
) -> None:
    source_url = request.getfixturevalue(f"{source}_url")
    target_url = request.getfixturevalue(f"{target}_url")
    container = make_container(source_url, tmp_path / "a")
    record_history(container, 120, expire=True)
    attach(container).follower.catch_up()
    container.close()

    runner = CliRunner()
    exported = tmp_path / "history.jsonl"
    result = runner.invoke(
        cli, ["audit", "export", "--output", str(exported)], env=cli_env(source_url, tmp_path)
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        cli, ["audit", "import", str(exported)], env=cli_env(target_url, tmp_path)
    )
    assert result.exit_code == 0, result.output
    assert "matches" in result.output

    assert stored_rows(target_url) == stored_rows(source_url)
    assert chain_of(target_url) == chain_of(source_url)
    source_projections = projection_rows(source_url, tmp_path / "a")
    assert source_projections["balance"] and source_projections["timeline"]
    assert projection_rows(target_url, tmp_path / "b") == source_projections
    # The imported ledger works: the application starts on it and records more.
    imported = make_container(target_url, tmp_path / "b")
    try:
        before = imported.ledger.position()
        record_history(imported, 5, seed=5)
        assert imported.ledger.position() > before
    finally:
        imported.close()


@pytest.mark.postgres
def test_import_refuses_a_ledger_that_is_not_empty(
    sqlite_url: str, postgres_url: str, tmp_path: Path
) -> None:
    source = make_container(sqlite_url, tmp_path / "a")
    record_history(source, 10)
    exported = tmp_path / "history.jsonl"
    exported.write_bytes(b"".join(export_lines(source.ledger.recorder, None)))
    source.close()
    target = make_container(postgres_url, tmp_path / "b")  # writes the program's first event
    target.close()
    recorder, factory = open_recorder(StoreURL.parse(postgres_url))
    try:
        with pytest.raises(ImportRefused, match="not empty"):
            import_file(recorder, exported)
    finally:
        factory.close()


@pytest.mark.postgres
def test_import_refuses_an_altered_file_before_writing_anything(
    sqlite_url: str, postgres_url: str, tmp_path: Path
) -> None:
    source = make_container(sqlite_url, tmp_path / "a")
    record_history(source, 30)
    attach(source).follower.catch_up()
    lines = list(export_lines(source.ledger.recorder, source.audit.chain))  # type: ignore[attr-defined]
    source.close()
    victim = next(i for i, line in enumerate(lines) if b"PurchaseRecorded" in line)
    doc = orjson.loads(lines[victim])
    doc["state"] = doc["state"].replace('"points":', '"points":1')
    lines[victim] = orjson.dumps(doc) + b"\n"
    altered = tmp_path / "altered.jsonl"
    altered.write_bytes(b"".join(lines))
    recorder, factory = open_recorder(StoreURL.parse(postgres_url))
    try:
        with pytest.raises(ImportRefused, match=f"position {doc['position']}: the hash chain"):
            import_file(recorder, altered)
        assert not recorder.max_notification_id()
    finally:
        factory.close()


@pytest.mark.postgres
def test_import_refuses_a_partial_history(
    sqlite_url: str, postgres_url: str, tmp_path: Path
) -> None:
    source = make_container(sqlite_url, tmp_path / "a")
    record_history(source, 30)
    partial = tmp_path / "partial.jsonl"
    partial.write_bytes(b"".join(export_lines(source.ledger.recorder, None, from_position=10)))
    source.close()
    recorder, factory = open_recorder(StoreURL.parse(postgres_url))
    try:
        with pytest.raises(ImportRefused, match="every event of each aggregate"):
            import_file(recorder, partial)
    finally:
        factory.close()


@pytest.mark.postgres
def test_positions_with_gaps_survive_the_round_trip(
    postgres_url: str, sqlite_url: str, tmp_path: Path
) -> None:
    """PostgreSQL burns sequence numbers on rolled-back saves; the import keeps the gaps."""
    source = make_container(postgres_url, tmp_path / "a")
    maker_seed = 3
    record_history(source, 10, seed=maker_seed)
    with raw_events(postgres_url) as (conn, table, _):
        conn.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', 'notification_id'))")
        conn.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', 'notification_id'))")
    record_history(source, 10, seed=maker_seed + 1)
    attach(source).follower.catch_up()
    exported = tmp_path / "history.jsonl"
    exported.write_bytes(b"".join(export_lines(source.ledger.recorder, source.audit.chain)))  # type: ignore[attr-defined]
    source.close()
    positions = [orjson.loads(line)["position"] for line in exported.read_bytes().splitlines()]
    assert positions != list(range(1, len(positions) + 1))  # there is a gap

    recorder, factory = open_recorder(StoreURL.parse(sqlite_url))
    try:
        import_file(recorder, exported)
    finally:
        factory.close()
    assert stored_rows(sqlite_url) == stored_rows(postgres_url)
    assert chain_of(sqlite_url) == chain_of(postgres_url)


def test_export_over_http_streams_the_same_lines(store_url: str, tmp_path: Path) -> None:
    container = make_container(store_url, tmp_path)
    record_history(container, 30)
    audit = attach(container)
    audit.follower.catch_up()
    expected = b"".join(export_lines(audit.recorder, audit.chain, from_position=5, to_position=40))
    with TestClient(create_app(container)) as client:
        answer = client.get(
            "/v1/audit/export",
            params={"from_position": 5, "to_position": 40},
            headers=auth("auditor"),
        )
        assert client.get("/v1/audit/export", headers=auth("pos")).status_code == 403
    container.close()
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    assert answer.content == expected
    lines = [orjson.loads(line) for line in answer.content.splitlines()]
    assert [line["position"] for line in lines] == list(range(5, 41))
    assert all(line["link"] for line in lines)
