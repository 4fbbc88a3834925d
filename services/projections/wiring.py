"""Plugs the read side into the container (`services.bootstrap.build` calls `attach`).

`attach(container)` builds the projections' database connections (the store's own
database), creates the tables if missing, and sets:
- `container.projections`: `start_in_process()` / `stop_in_process()` (the API lifespan
  calls them), `runner`, `queries`, `tables`, `db`;
- `container.due_customers`: the sweep's candidates from the lots table. The projections
  first catch up when they run in this process; otherwise the read waits (bounded) for
  the `loyalty project` process to reach the store's position.

Where the runner runs: `settings.projections_in_process` (None means yes on SQLite, the
embedded default, and no on PostgreSQL, where `loyalty project` runs it).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.infrastructure.sql import Database
from services.projections.queries import ProjectionQueries
from services.projections.runner import ProjectionRunner
from services.projections.tables import ProjectionTables

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05


@dataclass
class Projections:
    db: Database
    tables: ProjectionTables
    runner: ProjectionRunner
    queries: ProjectionQueries
    in_process: bool
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    failure: BaseException | None = None

    def start_in_process(self, *, force: bool = False) -> None:
        """Run the projections on a daemon thread, if this process runs them (or `force`)."""
        if not (self.in_process or force) or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="projections", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.runner.run_forever(self._stop, POLL_SECONDS)
        except BaseException as error:  # logged and counted by the runner; reads go stale
            self.failure = error
            log.critical("the projections stopped; reads will not advance past %s", error)

    def stop_in_process(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            self.runner.wake()
            thread.join(timeout=30)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def due_customers(self, now: datetime) -> list[str]:
        """The sweep's candidates, after the projections have caught up with the store."""
        if self.in_process:
            self.runner.catch_up()
        else:
            target = self.runner.store_position()
            if not self.runner.wait_for(target, self.queries.read_wait_seconds):
                log.warning("projections behind the store; the sweep may miss new lots")
        return self.queries.due_customers(now)

    def close(self) -> None:
        self.stop_in_process()
        self.db.close()


def attach(container: Any) -> Projections:
    """Set `container.projections` and `container.due_customers` (once)."""
    existing = getattr(container, "projections", None)
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    settings = container.settings
    # The runner's writer and reader, plus the API's concurrent reads.
    db = Database(container.store, pool_size=8)
    tables = ProjectionTables(db)
    try:
        tables.create()
    except BaseException:
        db.close()  # a store that stopped answering: nothing left open behind
        raise
    runner = ProjectionRunner(
        container.ledger.recorder, tables, cache_items=settings.projection_cache_items
    )
    queries = ProjectionQueries(
        container.ledger.recorder,
        tables,
        runner,
        read_wait_seconds=settings.read_wait_seconds,
        keys=container.ledger.keys,
    )
    projections = Projections(db, tables, runner, queries, settings.read_side_in_process)
    container.projections = projections
    container.due_customers = projections.due_customers
    container.on_close(projections.close)
    return projections
