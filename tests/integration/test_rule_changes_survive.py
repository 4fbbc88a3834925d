"""Rule changes made through the API survive restarts, and a replay of a ledger whose rules
changed finds no differences (SPEC §8 "The rule file and the API")."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from services.audit.diff import table_differences
from services.audit.replay import replay
from services.bootstrap import build
from services.infrastructure.store import StoreURL, open_recorder
from services.ledger.domain.rules import DEFAULT_PROGRAM_FILE, ProgramRules
from tests.integration.audit_support import HistoryMaker, make_container, settings_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _record(container, maker: HistoryMaker, events: int) -> None:  # type: ignore[no-untyped-def]
    target = maker.n + events
    while maker.n < target:
        container.ledger.record_batch(maker.batch(min(7, target - maker.n)))
        container.tick(maker.now)


def test_a_restart_keeps_the_admins_rules_and_the_replay_agrees(
    sqlite_url: str, tmp_path: Path
) -> None:
    maker = HistoryMaker(seed=11)
    container = make_container(sqlite_url, tmp_path, with_projections=True)
    _record(container, maker, 40)
    changed = replace(container.ledger.rules, earn_rate=Decimal("2"))
    container.ledger.change_rules(changed, changed_by="admin-1", reason="double points")
    _record(container, maker, 40)
    container.projections.runner.catch_up()
    container.close()

    container = make_container(sqlite_url, tmp_path, with_projections=True)  # a restart
    try:
        assert container.ledger.rules.earn_rate == Decimal("2")
        assert container.ledger.rules.version == 2
        _record(container, maker, 40)
        container.projections.runner.catch_up()
    finally:
        container.close()

    recorder, factory = open_recorder(StoreURL.parse(sqlite_url))
    try:
        report = replay(recorder, StoreURL.parse(sqlite_url))
    finally:
        factory.close()
    assert report.ok, report.differences[:5]


def test_a_difference_in_the_customers_table_names_the_customer() -> None:
    live = iter([("b3064871-8987-5e61-9584-ce7c50b0c436", "cust-3", 1, 9, None, 2)])
    replayed = iter([("b3064871-8987-5e61-9584-ce7c50b0c436", "cust-3", 1, 9, None, 3)])
    (found,) = table_differences("customers", live, replayed)
    assert found.key == {
        "customer_id": "cust-3",
        "originator_id": "b3064871-8987-5e61-9584-ce7c50b0c436",
    }
    assert (found.column, found.live, found.replayed) == ("rules_version", 2, 3)


def test_only_a_changed_program_file_records_a_new_version(sqlite_url: str, tmp_path: Path) -> None:
    program = tmp_path / "program.toml"
    program.write_text(DEFAULT_PROGRAM_FILE.read_text())
    settings = settings_for(sqlite_url, tmp_path).model_copy(update={"program": program})

    def restart() -> ProgramRules:
        container = build(settings, with_projections=False)
        try:
            return container.ledger.rules
        finally:
            container.close()

    container = build(settings, with_projections=False)
    container.ledger.change_rules(
        replace(container.ledger.rules, review_reward_points=80),
        changed_by="admin-1",
        reason="reviews matter",
    )
    container.close()
    assert (restart().version, restart().review_reward_points) == (2, 80)

    program.write_text(program.read_text().replace("reward_points = 50 ", "reward_points = 60 "))
    after = restart()
    assert (after.version, after.review_reward_points) == (3, 60)
    assert (restart().version, restart().review_reward_points) == (3, 60)
