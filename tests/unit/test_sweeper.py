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

    def tick(self, now: datetime) -> Any:
        self.calls.append(now)
        if len(self.calls) <= self.failures:
            raise ConnectionError("the store is restarting")
        return SimpleNamespace(recorded=[{"action": "matured"}])


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
