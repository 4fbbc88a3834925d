"""The sweeper's loop: it reports every sweep, and a failed sweep is tried again soon."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from services import sweeper as sweeping
from services.sweeper import Sweeper


@dataclass
class FlakyStore:
    """Fails its first `failures` sweeps (the store restarting), then records one event."""

    failures: int
    calls: list[datetime] = field(default_factory=list)

    def __post_init__(self) -> None:
        # A day between sweeps: only the retry can bring a second sweep within the test.
        self.ledger = SimpleNamespace(rules=SimpleNamespace(sweep_interval_seconds=86_400))

    def tick(self, now: datetime, *, effects: bool = True) -> Any:
        self.calls.append(now)
        if len(self.calls) <= self.failures:
            raise ConnectionError("the store is restarting")
        return SimpleNamespace(recorded=[], total=1)


def test_a_failed_sweep_is_tried_again_soon_and_each_sweep_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sweeping, "RETRY_SECONDS", 0.01)
    reports: list[int | None] = []
    succeeded = threading.Event()

    def on_sweep(recorded: int | None) -> None:
        reports.append(recorded)
        if recorded is not None:
            succeeded.set()

    store = FlakyStore(failures=2)
    sweeper = Sweeper(store, clock=lambda: datetime(2026, 3, 1, tzinfo=UTC), on_sweep=on_sweep)
    sweeper.start()
    try:
        assert succeeded.wait(timeout=30), reports
    finally:
        sweeper.stop()
    assert reports[:3] == [None, None, 1]
    assert isinstance(sweeper.last_error, ConnectionError)
    assert sweeper.sweeps == 1  # the failed ones are not counted as sweeps


def test_a_sweep_that_works_waits_a_whole_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweeping, "RETRY_SECONDS", 0.01)
    reported = threading.Event()
    store = FlakyStore(failures=0)
    sweeper = Sweeper(store, on_sweep=lambda recorded: reported.set())
    sweeper.start()
    try:
        assert reported.wait(timeout=30)
        threading.Event().wait(0.2)  # twenty retry periods: no second sweep comes
    finally:
        sweeper.stop()
    assert len(store.calls) == 1


def test_the_background_sweep_keeps_counts_not_an_effect_for_each_lot() -> None:
    """A sweep over a million customers held an effect for every lot it recorded (the
    memory of `project` grew with them); the background sweep keeps the counts only, and
    records exactly what a sweep that keeps its effects records."""
    from datetime import timedelta

    from services.ledger.application.ledger import Ledger
    from services.ledger.domain.clock import iso

    bought = datetime(2026, 3, 1, tzinfo=UTC)
    customers = [f"c{n}" for n in range(7)]
    ledgers = [Ledger(), Ledger()]
    for ledger in ledgers:
        ledger.record_batch(
            [
                {
                    "event_id": f"p-{customer}",
                    "type": "purchase",
                    "customer_id": customer,
                    "occurred_at": iso(bought),
                    "schema_version": 1,
                    "receipt_id": f"r-{customer}",
                    "amount": {"value": "20.00", "currency": "EUR"},
                }
                for customer in customers
            ]
        )
    later = bought + timedelta(days=30)
    counted = ledgers[0].tick(later, customers, chunk=3, effects=False)
    kept = ledgers[1].tick(later, customers, chunk=3)
    assert counted.recorded == [] and counted.counts == {"matured": len(customers)}
    assert kept.counts == counted.counts and len(kept.recorded) == counted.total
    first, second = (ledger.find_account("c0") for ledger in ledgers)
    assert first is not None and second is not None and first.lots == second.lots
    assert ledgers[0].tick(later, customers, effects=False).total == 0  # idempotent
