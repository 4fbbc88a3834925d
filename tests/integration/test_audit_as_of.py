"""As of a position (SPEC §5): the answer rebuilt from the events up to position p equals
what the live projection answered when it stood at p, for every customer.

The history is recorded step by step; after each step the live projection catches up,
and every customer's live answers are kept with the position. Then each position is
asked again with `as_of_position`. The live answers evaluate time-dependent standings at
`max(now, the customer's clock)`: the queries here get a clock in the past, so both sides
evaluate at the customer's clock and the comparison is exact.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.bootstrap import Container
from services.ledger.domain.errors import UnknownCustomer
from services.projections.queries import ProjectionQueries
from tests.integration.audit_support import START, HistoryMaker, make_container

ANSWERS = ("balance", "tier", "segment", "trust", "ltv")
CUSTOMERS = ("ana", "ben", "cai")


def past() -> datetime:
    return datetime(2000, 1, 1, tzinfo=UTC)


def answers(queries: ProjectionQueries, customer: str, **read: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in ANSWERS:
        try:
            found[name] = getattr(queries, name)(customer, **read)
        except UnknownCustomer:
            found[name] = "unknown"
    return found


class Recorder:
    """Records steps one at a time and snapshots the live answers after each."""

    def __init__(self, container: Container, customers: list[str]) -> None:
        self.container = container
        self.customers = customers
        projections = container.projections
        self.runner = projections.runner
        self.queries = ProjectionQueries(
            container.ledger.recorder, projections.tables, self.runner, clock=past
        )
        self.snapshots: list[tuple[int, dict[str, dict[str, Any]]]] = []

    def step(self, doc: dict[str, Any] | None, tick: datetime | None = None) -> None:
        if doc is not None:
            self.container.ledger.record(doc)
        if tick is not None:
            self.container.tick(tick)
        self.runner.catch_up()
        position = self.runner.position()
        live = {c: answers(self.queries, c) for c in self.customers}
        self.snapshots.append((position, live))

    def check(self) -> None:
        assert self.snapshots
        for position, live in self.snapshots:
            for customer, expected in live.items():
                again = answers(self.queries, customer, as_of_position=position)
                assert again == expected, (position, customer)


# ---- random histories ---------------------------------------------------------------------------
@dataclass
class Step:
    kind: str
    customer: int
    hours: int
    number: int


steps = st.lists(
    st.builds(
        Step,
        kind=st.sampled_from(
            ["purchase"] * 4
            + ["refund", "redemption", "redemption_cancel", "review", "goodwill", "incident"]
            + ["tick"] * 2
        ),
        customer=st.integers(0, len(CUSTOMERS) - 1),
        hours=st.integers(0, 24 * 60),
        number=st.integers(1, 400),
    ),
    min_size=1,
    max_size=14,
)


def document(step: Step, n: int, now: datetime, seen: dict[str, list[str]]) -> dict[str, Any]:
    customer = CUSTOMERS[step.customer]
    doc: dict[str, Any] = {
        "event_id": f"e{n}",
        "type": step.kind,
        "customer_id": customer,
        "occurred_at": now.isoformat(),
        "store_id": "s1",
        "schema_version": 1,
    }
    earlier = seen.setdefault(f"{customer}:{step.kind}", [])
    if step.kind == "purchase":
        doc.update(receipt_id=f"r{n}", amount={"value": f"{step.number}.00", "currency": "EUR"})
    elif step.kind == "refund":
        bought = seen.get(f"{customer}:purchase") or ["none"]
        doc.update(
            original_event_id=bought[step.number % len(bought)],
            amount={"value": f"{step.number % 50 + 1}.00", "currency": "EUR"},
        )
    elif step.kind == "redemption":
        doc.update(points=step.number % 120 + 1, reward_id="gift")
    elif step.kind == "redemption_cancel":
        redeemed = seen.get(f"{customer}:redemption") or ["none"]
        doc.update(original_event_id=redeemed[step.number % len(redeemed)])
    elif step.kind == "review":
        doc.update(rating=step.number % 11, touchpoint="sales")
    elif step.kind == "goodwill":
        doc.update(points=step.number * 10, reason_code="late", issued_by="agent")
    else:
        doc.update(severity="minor", description="queue")
    earlier.append(doc["event_id"])
    return doc


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(history=steps)
def test_as_of_position_equals_the_live_answer_at_that_position(history: list[Step]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        container = make_container(f"sqlite:///{tmp}/ledger.db", Path(tmp), with_projections=True)
        try:
            recording = Recorder(container, list(CUSTOMERS))
            now, seen = START, {}
            for n, step in enumerate(history, start=1):
                now += timedelta(hours=step.hours)
                if step.kind == "tick":
                    recording.step(None, tick=now)
                else:
                    recording.step(document(step, n, now, seen))
            recording.check()
        finally:
            container.close()


# ---- a longer, realistic history on both stores ------------------------------------------------
@pytest.fixture
def container(store_url: str, tmp_path: Path) -> Iterator[Container]:
    built = make_container(store_url, tmp_path, with_projections=True)
    yield built
    built.close()


def test_as_of_position_holds_over_a_realistic_history(container: Container) -> None:
    maker = HistoryMaker(seed=31, customers=4)
    recording = Recorder(container, maker.customers)  # referees join the list on the way
    for number in range(50):
        recording.step(maker.event(), tick=maker.now if number % 5 == 4 else None)
    recording.check()
