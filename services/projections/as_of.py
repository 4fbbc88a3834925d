"""Answers as of a time or a position (SPEC §5, §6): the events folded again by the same
`Projector` the live projections run, up to the point asked, never the tables.

As of a time, an account event counts when it took effect by then (`moment_of`: its
`occurred_at`, or `granted_at`, or `decided_at`); the program's rules as recorded by
then. As of a position, everything stored up to it.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from eventsourcing.persistence import ApplicationRecorder

from services.infrastructure.store import originator_events
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.clock import iso
from services.ledger.domain.errors import UnknownCustomer
from services.ledger.domain.program import Program
from services.ledger.domain.rules import ProgramRules
from services.projections.persistence import PROGRAM_NAME
from services.projections.projector import Projector
from services.projections.runner import ProjectionRunner
from services.projections.source import LogReader
from services.projections.views import answers
from services.projections.views.common import (
    ACCOUNT_KINDS,
    ACCOUNT_TOPICS,
    OPENED,
    customer_deltas,
    moment_of,
    parse,
)
from services.projections.views.customer import CustomerView
from services.projections.views.program import ProgramView

Answer = dict[str, Any]


@dataclass
class Folded:
    """One customer's view and the moment and rules to evaluate it with."""

    view: CustomerView
    at: datetime | None
    rules: ProgramRules
    position: int


def fold_customer(
    recorder: ApplicationRecorder,
    runner: ProjectionRunner,
    customer_id: str,
    as_of: datetime | None,
    as_of_position: int | None,
) -> Folded:
    """The customer's view from their events up to the point asked, and the moment and
    rules to evaluate it with."""
    store_position = runner.store_position()
    up_to = store_position if as_of_position is None else min(as_of_position, store_position)
    cut = iso(as_of) if as_of is not None else None
    events = originator_events(recorder, CustomerAccount.create_id(customer_id), up_to)
    program_events = originator_events(recorder, Program.create_id(PROGRAM_NAME), up_to)
    # only the views: the answers below scan their facts at the moment asked, so the
    # running sums (a re-sum on every purchase folded out of time order) are not kept
    projector = Projector(track=False, messages=False)
    program_id = str(Program.create_id(PROGRAM_NAME))
    # Rule changes carry only the ledger clock: as of a time, the rules recorded by then
    # (the program's first rules at least).
    for position, topic, state in program_events:
        if cut is None or _recorded_at(state) <= cut or position == program_events[0][0]:
            projector.apply(position, program_id, topic, state)
    originator = str(CustomerAccount.create_id(customer_id))
    included = 0
    granted_later: list[str] = []
    for position, topic, state in events:
        if cut is not None and topic != OPENED:
            kind = ACCOUNT_KINDS[topic]
            data = orjson.loads(state)
            moment = moment_of(kind, data)
            if moment is not None and moment > cut:
                if kind == "GoodwillGranted" and data["occurred_at"] <= cut:
                    granted_later.append(data["occurred_at"])
                continue
        projector.apply(position, originator, topic, state)
        if topic != OPENED:
            included += 1
    view = projector.customers.get(originator)
    if view is not None:
        # The trust-tester rule counts a grant at its occurred_at (the write side's
        # `is_trust_tester`): a grant approved after `as_of` counts for the flag as of
        # then, though its points are not available yet.
        for occurred in granted_later:
            view.grants.append(occurred)
            insort(view.grant_times, parse(occurred))
    if view is None or (cut is not None and not included):
        when = f"as of {cut}" if cut else f"as of position {up_to}"
        raise UnknownCustomer(f"the ledger had not seen customer {customer_id!r} {when}")
    at = as_of if as_of is not None else answers.clock_of(view)
    return Folded(view, at, projector.program.rules, up_to)


def liability_as_of(recorder: ApplicationRecorder, as_of: datetime, page: int = 5000) -> Answer:
    """Every account event that took effect by `as_of`, folded (SPEC §5 as-of)."""
    cut = iso(as_of)
    program = ProgramView()
    reader = LogReader(recorder, list(ACCOUNT_TOPICS))
    stop = reader.max_position()
    after = 0
    while after < stop:
        until = min(stop, after + page)
        for _, _, topic, state in reader.page(after, until):
            kind = ACCOUNT_KINDS[topic]
            data = orjson.loads(state)
            moment = moment_of(kind, data)
            if moment is None or moment <= cut:
                program.apply_account(kind, data, *customer_deltas(data))
        after = until
    return {**program.liability_answer(), "position": stop}


def _recorded_at(state: bytes) -> str:
    return str(orjson.loads(state)["timestamp"]["_data_"])
