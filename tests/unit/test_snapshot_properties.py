"""An account rebuilt from a snapshot and the events after it is the account its events
build (issue 14 item 2): for random histories and a snapshot at any version."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.application import project_aggregate
from hypothesis import given
from hypothesis import strategies as st

from services.ledger.adapters.eventstore import snapshots
from services.ledger.domain.account import CustomerAccount
from tests.unit.test_ledger_properties import SETTINGS, HistoryRunner, fresh_ledger, histories


@SETTINGS
@given(history=histories, where=st.floats(min_value=0.0, max_value=1.0))
def test_an_account_from_a_snapshot_and_its_later_events_is_the_replayed_account(
    history: tuple[list[Any], int], where: float
) -> None:
    with fresh_ledger() as ledger:
        recorded = HistoryRunner(ledger, "h").run(history)
        store = ledger.repository.event_store
        for customer in sorted(recorded.customers):
            replayed = ledger.find_account(customer)
            if replayed is None:
                continue  # every event of this customer was refused
            account_id = CustomerAccount.create_id(customer)
            at = max(1, round(where * replayed.version))
            then = ledger.repository.get(account_id, version=at)
            restored = project_aggregate(
                snapshots.loads(snapshots.dumps(then)),
                store.get(originator_id=account_id, gt=at),
            )
            assert restored is not None
            assert restored.__dict__ == replayed.__dict__, customer


def test_snapshots_are_keyed_by_the_domain_code_that_took_them(tmp_path: Path) -> None:
    """Another handler (a changed line anywhere in the domain) is another key: its
    snapshots are not read, so none carries state that today's code would not build."""
    copy = tmp_path / "domain"
    shutil.copytree(snapshots._DOMAIN, copy)
    assert snapshots._code(copy) == snapshots.CODE
    handler = copy / "account" / "purchases.py"
    handler.write_text(handler.read_text() + "\n# a changed rule\n")
    assert snapshots._code(copy) != snapshots.CODE
    with pytest.raises(RuntimeError):
        snapshots._code(tmp_path / "nothing")
