"""A cancelled redemption whose lot expired in between gives the points back as expired,
not as available (SPEC §8 "Money"); points of a lot still live come back available. The
read side agrees, and a version-1 cancellation (stored before) reads back unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.infrastructure.sql import Database
from services.infrastructure.store import StoreURL
from services.ledger.application.ledger import Ledger
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.clock import iso
from services.ledger.domain.lots import AVAILABLE, EXPIRED, REDEEMED
from services.projections.runner import ProjectionRunner
from services.projections.tables import ProjectionTables


def doc(kind: str, event_id: str, when: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": kind,
        "customer_id": "ana",
        "occurred_at": iso(when),
        "schema_version": 1,
        **fields,
    }


def purchase(event_id: str, when: datetime, value: str) -> dict[str, Any]:
    return doc(
        "purchase", event_id, when, receipt_id=event_id, amount={"value": value, "currency": "EUR"}
    )


def test_points_of_an_expired_lot_come_back_expired_and_of_a_live_lot_available(
    tmp_path: Path,
) -> None:
    store = StoreURL.parse(f"sqlite:///{tmp_path / 'ledger.db'}")
    app = Ledger(env=store.eventsourcing_env())
    app.record(purchase("old", datetime(2025, 1, 1, tzinfo=UTC), "100.00"))
    app.record(purchase("new", datetime(2025, 9, 1, tzinfo=UTC), "50.00"))
    app.tick(datetime(2025, 9, 20, tzinfo=UTC), ["ana"])  # both matured
    redeemed = app.record(
        doc("redemption", "spend", datetime(2025, 10, 1, tzinfo=UTC), points=120, reward_id="x")
    )
    assert redeemed.effect["allocation"] == [["old", 100], ["new", 20]]
    app.tick(datetime(2026, 1, 2, tzinfo=UTC), ["ana"])  # "old" expires (nothing left in it)

    cancel = app.record(
        doc(
            "redemption_cancel",
            "undo",
            datetime(2026, 2, 1, tzinfo=UTC),
            original_event_id="spend",
        )
    )
    assert cancel.status == "accepted", cancel.error
    assert cancel.effect["expired"] == 100
    account = app.account("ana")
    assert account.available == 50  # the live lot's 20 back, beside its 30
    old, new = account.lots["old"], account.lots["new"]
    assert (old.remaining, old.expired, old.used) == (0, 100, 0)
    assert (new.remaining, new.used) == (50, 0)
    stored = [
        e
        for e in app.repository.event_store.get(account.id)
        if isinstance(e, CustomerAccount.RedemptionCancelled)
    ]
    assert stored[0].expired == [["old", 100]]
    assert sorted(map(tuple, stored[0].postings)) == sorted(
        [(REDEEMED, -20), (AVAILABLE, 20), (REDEEMED, -100), (EXPIRED, 100)]
    )
    # Nothing for the sweep to do afterwards: the expired lot holds no available points.
    assert app.tick(datetime(2026, 3, 1, tzinfo=UTC), ["ana"]).recorded == []

    # The read side: the same lots and balance.
    db = Database(store)
    try:
        tables = ProjectionTables(db)
        tables.create()
        ProjectionRunner(app.recorder, tables).catch_up()
        ((_, available, pending, debt, _, _, redeemed, expired, *_held),) = tables.rows("balance")
        assert (available, pending, debt, redeemed, expired) == (50, 0, 0, 0, 100)
        lots = {row[1]: (row[8], row[7]) for row in tables.rows("lots")}  # remaining, expired
        assert lots == {"old": (0, 100), "new": (50, 0)}
    finally:
        db.close()
        app.close()


def test_a_version_1_cancellation_reads_back_with_nothing_expired() -> None:
    state: dict[str, Any] = {"points": 5, "allocation": [["a", 5]]}
    CustomerAccount.RedemptionCancelled.upcast_v1_v2(state)
    assert state["expired"] == []
