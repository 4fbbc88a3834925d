"""`loyalty audit replay`: rebuild every projection from position 0 into fresh tables and
compare them with the live ones, row by row, at ONE position (SPEC §5).

1. The live projections catch up with the store (this process runs a batch or two if
   no other runner has; the tracking row keeps two runners correct).
2. One read snapshot of the live tables is opened (REPEATABLE READ on PostgreSQL; a read
   transaction on SQLite's WAL): its tracking position P is the position compared.
   Live runners may go on committing; the snapshot does not see them.
3. The projections' own rebuild folds positions 1..P into fresh tables (`replay_*`), held
   at P even if the store grows meanwhile, so both sides reflect exactly P.
4. Every compared table is merge-joined in primary-key order: each difference names the
   table, the key, the column, the live value and the replayed value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import islice

from eventsourcing.persistence import ApplicationRecorder

from services.audit.diff import ReplayReport, differences, snapshot_rows
from services.infrastructure.sql import Cursor, Database
from services.infrastructure.store import StoreURL
from services.projections.runner import ProjectionRunner
from services.projections.tables import ProjectionTables

Progress = Callable[[int, int], None]
LIVE_PREFIX = "proj_"
REPLAY_PREFIX = "replay_"


@contextmanager
def snapshot(db: Database) -> Iterator[Cursor]:
    """One consistent read of many tables."""
    with db.reading() as cur:
        if db.dialect == "postgres":
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield cur


def replay(
    recorder: ApplicationRecorder,
    store: StoreURL,
    *,
    live_prefix: str = LIVE_PREFIX,
    prefix: str = REPLAY_PREFIX,
    on_progress: Progress | None = None,
    keep: bool = False,
    shown: int = 1000,
    page_size: int = 5000,
) -> ReplayReport:
    """Replay everything into `prefix` tables and diff them with the live `live_prefix`."""
    if prefix == live_prefix:
        raise ValueError(f"{prefix!r} holds the live projections; replay into another prefix")
    live_db, replay_db = Database(store, pool_size=2), Database(store, pool_size=2)
    live = ProjectionTables(live_db, live_prefix)
    target = ProjectionTables(replay_db, prefix)
    try:
        live.create()
        ProjectionRunner(recorder, live).catch_up()
        with snapshot(live_db) as cur:
            position = live.position(cur)
            # The projections' own rebuild (`make bench` measures it): fresh tables, held
            # at `position`, keys built at the end; the outbox is a message log, not a view.
            rebuilt = ProjectionRunner(recorder, ProjectionTables(replay_db, live_prefix)).rebuild(
                prefix, on_progress, page_size=page_size, until=position
            )
            if rebuilt.position != position:
                raise RuntimeError(f"the replay stopped at {rebuilt.position}, not at {position}")
            found = differences(live.compared(), snapshot_rows(cur, live), target.iter_rows)
            first = list(islice(found, shown))
            total = len(first) + sum(1 for _ in found)
        return ReplayReport(position, position, rebuilt.folded, rebuilt.seconds, first, total)
    finally:
        if not keep:
            target.drop()
        live_db.close()
        replay_db.close()
