"""The projection runner: the store's notification log, folded into the tables, exactly once.

Contract:
- It polls the notification log (one design for SQLite and PostgreSQL: the SQLite
  recorder cannot `subscribe`) through `source.LogReader`: the recorder's own
  connection, the columns `select_notifications` gives, as plain tuples, only the
  account and program topics, in spans of positions up to the store's position read
  first. On PostgreSQL the next span is read, and the last one's rows written, while
  the fold works (`writes.PipelinedWrites`); the commit still comes last.
- A batch folds one or more pages in memory (`Projector`), then writes the changed rows,
  the timeline and NPS rows, the outbox messages AND the new tracking position in ONE
  transaction. A crash before the commit leaves rows and position as they were; the
  batch is folded again from the tables.
- Two runners at once stay correct: the commit reads the tracking row under a lock
  (`SELECT ... FOR UPDATE` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite) and writes only if
  it still holds the position the batch started from; otherwise it drops its cache and
  reloads from the tables.
- A failing batch stops the runner loudly: logged, counted in
  `loyalty_projection_failures_total`, raised. No event is ever skipped.
- The in-memory cache of views is loaded from the tables on first touch and bounded in
  views (`cache_size`) and in what they hold (`cache_items`: lots, purchases, holds,
  grants..., `weight`), the least recently touched going first: a view's memory grows
  with its customer's history, so a count alone let a few long views take gigabytes. A
  rebuild into fresh tables keeps everything in memory instead.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from eventsourcing.persistence import ApplicationRecorder

from services.infrastructure.sql import TRANSIENT_ERRORS, Cursor
from services.metrics import PROJECTION_FAILURES, PROJECTION_LAG, PROJECTION_POSITION
from services.projections.loading import load_customers, load_program
from services.projections.parallel import rebuild_in_parallel
from services.projections.persistence import (
    append_rows,
    program_rows,
    submit_view_rows,
    write_rows,
)
from services.projections.projector import Projector
from services.projections.source import LogReader, Row
from services.projections.tables import ProjectionTables
from services.projections.views.common import (
    ACCOUNT_KINDS,
    ACCOUNT_TOPICS,
    OPENED,
    PROGRAM_TOPICS,
)
from services.projections.views.customer import CustomerView
from services.projections.writes import BatchWrites, PipelinedWrites

BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0
# What the cached views may hold in all (`weight`), ~0.4 KB of the heap an item
# (tracemalloc: 4.1 KB a view with a lot and a purchase, 5.4 KB with 2.8 lots, 2.1
# purchases and 0.4 else; docs/BENCHMARKS.md): ~400 MB.
CACHE_ITEMS = 1_000_000


def weight(view: CustomerView) -> int:
    """What a view holds, counted in items: its fixed part (the totals, the watch and its
    windows, the empty collections: ~3.3 KB) as eight, and one for each thing that grows
    with the history."""
    return (
        8
        + len(view.lots)
        + len(view.purchases)  # with its place in the spend windows
        + len(view.holds)
        + len(view.campaigns)
        + len(view.grants)
        + len(view.incidents)
        + len(view.resolved)
    )


log = logging.getLogger(__name__)

TOPICS = [*ACCOUNT_TOPICS, *PROGRAM_TOPICS]
Progress = Callable[[int, int], None]
PARALLEL_FROM = 100_000  # positions: below, starting worker processes costs more than it saves
MAX_WORKERS = 4  # each worker scans the whole log range: more costs the database more


class PositionMoved(Exception):
    """Another runner committed first: this batch is dropped and the cache reloaded."""


def _check_position(cur: Cursor, tables: ProjectionTables, start: int) -> None:
    """First in the batch's transaction: hold the tracking row, and make sure nobody moved
    it since this runner's cache was loaded."""
    if tables.position(cur, lock=True) != start:
        raise PositionMoved


def _move_position(cur: Cursor, tables: ProjectionTables, position: int) -> None:
    tables.set_position(cur, position)


