"""A full rebuild on PostgreSQL folded by several processes, one per core.

A rebuild folds every account event into fresh tables (`loyalty audit replay`, `make
bench`). In one process the fold and the writes share one interpreter lock, and the
machine's other core is left to the database. Accounts are independent of each other,
so the log splits by account: worker k of n reads the events of the accounts whose id
ends in a byte equal to k modulo n, plus every program event (so each worker knows the
rules in force at each position), folds them with the same `Projector`, and writes its
customers' rows, timeline and NPS responses in its own transaction. The parent sums the
workers' program views (liability, NPS counts, goodwill per month are sums), writes
the program rows, builds the keys and indexes, and moves the tracking row, in one last
transaction. The tables are scratch tables until that transaction sets their position:
a failed worker leaves them at position 0, and the rebuild raises.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from services.infrastructure.sql import Database
from services.infrastructure.store import StoreURL, open_recorder
from services.projections.persistence import (
    append_rows,
    program_rows,
    submit_view_rows,
    write_rows,
)
from services.projections.projector import Projector
from services.projections.source import LogReader
from services.projections.tables import ProjectionTables
from services.projections.views.common import PROGRAM_TOPICS
from services.projections.views.program import ProgramView
from services.projections.writes import PipelinedWrites
from services.runtime import tune_gc

Progress = Callable[[int, int], None] | None


def fold_share(
    store: StoreURL,
    prefix: str,
    topics: list[str],
    until: int,
    share: int,
    shares: int,
    page_size: int,
    report: Any,  # a multiprocessing queue
) -> None:
    """Worker `share` of `shares`: fold its accounts' events, write their rows, and put
    ("done", share, program view, rows folded) on `report` (or ("failed", share, why))."""
    tune_gc()  # a spawned process: it does not inherit the parent's settings
    try:
        recorder, factory = open_recorder(store)
        db = Database(store, pool_size=2)
        try:
            reader = LogReader(recorder, topics, share=(share, shares, PROGRAM_TOPICS))
            folded = _fold(reader, ProjectionTables(db, prefix), until, share, page_size, report)
        finally:
            db.close()
            factory.close()
    except BaseException as error:
        report.put(("failed", share, f"{type(error).__name__}: {error}"))
        raise
    report.put(("done", share, *folded))


def _fold(
    reader: LogReader,
    tables: ProjectionTables,
    until: int,
    share: int,
    page_size: int,
    report: Any,
) -> tuple[ProgramView, int]:
    projector = Projector(track=True, messages=False)
    created_at = datetime.now(UTC).isoformat()
    writes = PipelinedWrites(tables.db)
    folded = 0
    try:
        for position, rows in reader.pages(0, until, page_size, prefetch=True):
            apply = projector.apply
            for row in rows:
                apply(*row)
            # Every worker folds the program events; only worker 0 counts them.
            folded += sum(1 for row in rows if share == 0 or row[2] not in PROGRAM_TOPICS)
            output = projector.take()
            writes.submit(partial(append_rows, tables=tables, output=output, created_at=created_at))
            report.put(("progress", share, position))
        views = list(projector.customers.values())
        submit_view_rows(writes.submit, tables, views, projector.program)
        writes.commit()
    except BaseException:
        writes.abort()
        raise
    return projector.program, folded


def rebuild_in_parallel(
    target: ProjectionTables,
    topics: list[str],
    until: int,
    workers: int,
    page_size: int,
    on_progress: Progress = None,
) -> int:
    """Fold positions 1..`until` into `target` (created without keys) with `workers`
    processes; returns the rows folded. Raises if a worker fails."""
    context = multiprocessing.get_context("spawn")  # no fork of a process with threads
    report = context.Queue()
    processes = [
        context.Process(
            target=fold_share,
            args=(target.db.store, target.prefix, topics, until, k, workers, page_size, report),
            name=f"rebuild-{k}",
            daemon=True,
        )
        for k in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        programs, folded = _collect(processes, report, until, on_progress)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
    program = ProgramView.summed(programs)
    with target.db.transaction() as cur:
        write_rows(cur, target, program_rows(program))
        target.create_indexes(cur)
        target.set_position(cur, until)
    return folded


def _collect(
    processes: list[Any], report: Any, until: int, on_progress: Progress
) -> tuple[list[ProgramView], int]:
    reached = dict.fromkeys(range(len(processes)), 0)
    programs: dict[int, ProgramView] = {}
    folded = 0
    while len(programs) < len(processes):
        try:
            message = report.get(timeout=1)
        except queue.Empty:
            dead = [p.name for p in processes if not p.is_alive() and p.exitcode]
            if dead:
                raise RuntimeError(f"rebuild worker(s) {', '.join(dead)} died") from None
            continue
        kind, share, *rest = message
        if kind == "failed":
            raise RuntimeError(f"rebuild worker {share} failed: {rest[0]}")
        if kind == "progress":
            reached[share] = rest[0]
            if on_progress is not None:
                on_progress(min(reached.values()), until)
        else:
            programs[share], count = rest
            reached[share] = until
            folded += count
    return [programs[k] for k in sorted(programs)], folded
