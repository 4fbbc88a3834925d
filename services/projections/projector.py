"""The one fold of the read side: stored events in position order into the views.

The live runner, the as-of reads and a full replay all use `Projector` (pure, no I/O):
- `apply(position, originator_id, topic, state)` takes a stored event as the store holds
  it (topic and JSON state bytes) and decodes it with orjson; no library mapper.
- With `track=True` it also re-evaluates the watched standings after each event and
  collects what the tables need beyond the views: timeline rows, NPS responses and (with
  `messages=True`) the change feed's messages, in position order. `take()` hands them
  over and starts afresh. An as-of read folds with `track=False`: only the views.

The account events do not carry the customer id: a view is created by the account's
`Opened` event (always its first), and later events find it by originator id. Views not
in `customers` must be put there before their events are applied (the runner loads them
from the tables).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from services.projections.messages import Message, message
from services.projections.views.common import (
    ACCOUNT_KINDS,
    PROGRAM_KINDS,
    PROGRAM_TOPICS,
    Data,
)
from services.projections.views.customer import CustomerView
from services.projections.views.effects import event_id_of
from services.projections.views.program import ProgramView
from services.projections.views.watch import Watch


class UnknownAccount(LookupError):
    """An account event whose account the projection never saw opened: a broken history
    or a view that was not loaded. The fold stops rather than skip it."""


@dataclass
class Output:
    """What one batch adds beyond the views, in position order."""

    timeline: list[tuple[Any, ...]] = field(default_factory=list)
    responses: list[tuple[Any, ...]] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    touched: dict[str, CustomerView] = field(default_factory=dict)


class Projector:
    def __init__(
        self, program: ProgramView | None = None, *, track: bool = True, messages: bool = True
    ) -> None:
        self.program = program or ProgramView()
        self.customers: dict[str, CustomerView] = {}
        self.track = track
        self.messages = messages
        self.output = Output()
        self.position = 0

    def apply(self, position: int, originator_id: str, topic: str, state: bytes) -> None:
        """One stored event; `originator_id` as canonical UUID text."""
        data: Data = orjson.loads(state)
        self.position = position
        kind = ACCOUNT_KINDS.get(topic)
        if kind is None:
            if topic in PROGRAM_TOPICS:
                self.program.apply_program(PROGRAM_KINDS[topic], data)
            elif topic not in PROGRAM_KINDS:  # a rule-change request or decision: no rules
                raise KeyError(f"no projection folds {topic!r}")
            return
        if kind == "Opened":
            watch = Watch() if self.messages else None
            view = CustomerView(data["customer_id"], originator_id, position, watch)
            self.customers[originator_id] = view
        else:
            found = self.customers.get(originator_id)
            if found is None:
                raise UnknownAccount(f"account {originator_id} at position {position}")
            view = found
        program = self.program
        rules = program.rules
        if not self.track:
            view.apply(position, kind, data, rules)
            program.apply_account(kind, data, view.d_available, view.d_pending, view.d_debt)
            return
        view.apply(position, kind, data, rules)
        moves = (view.d_available, view.d_pending, view.d_debt)
        program.apply_account(kind, data, *moves)
        out = self.output
        out.touched[originator_id] = view
        recorded_at = data["timestamp"]["_data_"]
        if kind != "Opened":
            # The effect's details are the event's own fields, read with it (`effects`).
            out.timeline.append(
                (
                    view.customer_id,
                    position,
                    kind,
                    event_id_of(data),
                    view.moment,
                    recorded_at,
                    *moves,
                    view.d_trust,
                    view.d_held,
                )
            )
            if kind == "ReviewRecorded":
                out.responses.append(
                    (
                        position,
                        view.customer_id,
                        data["event_id"],
                        data.get("store_id") or "",
                        data["touchpoint"],
                        data["rating"],
                        data["occurred_at"],
                    )
                )
        watch = view.watch
        if watch is None:
            return
        changes = watch.refresh(view, kind, data, rules)
        if data.get("postings"):
            changes.insert(0, ("BalanceChanged", None))
        if kind == "CustomerErased":
            changes.append(("CustomerErased", None))
        for change in changes:
            out.messages.append(message(change, view, position, kind, data, recorded_at, rules))

    def take(self) -> Output:
        out, self.output = self.output, Output()
        return out
