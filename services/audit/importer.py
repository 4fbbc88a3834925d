"""`loyalty audit import FILE`: load an export into an EMPTY ledger, byte-exact.

The file is read twice. The first pass checks it without writing anything: positions
strictly increase, each aggregate's versions run 1, 2, 3… (so every aggregate loads), and
the hash-chain links it carries recompute from the genesis (so the file is a whole history,
unaltered; lines exported before they were chained carry no link and may only come last).
The second pass writes the events through the library's recorder (`insert_events`) in big
batches, at their original positions: where the source had a gap (PostgreSQL burns a
sequence number on a rolled-back save) the target skips the same numbers, so positions,
projections and the hash chain come out identical on either kind of store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, StoredEvent

from services.audit.chain import GENESIS, next_link
from services.audit.export import ExportLine
from services.audit.stored import StoredRow
from services.infrastructure.store import events_table, is_postgres

BATCH = 5_000


class ImportRefused(Exception):
    """The target is not empty, or the file is not a whole, unaltered history."""


@dataclass
class FileCheck:
    events: int
    last_position: int
    last_link: tuple[int, str] | None  # the position and link of the last chained line


@dataclass
class ImportResult:
    events: int
    last_position: int
    last_link: tuple[int, str] | None


def read_lines(path: Path) -> Iterator[ExportLine]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                try:
                    yield ExportLine.parse(raw)
                except (ValueError, KeyError, TypeError) as error:
                    raise ImportRefused(f"line {number}: not an export line ({error})") from None


def check_file(lines: Iterator[ExportLine]) -> FileCheck:
    versions: dict[str, int] = {}
    previous, position, count = GENESIS, 0, 0
    last_link: tuple[int, str] | None = None
    unlinked = False
    for line in lines:
        count += 1
        if line.position <= position:
            raise ImportRefused(f"position {line.position} does not follow {position}")
        position = line.position
        expected = versions.get(line.originator_id, 0) + 1
        if line.originator_version != expected:
            raise ImportRefused(
                f"position {position}: {line.originator_id} version {line.originator_version}, "
                f"expected {expected} (the file must hold every event of each aggregate)"
            )
        versions[line.originator_id] = expected
        previous = next_link(previous, _row(line))
        if line.link is None:
            unlinked = True
        elif unlinked:
            raise ImportRefused(f"position {position}: a chained line after unchained ones")
        elif line.link != previous.hex():
            raise ImportRefused(
                f"position {position}: the hash chain breaks here (the file was altered, or "
                "does not start at the beginning of the history)"
            )
        else:
            last_link = (position, line.link)
    if count == 0:
        raise ImportRefused("the file holds no events")
    return FileCheck(count, position, last_link)


def import_file(
    recorder: ApplicationRecorder,
    path: Path,
    *,
    batch: int = BATCH,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Check the file, then load it into the (empty) store at the original positions."""
    if recorder.max_notification_id():
        raise ImportRefused("the target ledger is not empty; import loads only an empty one")
    check = check_file(read_lines(path))
    loaded = 0
    run: list[ExportLine] = []
    for line in read_lines(path):
        if run and (line.position != run[-1].position + 1 or len(run) >= batch):
            _insert_run(recorder, run)
            loaded += len(run)
            if on_progress is not None:
                on_progress(loaded, check.events)
            run = []
        run.append(line)
    _insert_run(recorder, run)
    loaded += len(run)
    if on_progress is not None:
        on_progress(loaded, check.events)
    return ImportResult(loaded, check.last_position, check.last_link)


def _row(line: ExportLine) -> StoredRow:
    return StoredRow(
        line.position, UUID(line.originator_id), line.originator_version, line.topic, line.state
    )


def _stored(line: ExportLine) -> StoredEvent:
    return StoredEvent(
        originator_id=UUID(line.originator_id),
        originator_version=line.originator_version,
        topic=line.topic,
        state=line.state,
    )


def _insert_run(recorder: ApplicationRecorder, run: list[ExportLine]) -> None:
    """Insert lines with consecutive positions so that they land at those positions."""
    if not run:
        return
    first = run[0].position
    rest = run
    if is_postgres(recorder):
        # Always: a store emptied without resetting its sequence would number on from it.
        _move_postgres_sequence(recorder, first)
    elif first != (recorder.max_notification_id() or 0) + 1:
        _insert_sqlite_at(recorder, run[0])
        rest = run[1:]
    if not rest:
        return
    positions = recorder.insert_events([_stored(line) for line in rest])
    expected = [line.position for line in rest]
    if list(positions or []) != expected:
        raise ImportRefused(
            f"events landed at positions {list(positions or [])[:3]}…, expected "
            f"{expected[:3]}…: did something else write to the target while importing?"
        )


def _move_postgres_sequence(recorder: ApplicationRecorder, next_position: int) -> None:
    datastore: Any = recorder.datastore  # type: ignore[attr-defined]
    table = f"{datastore.schema}.{events_table(recorder)}"
    with datastore.transaction(commit=True) as curs:
        curs.execute(
            "SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), %s, false)",
            (table, next_position),
        )


def _insert_sqlite_at(recorder: ApplicationRecorder, line: ExportLine) -> None:
    """SQLite gives a new row max(rowid) + 1; past a gap, the first row is placed."""
    datastore: Any = recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=True) as curs:
        curs.execute(
            f"INSERT INTO {events_table(recorder)} "
            "(rowid, originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?, ?)",
            (
                line.position,
                UUID(line.originator_id).hex,
                line.originator_version,
                line.topic,
                line.state,
            ),
        )
