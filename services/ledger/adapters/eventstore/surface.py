"""Every name of the `eventsourcing` library the adapter relies on beyond its documented
use, as of the pinned version: the upgrade canary's record.

- `calls` / `overrides`: the signature must stay as recorded;
- `overrides` / `replicates`: also the body (a digest of its source), because our code
  stands in for it or repeats what it does: a changed body may be a fix we lack;
- `attribute`: an instance attribute we read or set, checked on a live object.

`check()` lists what changed, naming each name (`tests/unit/test_eventstore_surface.py`
fails on any). After an upgrade: re-read each named name against the code that uses it
(`where`), then `python -m services.ledger.adapters.eventstore.surface` prints the new
record to paste here.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from typing import Any, Literal

TESTED_VERSION = "9.5.6"

How = Literal["calls", "overrides", "replicates", "attribute"]


@dataclass(frozen=True)
class Use:
    name: str  # "module:Class.member"
    how: How
    where: str  # our module that relies on it
    signature: str = ""
    body: str = ""  # sha256 of the source, first 16 hex digits


SURFACE: tuple[Use, ...] = (
    # writes.py: Application.save, shortened
    Use("eventsourcing.application:Application.save", "replicates", "writes",
        "(self, *objs: 'MutableOrImmutableAggregate[TAggregateID] | DomainEventProtocol[TAggregateID] | None', **kwargs: 'Any') -> 'list[Recording[TAggregateID]]'",  # noqa: E501
        "4e9747d14b8fd046"),
    Use("eventsourcing.application:Application._record", "replicates", "writes",
        "(self, processing_event: 'ProcessingEvent[TAggregateID]') -> 'list[Recording[TAggregateID]]'",  # noqa: E501
        "104c6186b29d5059"),
    Use("eventsourcing.application:ProcessingEvent.__init__", "calls", "writes",
        "(self, tracking: 'Tracking | None' = None)"),
    Use("eventsourcing.application:ProcessingEvent.collect_events", "overrides", "writes",
        "(self, *objs: 'MutableOrImmutableAggregate[TAggregateID] | DomainEventProtocol[TAggregateID] | None', **kwargs: 'Any') -> 'None'",  # noqa: E501
        "7e3a7e6b1abd2bef"),
    Use("eventsourcing.application:ProcessingEvent#events", "attribute", "writes"),
    Use("eventsourcing.application:ProcessingEvent#aggregates", "attribute", "writes"),
    Use("eventsourcing.application:ProcessingEvent#saved_kwargs", "attribute", "writes"),
    Use("eventsourcing.persistence:Mapper.to_stored_event", "calls", "writes",
        "(self, domain_event: 'DomainEventProtocol[TAggregateID]') -> 'StoredEvent'"),
    Use("eventsourcing.persistence:ApplicationRecorder.insert_events", "calls", "writes",
        "(self, stored_events: 'Sequence[StoredEvent]', **kwargs: 'Any') -> 'Sequence[int] | None'"),  # noqa: E501
    # writes.py: an aggregate's creation event, hand-built
    Use("eventsourcing.domain:BaseAggregate._create", "replicates", "writes",
        "(event_class: 'type[CanInitAggregate[TAggregateID]]', *, id: 'TAggregateID | None' = None, **kwargs: 'Any') -> 'Self'",  # noqa: E501
        "18222c00033ba1d2"),
    Use("eventsourcing.domain:CanCreateTimestamp.create_timestamp", "calls", "writes",
        "() -> 'datetime'"),
    Use("eventsourcing.domain:BaseAggregate#INITIAL_VERSION", "attribute", "writes"),
    # transcoder.py: JSONTranscoder's bytes, by orjson
    Use("eventsourcing.persistence:JSONTranscoder.encode", "overrides", "transcoder",
        "(self, obj: 'Any') -> 'bytes'", "876597a47898bfd8"),
    Use("eventsourcing.persistence:JSONTranscoder._encode_obj", "calls", "transcoder",
        "(self, o: 'Any') -> 'dict[str, Any]'", "e7a92650c9f989f4"),
    Use("eventsourcing.persistence:JSONTranscoder.__init__", "replicates", "transcoder",
        "(self) -> 'None'", "fd17b3c098d3687c"),
    Use("eventsourcing.persistence:InfrastructureFactory.transcoder", "calls", "transcoder",
        "(self) -> 'Transcoder'", "9fef665a016b4ed5"),
    Use("eventsourcing.application:Application.construct_transcoder", "calls", "transcoder",
        "(self) -> 'Transcoder'", "b5f5118cde6fe016"),
    # sqlite.py: stable positions
    Use("eventsourcing.sqlite:SQLiteApplicationRecorder.__init__", "overrides", "sqlite",
        "(self, datastore: 'SQLiteDatastore', events_table_name: 'str' = 'stored_events')",
        "9eee5bfa89841931"),
    Use("eventsourcing.sqlite:SQLiteApplicationRecorder.construct_create_table_statements",
        "overrides", "sqlite", "(self) -> 'list[str]'", "0e52bba3d0092d39"),
    Use("eventsourcing.sqlite:SQLiteApplicationRecorder._insert_events", "calls", "sqlite",
        "(self, c: 'SQLiteCursor', stored_events: 'Sequence[StoredEvent]', **_: 'Any') -> 'Sequence[int] | None'",  # noqa: E501
        "413cdf219c7bae63"),
    Use("eventsourcing.sqlite:SQLiteApplicationRecorder#insert_events_statement", "attribute",
        "sqlite"),
    Use("eventsourcing.sqlite:SQLiteFactory.application_recorder", "calls", "sqlite",
        "(self) -> 'ApplicationRecorder'", "2ff89d365dc5ba79"),
    # snapshots.py: an account from its snapshot and the events after it
    Use("eventsourcing.application:Repository._reconstruct_aggregate", "replicates", "snapshots",
        "(self, aggregate_id: 'TAggregateID', version: 'int | None', projector_func: 'ProjectorFunction[TMutableOrImmutableAggregate, TDomainEvent]') -> 'TMutableOrImmutableAggregate'",  # noqa: E501
        "56d7c30cb77083be"),
    Use("eventsourcing.application:project_aggregate", "calls", "snapshots",
        "(aggregate: 'TMutableOrImmutableAggregate | None', domain_events: 'Iterable[DomainEventProtocol[Any]]') -> 'TMutableOrImmutableAggregate | None'"),  # noqa: E501
    Use("eventsourcing.application:Repository#event_store", "attribute", "snapshots"),
    # loads.py: many accounts, their snapshots and later events in two queries
    Use("eventsourcing.application:project_aggregate", "replicates", "loads",
        "(aggregate: 'TMutableOrImmutableAggregate | None', domain_events: 'Iterable[DomainEventProtocol[Any]]') -> 'TMutableOrImmutableAggregate | None'",  # noqa: E501
        "e2d05062a4fad31f"),
    Use("eventsourcing.persistence:Mapper.to_domain_event", "calls", "loads",
        "(self, stored_event: 'StoredEvent') -> 'DomainEventProtocol[TAggregateID]'"),
    Use("eventsourcing.popo:POPOApplicationRecorder.select_events", "calls", "loads",
        "(self, originator_id: 'UUID | str', *, gt: 'int | None' = None, lte: 'int | None' = None, desc: 'bool' = False, limit: 'int | None' = None) -> 'Sequence[StoredEvent]'"),  # noqa: E501
    Use("eventsourcing.persistence:EventStore#mapper", "attribute", "loads"),
    Use("eventsourcing.persistence:EventStore#recorder", "attribute", "loads"),
    # postgres.py: binary batches
    Use("eventsourcing.postgres:PostgresApplicationRecorder.__init__", "calls", "postgres",
        "(self, datastore: 'PostgresDatastore', *, events_table_name: 'str' = 'stored_events')"),
    Use("eventsourcing.postgres:PostgresApplicationRecorder.insert_events", "overrides",
        "postgres",
        "(self, stored_events: 'Sequence[StoredEvent]', **kwargs: 'Any') -> 'Sequence[int] | None'",
        "f1a98da0239e3ea7"),
    Use("eventsourcing.postgres:PostgresApplicationRecorder._insert_stored_events",
        "overrides", "postgres",
        "(self, curs: 'Cursor[DictRow]', stored_events: 'Sequence[StoredEvent]', **kwargs: 'Any') -> 'None'",  # noqa: E501
        "139580714a659085"),
    Use("eventsourcing.postgres:PostgresApplicationRecorder._lock_table", "calls", "postgres",
        "(self, curs: 'Cursor[DictRow]') -> 'None'", "42bc9c135b4a93c1"),
    Use("eventsourcing.postgres:PostgresApplicationRecorder._notify_channel", "calls",
        "postgres", "(self, curs: 'Cursor[DictRow]') -> 'None'", "9e5bab72ecfbcf2e"),
    Use("eventsourcing.postgres:PostgresApplicationRecorder.create_table", "overrides",
        "postgres", "(self) -> 'None'", "112d77b968e2da3c"),
    Use("eventsourcing.postgres:PostgresFactory.application_recorder", "calls", "postgres",
        "(self) -> 'ApplicationRecorder'", "b6fe3818818125cd"),
    Use("eventsourcing.postgres:PostgresApplicationRecorder#datastore", "attribute", "postgres"),
    Use("eventsourcing.postgres:PostgresApplicationRecorder#events_table_name", "attribute",
        "postgres"),
    Use("eventsourcing.postgres:PostgresDatastore#schema", "attribute", "postgres"),
    # reads.py: the recorder's own connection, tuples
    Use("eventsourcing.postgres:PostgresDatastore.get_connection", "calls", "reads",
        "(self) -> 'Iterator[Connection[DictRow]]'"),
    Use("eventsourcing.sqlite:SQLiteDatastore.transaction", "calls", "reads",
        "(self, *, commit: 'bool') -> 'Iterator[SQLiteCursor]'"),
    Use("eventsourcing.sqlite:SQLiteCursor#sqlite_cursor", "attribute", "reads"),
    Use("eventsourcing.sqlite:SQLiteApplicationRecorder#datastore", "attribute", "reads"),
    Use("eventsourcing.sqlite:SQLiteApplicationRecorder#events_table_name", "attribute",
        "reads"),
    Use("eventsourcing.popo:POPOApplicationRecorder#_stored_events_index", "attribute",
        "reads"),
)  # fmt: skip


def _resolve(name: str) -> Any:
    module_name, _, path = name.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in path.split("#")[0].split("."):
        obj = getattr(obj, part)
    return obj


def current(use: Use) -> tuple[str, str]:
    """(signature, body digest) of `use`'s name in the installed library."""
    obj = _resolve(use.name)
    signature = str(inspect.signature(obj))
    body = hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]
    return signature, body


