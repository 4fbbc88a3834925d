"""The ledger's writes, shortened: `Application.save` without its per-event objects, and
an aggregate's creation event without the aggregate.

Both give exactly what the library's path gives (`tests/unit/test_eventstore_adapter.py`
compares the stored logs byte for byte); what they skip is work the ledger never uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, TypeVar, cast
from uuid import UUID

from eventsourcing.application import ProcessingEvent
from eventsourcing.domain import BaseAggregate, DomainEvent
from eventsourcing.persistence import ApplicationRecorder, Mapper
from eventsourcing.utils import get_topic

E = TypeVar("E", bound=DomainEvent)


class LedgerProcessingEvent(ProcessingEvent[UUID]):
    """The library's unit of work, told our aggregates and events apart by their class.
    The library asks `isinstance(obj, <runtime Protocol>)` of every saved object, which on
    Python 3.11 walks the protocol's members each time: 14 % of a Kafka poll's CPU
    (bench/kafka_ingest)."""

    def collect_events(self, *objs: Any, **kwargs: Any) -> None:
        for obj in objs:
            if isinstance(obj, BaseAggregate):
                self.events.extend(obj.collect_events())
                self.aggregates[obj.id] = obj
            elif isinstance(obj, DomainEvent):
                self.events.append(obj)
            else:
                super().collect_events(obj)
        self.saved_kwargs.update(kwargs)


def append(
    mapper: Mapper[UUID], recorder: ApplicationRecorder, objs: Sequence[Any]
) -> dict[UUID, int]:
    """Store the pending events of `objs` (aggregates or events) in one transaction, as
    `Application.save` would, and return the position of each originator's last event.
    Skipped: the `Recording` and `Notification` objects (only positions are wanted),
    snapshots and the library's aggregate cache (the caller has neither: `Ledger` refuses
    both), followers' notification (the ledger has none)."""
    processing_event = LedgerProcessingEvent()
    processing_event.collect_events(*objs)
    stored = list(map(mapper.to_stored_event, processing_event.events))
    ids = recorder.insert_events(stored) or ()
    originators = [cast(UUID, e.originator_id) for e in stored]  # the ledger's ids are UUIDs
    return dict(zip(originators, ids, strict=True))


def creation_event(
    aggregate_class: type[BaseAggregate[UUID]],
    event_class: type[E],
    originator_id: UUID,
    **fields: Any,
) -> E:
    """The event `aggregate_class`'s constructor would trigger with `event_class`, built
    directly (the library's construction machinery cost a tenth of a Kafka batch): the
    same originator topic, initial version and timestamp source. `repository.get` builds
    the aggregate from it as from any other."""
    # mypy sees the library's base class signature, not the dataclass's fields.
    return event_class(  # type: ignore[call-arg]
        originator_id=originator_id,
        originator_version=aggregate_class.INITIAL_VERSION,
        timestamp=event_class.create_timestamp(),
        originator_topic=_topic(aggregate_class),
        **fields,
    )


@lru_cache(maxsize=16)
def _topic(aggregate_class: type[BaseAggregate[UUID]]) -> str:
    return get_topic(aggregate_class)