@dataclass(frozen=True)
class RebuildResult:
    prefix: str
    position: int  # the store position the new tables reflect
    events: int  # stored events covered (positions 1..position)
    folded: int  # of which account and program events (the rest: intake records)
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class ProjectionRunner:
    def __init__(
        self,
        recorder: ApplicationRecorder,
        tables: ProjectionTables,
        *,
        page_size: int = 5000,
        commit_every: int = 20_000,
        cache_size: int = 100_000,
        cache_items: int = CACHE_ITEMS,
        fresh: bool = False,
        messages: bool = True,
        index_at_end: bool = False,
    ) -> None:
        self.recorder = recorder
        self.reader = LogReader(recorder, TOPICS)
        self.tables = tables
        self.db = tables.db
        self.page_size = page_size
        self.commit_every = commit_every
        self.cache_size = cache_size
        self.cache_items = cache_items
        self._weights: dict[str, int] = {}  # the cached views' weights, as last seen
        self.cached_items = 0  # their sum
        # Fresh: the tables were empty when this runner started and only it writes them,
        # so a view it does not hold does not exist (no loads, no eviction).
        self.fresh = fresh
        self.messages = messages  # write the change feed's outbox rows
        # Tables made with `create(indexes=False)`: the batch that reaches the store's end
        # builds the keys and indexes (a rebuild on PostgreSQL, in one transaction).
        self.index_at_end = index_at_end
        # PostgreSQL writes one page while the next is folded (another process, another core)
        self.pipelined = self.db.dialect == "postgres"
        self.label = tables.prefix.rstrip("_") or "projections"
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._projector: Projector | None = None
        self._position = 0
        self.events_folded = 0

    # ---- state ---------------------------------------------------------------------------------
    def position(self) -> int:
        """The position the tables reflect (read from the tracking row)."""
        return self.tables.read_position()

    def store_position(self) -> int:
        return self.reader.max_position()

    def reset(self) -> None:
        """Forget the cache: the next batch reloads position, rules and views."""
        with self._lock:
            self._projector = None

    def wake(self) -> None:
        """Ask `run_forever` to poll now (after a write, or when a reader waits)."""
        self._wake.set()

    def _started(self) -> Projector:
        if self._projector is None:
            with self.db.reading() as cur:
                self._position = self.tables.position(cur)
                program = load_program(cur, self.tables)
            self._projector = Projector(program, track=True, messages=self.messages)
            self._weights.clear()
            self.cached_items = 0
        return self._projector

    # ---- one batch -------------------------------------------------------------------------------
    def run_once(self, on_progress: Progress | None = None) -> int:
        """Fold and commit the next batch; returns how far the position moved (0 when there
        is nothing new or another runner committed first)."""
        with self._lock:
            try:
                return self._run_once(on_progress)
            except PositionMoved:
                log.info("projection position moved under %s; reloading", self.label)
                self._projector = None
                return 0
            except BaseException:
                self._projector = None
                PROJECTION_FAILURES.inc()
                raise

    def _run_once(self, on_progress: Progress | None) -> int:
        projector = self._started()
        start = end = self._position
        stop = self.store_position()
        if end >= stop:
            self._metrics(end, stop)
            return 0
        tables = self.tables
        created_at = datetime.now(UTC).isoformat()
        writes = PipelinedWrites(self.db) if self.pipelined else BatchWrites(self.db)
        writes.submit(partial(_check_position, tables=tables, start=start))
        touched: dict[str, CustomerView] = {}
        folded = 0
        last = min(stop, start + self.commit_every)
        pages = self.reader.pages(start, last, self.page_size, prefetch=self.pipelined)
        try:
            for until, rows in pages:
                if not self.fresh:
                    self._load_missing(projector, rows)
                apply = projector.apply
                for position, originator_id, topic, state in rows:
                    apply(position, originator_id, topic, state)
                folded += len(rows)
                end = until
                output = projector.take()
                touched.update(output.touched)
                writes.submit(
                    partial(append_rows, tables=tables, output=output, created_at=created_at)
                )
                if on_progress is not None:
                    on_progress(end, stop)
            # The rows are computed here, a chunk at a time, while the writer writes the last.
            program = projector.program
            views = list(touched.values())
            submit_view_rows(writes.submit, tables, views, program)
            writes.submit(partial(write_rows, tables=tables, rows=program_rows(program)))
            if self.index_at_end and end >= stop:
                writes.submit(tables.create_indexes)
                self.index_at_end = False
            writes.submit(partial(_move_position, tables=tables, position=end))
            writes.commit()
        except BaseException:
            pages.close()
            writes.abort()
            raise
        self._position = end
        self.events_folded += folded
        self._evict(projector, touched)
        self._metrics(end, stop)
        return end - start

    def _load_missing(self, projector: Projector, rows: Sequence[Row]) -> None:
        opened = {row[1] for row in rows if row[2] == OPENED}
        customers = projector.customers
        missing = {
            row[1]
            for row in rows
            if row[1] not in customers
            and row[1] not in opened
            and row[2] != OPENED
            and row[2] in ACCOUNT_KINDS
        }
        if missing:
            with self.db.reading() as cur:
                projector.customers.update(
                    load_customers(
                        cur, self.tables, originator_ids=sorted(missing), watched=self.messages
                    )
                )

    def _evict(self, projector: Projector, touched: dict[str, CustomerView]) -> None:
        """Keep the cache within its bounds: the batch's views move to the end (the most
        recently used) with their new weights; the least recently used leave first."""
        if self.fresh:
            return
        customers, weights = projector.customers, self._weights
        for key, view in touched.items():
            if customers.get(key) is not view:
                continue
            del customers[key]
            customers[key] = view
            now = weight(view)
            self.cached_items += now - weights.get(key, 0)
            weights[key] = now
        while customers and (
            len(customers) > self.cache_size or self.cached_items > self.cache_items
        ):
            key = next(iter(customers))
            del customers[key]
            self.cached_items -= weights.pop(key, 0)

    def _metrics(self, position: int, stop: int) -> None:
        PROJECTION_POSITION.labels(self.label).set(position)
        PROJECTION_LAG.labels(self.label).set(max(stop - position, 0))

    # ---- loops ------------------------------------------------------------------------------
    def catch_up(self, until: int | None = None, on_progress: Progress | None = None) -> int:
        """Run batches until the tables reach `until` (default: the store's position now)."""
        target = self.store_position() if until is None else until
        while True:
            moved = self.run_once(on_progress)
            with self._lock:
                self._started()
                position = self._position
            if position >= target:
                return position
            if not moved and self.store_position() <= position:
                return position  # `until` is beyond what the store holds

    def run_forever(self, stop_event: threading.Event, interval: float = 0.05) -> None:
        """Poll every `interval` seconds (sooner when woken) until `stop_event` is set.

        A batch that fails on the store (a restarted server, a deadlock with another
        process's DDL, a busy file) is rolled back, counted and tried again after a
        backoff (0.5 s doubling to 10 s), from the committed position; any other error is
        a bug and raises out of here (logged and counted)."""
        backoff = 0.0
        while not stop_event.is_set():
            try:
                moved = self.run_once()
            except TRANSIENT_ERRORS as error:
                backoff = min(BACKOFF_MAX, max(BACKOFF_FIRST, backoff * 2))
                log.warning(
                    "projection batch at position %s failed on the store (%s: %s); "
                    "trying again in %.1f s",
                    self._position,
                    type(error).__name__,
                    str(error).strip().splitlines()[0] if str(error).strip() else "",
                    backoff,
                )
                stop_event.wait(backoff)
                continue
            except Exception:
                log.exception("projection batch failed at position %s; stopping", self._position)
                raise
            backoff = 0.0
            if not moved:
                self._wake.wait(interval)
                self._wake.clear()

    def wait_for(self, position: int, timeout: float) -> bool:
        """True once the tables reflect `position`; False after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if self.position() >= position:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.wake()
            time.sleep(min(0.02, left))

    # ---- full replay ------------------------------------------------------------------------
    def rebuild(
        self,
        prefix: str,
        on_progress: Progress | None = None,
        *,
        page_size: int = 5000,
        commit_every: int | None = None,
        outbox: bool = False,
        until: int | None = None,
        workers: int | None = None,
    ) -> RebuildResult:
        """Fold the log from position 0 (to `until`, default the store's position now) into
        fresh tables under `prefix`, dropped and created first; the live tables are not
        touched. `on_progress(position, total)` is called after every page. The outbox is
        a message log, not a view: it is written only with `outbox=True`.

        On PostgreSQL it is one transaction: the rows stream in while the fold goes on and
        the keys and indexes are built at the end. From `PARALLEL_FROM` positions on, the
        fold is split by account over `workers` processes instead (default: one per core,
        at most `MAX_WORKERS`), each writing in its own transaction; the tracking position
        is set last, so the tables say 0 until all is written (`parallel.py`). On SQLite
        it commits every `commit_every` positions (default 200,000), holding the write
        lock only to write."""
        if prefix == self.tables.prefix:
            raise ValueError(f"{prefix!r} holds the live projections; rebuild into another prefix")
        # One transaction on PostgreSQL, indexed at the end; commits on SQLite (or when asked).
        deferred = self.db.dialect == "postgres" and commit_every is None
        target = ProjectionTables(self.db, prefix)
        target.drop()
        target.create(indexes=not deferred)
        held_at = self.store_position() if until is None else min(until, self.store_position())
        if workers is None:
            workers = min(os.cpu_count() or 1, MAX_WORKERS) if held_at >= PARALLEL_FROM else 1
        if deferred and not outbox and workers > 1:
            started = time.perf_counter()
            folded = rebuild_in_parallel(target, TOPICS, held_at, workers, page_size, on_progress)
            seconds = time.perf_counter() - started
            return RebuildResult(prefix, held_at, held_at, folded, seconds)
        every = commit_every or (2**62 if deferred else 200_000)
        runner = _Held(
            self.recorder,
            target,
            page_size=page_size,
            commit_every=every,
            fresh=True,
            messages=outbox,
            index_at_end=deferred,
            held_at=held_at,
        )
        started = time.perf_counter()
        position = runner.catch_up(on_progress=on_progress)
        if runner.index_at_end:  # nothing to fold: index the empty tables
            with self.db.transaction() as cur:
                target.create_indexes(cur)
        seconds = time.perf_counter() - started
        return RebuildResult(prefix, position, position, runner.events_folded, seconds)


class _Held(ProjectionRunner):
    """A runner that treats `held_at` as the end of the store (a rebuild to a position)."""

    def __init__(self, *args: Any, held_at: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held_at = held_at

    def store_position(self) -> int:
        return min(super().store_position(), self.held_at)
