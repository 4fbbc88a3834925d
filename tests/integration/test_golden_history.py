"""The golden history: a store written by the code of 2026-12-01 (`tests/golden/`), loaded
by today's code. It stays in the suite for good: a change that orphans stored history, or
changes what the read API says about it, fails here.

The store has every POS event type, the simulator's duplicates and refusals, daily sweeps
(maturities and expiries), goodwill decided by a second admin, adjustments (small, approved,
rejected) and a rule change. `answers.json` holds what the read API said at its last
position, with the clock pinned to the moment the history was closed.
"""

from __future__ import annotations

import gzip
import json
import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api import create_app
from services.audit.replay import replay
from services.bootstrap import Container, build
from services.http.auth import ApiKeys
from services.infrastructure.store import StoreURL, all_customer_ids, open_recorder
from services.ledger.adapters.eventstore import snapshots
from services.ledger.adapters.eventstore.snapshots import Snapshots
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.rules import ProgramRules
from services.settings import Settings

GOLDEN = Path(__file__).parents[1] / "golden"
ANSWERS: dict[str, Any] = json.loads((GOLDEN / "answers.json").read_text())
NOW = datetime.fromisoformat("2026-12-01T00:00:00+00:00")
KEYS = {"service": "service-key-golden-00", "auditor": "auditor-key-golden-00"}


# Fields the read API answers since the golden store was written, with what they must say
# about its history (which has none of what they count): an addition, never a change.
ADDED_SINCE: dict[str, dict[str, Any]] = {
    "balance": {"held": 0, "holds": []},  # SPEC §9 checkout holds
    "liability": {"held": 0, "donated_points_by_charity": {}},  # SPEC §9 holds, donations
}


def added_since(view: str, expected: dict[str, Any]) -> dict[str, Any]:
    """What the read API adds to an old answer: the constants above, and for a balance the
    lots' totals (SPEC §6 paging), which the old answer's full list of lots determines."""
    added = dict(ADDED_SINCE.get(view, {}))
    if view == "balance":
        lots = expected["lots"]
        assert len(lots) <= 100, "the old answer is one page at the default lots_limit"
        available = [lot for lot in lots if lot["status"] == "available"]
        soonest = min((lot["expires_at"] for lot in available), default=None)
        added |= {
            "lots_count": len(lots),
            "next_lots": None,
            "expiring_next": soonest
            and {
                "expires_at": soonest,
                "points": sum(
                    lot["remaining"] for lot in available if lot["expires_at"] == soonest
                ),
            },
        }
    return added


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}"}


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Container]]:
    """A copy of the golden store, served by today's code with the rules it last had."""
    work = tmp_path_factory.mktemp("golden")
    with gzip.open(GOLDEN / "history.sqlite.gz") as packed, open(work / "store.db", "wb") as db:
        shutil.copyfileobj(packed, db)
    url = f"sqlite:///{work / 'store.db'}"
    settings = Settings(
        store=url, var_dir=work / "var", projections_in_process=True, read_wait_seconds=30.0
    )
    container = build(
        settings,
        rules=ProgramRules.from_document(ANSWERS["rules"]["rules"]),
        api_keys=ApiKeys.parse(",".join(f"{role}:{key}" for role, key in KEYS.items())),
    )
    container.projections.queries.clock = lambda: NOW
    try:
        yield url, container
    finally:
        container.close()


@pytest.fixture(scope="module")
def client(golden: tuple[str, Container]) -> Iterator[TestClient]:
    with TestClient(create_app(golden[1])) as client:
        yield client


def test_the_golden_store_keeps_its_positions_and_rules(golden: tuple[str, Container]) -> None:
    _, container = golden
    assert container.ledger.position() == ANSWERS["position"]
    assert container.ledger.rules.version == ANSWERS["rules"]["version"]
    assert container.ledger.rules.to_document() == ANSWERS["rules"]["rules"]


@pytest.mark.parametrize("customer", sorted(ANSWERS["customers"]))
def test_every_customer_answer_is_what_the_old_code_said(client: TestClient, customer: str) -> None:
    for view, expected in ANSWERS["customers"][customer].items():
        answer = client.get(
            f"/v1/customers/{customer}/{view}",
            params={"min_position": ANSWERS["position"]},
            headers=auth("service"),
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {**expected, **added_since(view, expected)}, f"{customer} {view}"


@pytest.mark.parametrize("view", ["nps", "liability"])
def test_the_program_answers_are_what_the_old_code_said(client: TestClient, view: str) -> None:
    answer = client.get(
        f"/v1/programs/default/{view}",
        params={"min_position": ANSWERS["position"]},
        headers=auth("auditor"),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {**ANSWERS[view], **added_since(view, ANSWERS[view])}


def test_the_old_hash_chain_verifies(client: TestClient) -> None:
    deadline = time.monotonic() + 60
    while True:
        answer = client.post("/v1/audit/verify", headers=auth("auditor"))
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["ok"], result
        if result["unchained"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert result["unchained"] == 0
    assert result["head"]["position"] == ANSWERS["position"]
    # The links the old code wrote are kept: the head it saw is still on the chain.
    old_head = ANSWERS["verify"]["head"]
    anchored = client.post(
        "/v1/audit/verify",
        params={"anchor": f"{old_head['position']}:{old_head['link']}"},
        headers=auth("auditor"),
    )
    assert anchored.status_code == 200, anchored.text
    assert anchored.json()["ok"], anchored.json()


def test_a_replay_of_the_golden_history_finds_no_differences(
    golden: tuple[str, Container],
) -> None:
    url, container = golden
    container.projections.runner.catch_up()
    recorder, factory = open_recorder(StoreURL.parse(url))
    try:
        report = replay(recorder, StoreURL.parse(url))
    finally:
        factory.close()
    assert report.position == ANSWERS["position"]
    assert report.ok, report.differences[:10]


def test_golden_accounts_loaded_from_snapshots_are_their_replays(
    golden: tuple[str, Container],
) -> None:
    """Snapshots of accounts whose events were stored by the old code, at half their
    history: loading from them and the events after them gives the replayed accounts."""
    ledger = golden[1].ledger
    store = Snapshots.of(ledger.recorder)
    assert store is not None
    customers = all_customer_ids(ledger.recorder)
    replayed = {c: ledger.repository.get(CustomerAccount.create_id(c)) for c in customers}
    try:
        for account in replayed.values():
            at = max(1, account.version // 2)
            then = ledger.repository.get(account.id, version=at)
            store.put(account.id, at, snapshots.dumps(then))
        ledger._forget_cached_aggregates()
        loaded = ledger.load_accounts(customers)
        assert loaded.keys() == replayed.keys()
        for customer, account in replayed.items():
            found = loaded[customer]
            assert found is not None and found.__dict__ == account.__dict__, customer
    finally:
        with store.datastore.transaction(commit=True) as curs:
            curs.execute(f"DELETE FROM {snapshots.TABLE}")
        ledger._forget_cached_aggregates()
