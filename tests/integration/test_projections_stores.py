"""The projections on real stores (SQLite file and PostgreSQL), one story for both:
catch-up, rebuild from zero to the same rows, exactly once across a crash and with two
runners at once, and the change feed's outbox written with the update."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

import services.projections.runner as runner_module
from services.infrastructure.sql import Database
from services.infrastructure.store import StoreURL
from services.ledger.application.ledger import Ledger
from services.ledger.domain.rules import ProgramRules
from services.projections.parallel import rebuild_in_parallel
from services.projections.runner import TOPICS, ProjectionRunner
from services.projections.tables import ProjectionTables
from services.resources import schema_dir
from services.tools.simulation import generate_events

START = datetime(2025, 2, 3, 8, 0, tzinfo=UTC)
SCHEMAS = schema_dir() / "projections"


class Store:
    def __init__(self, url: str) -> None:
        self.store = StoreURL.parse(url)
        self.ledger = Ledger(env=self.store.eventsourcing_env(), rules=ProgramRules())
        self.db = Database(self.store)

    def tables(self, prefix: str = "proj_") -> ProjectionTables:
        tables = ProjectionTables(self.db, prefix)
        tables.create()
        return tables

    def runner(self, tables: ProjectionTables, **options: Any) -> ProjectionRunner:
        return ProjectionRunner(self.ledger.recorder, tables, **options)

    def record(self, events: int, seed: int = 3, customers: int = 40) -> None:
        """Simulated POS traffic in batches, with a sweep after each (maturities, expiries)."""
        docs = list(generate_events(seed, customers, events, START))
        for start in range(0, len(docs), 100):
            batch = docs[start : start + 100]
            self.ledger.record_batch(batch)
            moment = datetime.fromisoformat(batch[-1]["occurred_at"])
            self.ledger.tick(moment, sorted({d["customer_id"] for d in docs[: start + 100]}))

    def close(self) -> None:
        self.db.close()
        self.ledger.close()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    found = Store(store_url)
    yield found
    found.close()


def view_rows(tables: ProjectionTables) -> dict[str, list[tuple[Any, ...]]]:
    return {key: tables.rows(key) for key in tables.compared()}


def test_catch_up_reaches_the_store_and_rebuilding_from_zero_gives_the_same_rows(
    store: Store,
) -> None:
    store.record(600)
    tables = store.tables()
    runner = store.runner(tables, page_size=97, commit_every=250)
    assert runner.catch_up() == store.ledger.position() == tables.read_position()
    live = view_rows(tables)
    assert len(live["customers"]) > 20 and len(live["timeline"]) > 400
    # Drop everything and start again: the same rows.
    tables.drop()
    tables.create()
    assert store.runner(tables, page_size=1000, commit_every=5000).catch_up() == runner.position()
    assert view_rows(tables) == live
    # A rebuild into other tables, as the audit replay runs it: the same rows again.
    result = runner.rebuild("replay_", page_size=333)
    assert (result.position, result.events) == (store.ledger.position(), store.ledger.position())
    assert 0 < result.folded < result.events
    assert view_rows(ProjectionTables(store.db, "replay_")) == live
    if store.db.dialect == "postgres":
        # Folded by account in two processes (what a big rebuild does): the same rows,
        # the same number of events folded.
        split = runner.rebuild("split_", page_size=333, workers=2)
        assert (split.position, split.folded) == (result.position, result.folded)
        assert view_rows(ProjectionTables(store.db, "split_")) == live


@pytest.mark.postgres
def test_a_failing_rebuild_worker_fails_the_rebuild(postgres_url: str) -> None:
    store = Store(postgres_url)
    try:
        store.record(200, seed=3)
        # Tables that were never created: each worker fails at its first write.
        missing = ProjectionTables(store.db, "missing_")
        with pytest.raises(RuntimeError, match=r"rebuild worker .*UndefinedTable"):
            rebuild_in_parallel(missing, TOPICS, store.ledger.position(), 2, page_size=100)
        assert not missing.exists()
    finally:
        store.close()


@pytest.mark.postgres
def test_live_tables_leave_room_to_update_rows_in_place_and_a_rebuild_packs_them(
    postgres_url: str,
) -> None:
    store = Store(postgres_url)
    try:
        store.tables()
        rebuilt = ProjectionTables(store.db, "packed_")
        rebuilt.create(indexes=False)
        with store.db.reading() as cur:
            options = dict(
                cur.execute(
                    "SELECT relname, array_to_string(reloptions, ',') FROM pg_class "
                    "WHERE relname IN ('proj_balance', 'proj_tier', 'proj_timeline', "
                    "'packed_balance')"
                ).fetchall()
            )
        assert options["proj_balance"] == options["proj_tier"] == "fillfactor=75"
        assert options["proj_timeline"] is None  # appended to, never rewritten
        assert options["packed_balance"] is None
    finally:
        store.close()


def test_the_balance_rows_agree_with_the_accounts(store: Store) -> None:
    store.record(300, seed=8)
    tables = store.tables()
    store.runner(tables).catch_up()
    for customer_id, available, pending, debt, *_ in tables.rows("balance"):
        account = store.ledger.find_account(customer_id)
        assert account is not None
        assert (available, pending, debt) == (account.available, account.pending, account.debt)


def test_a_crash_before_the_commit_leaves_nothing_and_the_next_run_counts_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.record(400, seed=5)
    reference = store.tables("ref_")
    store.runner(reference).catch_up()
    tables = store.tables()
    first = store.runner(tables, page_size=50, commit_every=150)
    first.run_once()
    committed = tables.read_position()
    before = {key: tables.count(key) for key in ("timeline", "outbox", "nps_responses")}

    real_move = runner_module._move_position

    def crash(*args: Any, **kwargs: Any) -> None:
        real_move(*args, **kwargs)  # every row and the position written ... then it dies
        raise RuntimeError("power cut")

    monkeypatch.setattr(runner_module, "_move_position", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        first.run_once()
    assert tables.read_position() == committed
    assert {key: tables.count(key) for key in before} == before
    monkeypatch.setattr(runner_module, "_move_position", real_move)
    # The same runner (its cache dropped) and a new one both carry on exactly once.
    first.run_once()
    assert store.runner(tables, page_size=64).catch_up() == store.ledger.position()
    assert view_rows(tables) == view_rows(reference)
    assert outbox_messages(tables) == outbox_messages(reference)


def test_two_runners_at_once_project_every_event_exactly_once(store: Store) -> None:
    store.record(500, seed=11)
    reference = store.tables("ref_")
    store.runner(reference).catch_up()
    tables = store.tables()
    runners = [store.runner(tables, page_size=40, commit_every=80) for _ in range(2)]
    errors: list[BaseException] = []

    def run(runner: ProjectionRunner) -> None:
        try:
            runner.catch_up()
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(r,)) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert tables.read_position() == store.ledger.position()
    assert view_rows(tables) == view_rows(reference)
    assert outbox_messages(tables) == outbox_messages(reference)


def outbox_messages(tables: ProjectionTables) -> list[tuple[Any, ...]]:
    """(message_id, customer_id, kind, payload, position) in id order (no clock, no id)."""
    return [row[1:6] for row in tables.rows("outbox")]


def test_the_outbox_is_written_with_the_update_in_position_order(store: Store) -> None:
    store.record(300, seed=13)
    tables = store.tables()
    runner = store.runner(tables, page_size=60, commit_every=60)
    runner.run_once()
    partial = tables.rows("outbox")
    assert partial and max(row[5] for row in partial) <= tables.read_position()
    runner.catch_up()
    rows = tables.rows("outbox")
    assert rows[: len(partial)] == partial  # appended, never rewritten
    positions = [row[5] for row in rows]
    assert positions == sorted(positions)
    assert len({row[1] for row in rows}) == len(rows)
    schemas = {p.name.split(".")[0]: json.loads(p.read_text()) for p in SCHEMAS.glob("*.json")}
    assert set(schemas) == {
        "BalanceChanged",
        "TierChanged",
        "SegmentChanged",
        "TrustStatusChanged",
        "CustomerErased",  # SPEC §11: tests/integration/test_erasure.py writes one
    }
    for _, message_id, customer_id, kind, payload, position, created_at, published in rows:
        document = json.loads(payload)
        jsonschema.validate(document, schemas[kind], format_checker=jsonschema.FormatChecker())
        assert document["message_id"] == message_id == f"{kind}:{customer_id}:{position}"
        assert created_at and published is None
    # The last balance message of each customer is the balance row.
    last: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row[3] == "BalanceChanged":
            last[row[2]] = json.loads(row[4])
    for customer_id, available, pending, debt, _, earned, redeemed, expired, held in tables.rows(
        "balance"
    ):
        if customer_id in last:
            message = last[customer_id]
            assert (available, pending, debt, earned, redeemed, expired, held) == (
                message["available"],
                message["pending"],
                message["debt"],
                message["lifetime_earned"],
                message["redeemed"],
                message["expired"],
                message["held"],
            )


def test_due_customers_are_those_with_lots_to_mature_or_expire(store: Store) -> None:
    docs = [
        {
            "event_id": f"due-{n}",
            "type": "purchase",
            "customer_id": customer,
            "occurred_at": when,
            "schema_version": 1,
            "receipt_id": f"r-{n}",
            "amount": {"value": "20.00", "currency": "EUR"},
        }
        for n, (customer, when) in enumerate(
            [("early", "2025-01-01T10:00:00+00:00"), ("late", "2025-03-01T10:00:00+00:00")]
        )
    ]
    store.ledger.record_batch(docs)
    tables = store.tables()
    runner = store.runner(tables)
    runner.catch_up()
    from services.projections.queries import ProjectionQueries

    queries = ProjectionQueries(store.ledger.recorder, tables, runner)
    assert queries.due_customers(datetime(2025, 1, 14, tzinfo=UTC)) == []
    assert queries.due_customers(datetime(2025, 1, 16, tzinfo=UTC)) == ["early"]
    store.ledger.tick(datetime(2025, 1, 16, tzinfo=UTC), ["early", "late"])
    runner.catch_up()
    assert queries.due_customers(datetime(2025, 3, 20, tzinfo=UTC)) == ["late"]
    # The matured lot is available until it expires, 12 months after the purchase.
    assert queries.due_customers(datetime(2026, 1, 2, tzinfo=UTC)) == ["early", "late"]
