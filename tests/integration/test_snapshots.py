"""Account snapshots on both stores (issue 14 item 2): a long account is loaded from its
snapshot and the events after it, and is the account its events build; a snapshot that
is not one this code took, or that names anything but an account's types, is not used."""

from __future__ import annotations

import os
import pickle
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.infrastructure.store import StoreURL
from services.ledger.adapters.eventstore import snapshots
from services.ledger.adapters.eventstore.snapshots import TABLE, Snapshots
from services.ledger.application.erasure import approve_erasure, request_erasure
from services.ledger.application.ledger import Ledger
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.clock import iso, utcnow
from services.ledger.domain.rules import ProgramRules

START = utcnow() - timedelta(days=200)


def purchase(n: int, customer: str = "anna") -> dict[str, Any]:
    return {
        "event_id": f"{customer}-p-{n}",
        "type": "purchase",
        "customer_id": customer,
        "occurred_at": iso(START + timedelta(minutes=n)),
        "store_id": "s-1",
        "schema_version": 1,
        "receipt_id": f"{customer}-r-{n}",
        "amount": {"value": "12.50", "currency": "EUR"},
    }


def redemption(n: int, customer: str = "anna") -> dict[str, Any]:
    return {
        "event_id": f"{customer}-x-{n}",
        "type": "redemption",
        "customer_id": customer,
        "occurred_at": iso(START + timedelta(minutes=n, seconds=30)),
        "schema_version": 1,
        "points": 3,
        "reward_id": "coffee",
    }


def open_ledger(url: str) -> Ledger:
    return Ledger(env=StoreURL.parse(url).eventsourcing_env(), rules=ProgramRules())


def record_history(ledger: Ledger, events: int) -> None:
    """Purchases, their lots matured by a sweep, then redemptions of some of them."""
    purchases = [purchase(n) for n in range(events * 9 // 10)]
    for first in range(0, len(purchases), 500):
        ledger.record_batch(purchases[first : first + 500])
    ledger.tick(utcnow(), ["anna"])
    ledger.record_batch([redemption(n) for n in range(events // 10)])


def stored_snapshot(ledger: Ledger) -> tuple[int, bytes] | None:
    store = Snapshots.of(ledger.recorder)
    assert store is not None
    return store.latest([CustomerAccount.create_id("anna")]).get(CustomerAccount.create_id("anna"))


def test_a_long_account_loads_from_its_snapshot_as_its_events_build_it(store_url: str) -> None:
    writer = open_ledger(store_url)
    try:
        record_history(writer, 2600)
        taken = stored_snapshot(writer)
        assert taken is not None and taken[0] >= 2048
        writer.record_batch([purchase(n) for n in range(3000, 3050)])  # after the snapshot
    finally:
        writer.close()

    reader = open_ledger(store_url)  # a restart: nothing cached
    try:
        account_id = CustomerAccount.create_id("anna")
        loaded = reader.find_account("anna")
        replayed = reader.repository.get(account_id)
        assert loaded is not None and loaded.version == replayed.version > taken[0]
        assert loaded.__dict__ == replayed.__dict__
        # ... and it decides as the replayed one does.
        outcome = reader.record(redemption(5000))
        assert outcome.status == "accepted", outcome
        again = reader.find_account("anna")
        assert again is not None and again.available == replayed.available - 3
    finally:
        reader.close()


def test_a_snapshot_is_used_only_if_this_code_took_it_and_it_holds_an_account(
    store_url: str, tmp_path: Path
) -> None:
    ledger = open_ledger(store_url)
    try:
        record_history(ledger, 1100)
        account_id = CustomerAccount.create_id("anna")
        replayed = ledger.repository.get(account_id)
        store = Snapshots.of(ledger.recorder)
        assert store is not None and account_id in store.latest([account_id])

        # Taken by other code (another release): not read.
        with store.datastore.transaction(commit=True) as curs:
            curs.execute(f"UPDATE {TABLE} SET code = 'another release'")
        assert store.latest([account_id]) == {}

        # A row that would run a command when unpickled: refused, and the events are used.
        witness = tmp_path / "ran"

        class Attack:
            def __reduce__(self) -> tuple[Any, ...]:
                return (os.system, (f"touch {witness}",))

        store.put(account_id, replayed.version, pickle.dumps(Attack()))
        with pytest.raises(snapshots.NotAnAccount):
            snapshots.loads(pickle.dumps(Attack()))
        fresh = open_ledger(store_url)
        try:
            loaded = fresh.find_account("anna")
        finally:
            fresh.close()
        assert not witness.exists()
        assert loaded is not None and loaded.__dict__ == replayed.__dict__
    finally:
        ledger.close()


def test_an_older_snapshot_never_replaces_a_newer_one(store_url: str) -> None:
    ledger = open_ledger(store_url)
    try:
        record_history(ledger, 1100)
        account_id = CustomerAccount.create_id("anna")
        store = Snapshots.of(ledger.recorder)
        assert store is not None
        newer = store.latest([account_id])[account_id]
        store.put(account_id, newer[0] - 100, b"older")
        assert store.latest([account_id])[account_id] == newer
    finally:
        ledger.close()


def test_an_erasure_removes_the_accounts_snapshot(store_url: str) -> None:
    """A snapshot is a copy of the account's state (plaintext of events stored before
    encryption included): erasing the customer removes it with the key."""
    ledger = open_ledger(store_url)
    try:
        record_history(ledger, 1100)
        assert stored_snapshot(ledger) is not None
        now = utcnow()
        asked = request_erasure(
            ledger, "anna", requested_by="dpo", reason="art. 17 request #7", occurred_at=now
        )
        assert asked.status == "accepted", asked
        approved = approve_erasure(ledger, "anna", approved_by="second admin", decided_at=now)
        assert approved.status == "accepted", approved
        assert stored_snapshot(ledger) is None
    finally:
        ledger.close()


def test_a_batch_loads_its_uncached_accounts_as_each_loads_on_its_own(
    store_url: str,
) -> None:
    """One query for the snapshots, one for the events after them: the accounts are those
    the library's replay builds one by one (long ones from a snapshot, short ones, one
    whose snapshot is unreadable, and customers the store has never seen)."""
    writer = open_ledger(store_url)
    try:
        record_history(writer, 1100)  # anna: long, with a snapshot
        writer.record_batch([purchase(n, "bert") for n in range(1200)])  # bert: one too
        writer.record_batch([purchase(n, f"short-{k}") for k in range(30) for n in range(3)])
        writer.record_batch([purchase(n) for n in range(3000, 3020)])  # after anna's
        store = Snapshots.of(writer.recorder)
        assert store is not None
        bert = CustomerAccount.create_id("bert")
        assert bert in store.latest([bert])
        store.put(bert, store.latest([bert])[bert][0], b"not a pickle")
    finally:
        writer.close()

    customers = ["anna", "bert", "nobody", *(f"short-{k}" for k in range(30)), "no-one"]
    reader = open_ledger(store_url)  # a restart: nothing cached
    try:
        together = reader.load_accounts(customers)
        assert reader.find_account("nobody") is None
    finally:
        reader.close()
    one_by_one = open_ledger(store_url)
    try:
        for customer in customers:
            account_id = CustomerAccount.create_id(customer)
            if customer in ("nobody", "no-one"):
                assert together[customer] is None
                continue
            replayed = one_by_one.repository.get(account_id)
            loaded = together[customer]
            assert loaded is not None and loaded.__dict__ == replayed.__dict__, customer
    finally:
        one_by_one.close()
