"""One projection batch's writes: queued as jobs, run in ONE transaction, committed last.

`BatchWrites` runs the jobs when the batch commits (the fold is done first, so SQLite's
write lock is held only while writing). `PipelinedWrites` (PostgreSQL) opens the
transaction on a writer thread at once and runs each job as soon as it is queued, so the
database works on one page's rows while the fold computes the next; the commit still
comes last, after the job that moves the tracking position. A failing job fails the
batch: the transaction rolls back and `commit()` raises.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from services.infrastructure.sql import Cursor, Database

Job = Callable[[Cursor], None]


class BatchWrites:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.jobs: list[Job] = []

    def submit(self, job: Job) -> None:
        self.jobs.append(job)

    def commit(self) -> None:
        with self.db.transaction() as cur:
            for job in self.jobs:
                job(cur)

    def abort(self) -> None:
        self.jobs.clear()


class _Abort(Exception):
    pass


_COMMIT = object()
_ABORT = object()


class PipelinedWrites:
    def __init__(self, db: Database, depth: int = 4) -> None:
        self.db = db
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="projection-writes", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self.db.transaction() as cur:
                while True:
                    job = self._queue.get()
                    if job is _COMMIT:
                        return
                    if job is _ABORT:
                        raise _Abort
                    if self._error is None:
                        job(cur)  # type: ignore[operator]
        except _Abort:
            pass
        except BaseException as error:  # handed to the folding thread at its next call
            self._error = error
            self._drain()

    def _drain(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is _COMMIT or job is _ABORT:
                return

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, job: Job) -> None:
        self._raise()
        self._queue.put(job)

    def commit(self) -> None:
        self._raise()
        self._queue.put(_COMMIT)
        self._thread.join()
        self._raise()

    def abort(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_ABORT)
            self._thread.join()