def check(instances: Mapping[str, Any], uses: tuple[Use, ...] = SURFACE) -> list[str]:
    """What no longer matches the record, one message per name. `instances` gives a live
    object per class ("module:Class") for the attribute checks; an attribute of a class
    not given is skipped (the caller says which it cannot build)."""
    problems: list[str] = []
    version = installed_version("eventsourcing")
    for use in uses:
        where = f"(used by adapters/eventstore/{use.where}.py; recorded on {TESTED_VERSION},"
        where += f" installed {version})"
        if use.how == "attribute":
            owner, _, attribute = use.name.partition("#")
            try:
                _resolve(owner)
            except (ImportError, AttributeError):
                problems.append(f"{owner} is gone {where}")
                continue
            if owner in instances and not hasattr(instances[owner], attribute):
                problems.append(f"{use.name}: no such attribute any more {where}")
            continue
        try:
            signature, body = current(use)
        except (ImportError, AttributeError):
            problems.append(f"{use.name} is gone {where}")
            continue
        if signature != use.signature:
            problems.append(f"{use.name} changed signature {use.signature} -> {signature} {where}")
        if use.body and body != use.body:
            problems.append(
                f"{use.name} changed its body: re-read it, our code {use.how} it {where}"
            )
    return problems


def record(uses: tuple[Use, ...] = SURFACE) -> str:
    """The record as the installed library would have it (after an upgrade, re-read)."""
    lines = []
    for use in uses:
        if use.how == "attribute":
            lines.append(f"Use({use.name!r}, {use.how!r}, {use.where!r}),")
            continue
        signature, body = current(use)
        digest = f", {body!r}" if use.body else ""
        lines.append(f"Use({use.name!r}, {use.how!r}, {use.where!r}, {signature!r}{digest}),")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(record() + "\n")
