"""Positions that cannot move (issue: reliability, must-show 5).

Every answer names a store position, the hash chain links them and exports carry them.
On SQLite they were the implicit rowid of a table without an INTEGER PRIMARY KEY, which
SQLite documents that `VACUUM` may change, and which a backup as SQL text (`.dump`) does
not carry at all (the test below shows that on the library's own table shape). The
embedded store now declares its positions; an old store is migrated once (`loyalty store
migrate`), each row at its position, and the audit still verifies.
"""

from __future__ import annotations

import gzip
import shutil
import sqlite3
from pathlib import Path

from services.audit.verify import verify
from services.infrastructure.store import StoreURL, open_recorder
from services.ledger.adapters.eventstore.sqlite import has_stable_positions, migrate_positions
from services.ledger.application.ledger import Ledger
from services.ledger.domain.rules import ProgramRules

GOLDEN = Path(__file__).parents[1] / "golden" / "history.sqlite.gz"

OLD_SHAPE = (
    "CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, "
    "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
)


def positions(path: Path) -> list[tuple[int, str, int]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT rowid, originator_id, originator_version FROM stored_events ORDER BY rowid"
        ).fetchall()


def vacuum_after_a_gap(path: Path) -> None:
    """What an operator might do: remove a row (here: by hand) and VACUUM."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DELETE FROM stored_events WHERE rowid = 2")
    db.execute("VACUUM")
    db.close()


def dumped_and_restored(path: Path, into: Path) -> Path:
    """A backup as SQL text (`sqlite3 .dump`) and its restore into a new file."""
    with sqlite3.connect(path) as source:
        script = "\n".join(source.iterdump())
    with sqlite3.connect(into) as target:
        target.executescript(script)
    return into


def test_the_old_table_shape_loses_its_positions_in_a_dump_and_restore(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(OLD_SHAPE)
        db.executemany(
            "INSERT INTO stored_events VALUES (?, 1, 't', x'00')", [(f"o{n}",) for n in range(5)]
        )
        db.execute("DELETE FROM stored_events WHERE rowid = 2")
    restored = dumped_and_restored(path, tmp_path / "restored.db")
    assert [p for p, *_ in positions(restored)] == [1, 2, 3, 4], "renumbered: the reason for this"


def test_a_new_embedded_store_keeps_its_positions_through_vacuum(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = Ledger(
        env=StoreURL.parse(f"sqlite:///{path}").eventsourcing_env(), rules=ProgramRules()
    )
    for n in range(5):
        ledger.record_batch([{
            "event_id": f"p-{n}", "type": "purchase", "customer_id": f"c{n}",
            "occurred_at": "2026-03-01T10:00:00+00:00", "schema_version": 1,
            "receipt_id": f"r-{n}", "amount": {"value": "10.00", "currency": "EUR"},
        }])  # fmt: skip
    ledger.close()
    with sqlite3.connect(path) as db:
        assert has_stable_positions(db)
    before = positions(path)
    vacuum_after_a_gap(path)
    kept = [row for row in before if row[0] != 2]
    assert positions(path) == kept
    assert positions(dumped_and_restored(path, tmp_path / "restored.db")) == kept


def test_an_old_store_is_migrated_at_its_positions_and_still_verifies(tmp_path: Path) -> None:
    path = tmp_path / "golden.db"
    with gzip.open(GOLDEN) as packed, open(path, "wb") as db:
        shutil.copyfileobj(packed, db)
    with sqlite3.connect(path) as db:
        assert not has_stable_positions(db)
    before = positions(path)
    assert migrate_positions(str(path)) == len(before)
    assert migrate_positions(str(path)) == 0, "once"
    assert positions(path) == before
    with sqlite3.connect(path) as db:
        assert has_stable_positions(db)

    store = StoreURL.parse(f"sqlite:///{path}")
    recorder, factory = open_recorder(store)
    try:
        from services.audit.wiring import Audit
        from services.infrastructure.sql import Database

        audit = Audit.over(recorder, Database(store, pool_size=1), in_process=False)
        result = verify(recorder, audit.chain)
        assert result.ok and result.unchained == 0, result
        audit.close()
    finally:
        factory.close()
    vacuum_after_a_gap(path)
    assert positions(path) == [row for row in before if row[0] != 2]


def test_loyalty_store_migrate_migrates_once(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from services.cli import app

    path = tmp_path / "golden.db"
    with gzip.open(GOLDEN) as packed, open(path, "wb") as db:
        shutil.copyfileobj(packed, db)
    env = {"LOYALTY_STORE": f"sqlite:///{path}", "LOYALTY_VAR_DIR": str(tmp_path / "var")}
    first = CliRunner().invoke(app, ["store", "migrate"], env=env)
    assert first.exit_code == 0, first.output
    assert "8344 events now keep their positions" in first.output
    again = CliRunner().invoke(app, ["store", "migrate"], env=env)
    assert "nothing to do" in again.output
