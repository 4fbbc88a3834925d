"""Plugs the audit part into the container: the hash-chain follower and the readers.

`attach(container)` sets `container.audit`. The follower runs
- in-process in `serve` when the projections do (the embedded SQLite default):
  the API lifespan calls `container.audit.start_in_process()` / `stop_in_process()`;
- in the `project` process in production: it calls `container.audit.run_forever(stop)`
  on a thread of its own (or `start_in_process(force=True)`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import ApplicationRecorder

from services.audit.chain import ChainFollower, ChainTable
from services.audit.history import History
from services.infrastructure.keys import SqlKeyring
from services.infrastructure.sql import Database
from services.infrastructure.store import StoreURL, open_recorder
from services.ledger.domain.privacy import Keyring

log = logging.getLogger(__name__)


@dataclass
class Audit:
    recorder: ApplicationRecorder
    db: Database
    chain: ChainTable
    follower: ChainFollower
    history: History
    in_process: bool = False
    interval: float = 1.0
    _closers: list[Any] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def over(
        cls,
        recorder: ApplicationRecorder,
        db: Database,
        *,
        in_process: bool,
        keys: Keyring | None = None,
    ) -> Audit:
        """`keys`: the customers' keys (default: their table in `db`, the store's own)."""
        chain = ChainTable(db)
        try:
            chain.create()
            if keys is None:
                keyring = SqlKeyring(db)
                keyring.create()
                keys = keyring
        except BaseException:
            db.close()  # a store that stopped answering: nothing left open behind
            raise
        return cls(
            recorder=recorder,
            db=db,
            chain=chain,
            follower=ChainFollower(recorder, chain),
            history=History(recorder, chain, keys),
            in_process=in_process,
        )

    @classmethod
    def open(cls, store: StoreURL) -> Audit:
        """For the CLI: the store's recorder without the ledger application, so that an
        audit command never writes to the ledger (the application would record the
        program's rules on start)."""
        recorder, factory = open_recorder(store)
        audit = cls.over(recorder, Database(store, pool_size=2), in_process=False)
        audit._closers.append(factory.close)
        return audit

    def run_forever(self, stop_event: threading.Event) -> None:
        """Chain new events every second until `stop_event` is set (the `project` loop)."""
        self.follower.run_forever(stop_event, self.interval)

    def start_in_process(self, *, force: bool = False) -> None:
        """Start the follower on a daemon thread, if this process runs it (or `force`)."""
        if not (self.in_process or force) or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="audit-chain-follower", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.run_forever(self._stop)
        except Exception:  # already logged and counted by the follower; the thread ends
            log.error("the hash-chain follower stopped; see the error above")

    def stop_in_process(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=30)

    def close(self) -> None:
        self.stop_in_process()
        self.db.close()
        for closer in self._closers:
            closer()
        self._closers.clear()


def attach(container: Any) -> Audit:
    """Set `container.audit` (once) and close it with the container."""
    existing = getattr(container, "audit", None)
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    audit = Audit.over(
        container.ledger.recorder,
        Database(container.store, pool_size=2),
        in_process=container.settings.read_side_in_process,
        keys=container.ledger.keys,
    )
    container.audit = audit
    container.on_close(audit.close)
    return audit
