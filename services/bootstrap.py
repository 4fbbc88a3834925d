"""The composition root: builds the object graph from settings, in one place.

Nothing connects at import time: `build()` is where the store is opened, and the
entrypoints (CLI, API) call it. Tests call it with their own settings.
"""

from __future__ import annotations

import contextlib
import logging
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from services.audit.wiring import Audit
from services.http.auth import ApiKeys, keys_from_settings
from services.infrastructure.keys import SqlKeyring
from services.infrastructure.store import StoreURL
from services.ledger.application.ledger import Ledger
from services.ledger.application.outcomes import TickResult
from services.ledger.domain.rules import ProgramRules, file_hash, load_rules_file
from services.projections.wiring import Projections
from services.resources import default_program_file
from services.settings import ConfigurationError, Settings

log = logging.getLogger("loyalty")


@dataclass
class Container:
    settings: Settings
    store: StoreURL
    ledger: Ledger
    api_keys: ApiKeys
    created_keys: dict[str, str] = field(default_factory=dict)
    # The read side plugs in here (services.projections.wiring).
    projections: Projections | None = None
    # The audit part (services.audit.wiring): the hash-chain follower and the readers.
    audit: Audit | None = None
    due_customers: Callable[[datetime], list[str]] | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def tick(self, now: datetime, *, effects: bool = True) -> TickResult:
        """The sweep: candidates from the read side's lot index when it runs, else all;
        without `effects`, only the counts of what it recorded (`Ledger.tick`)."""
        from services.metrics import SWEEP_RECORDED, SWEEP_RUNS

        candidates = self.due_customers(now) if self.due_customers else self.all_customers()
        candidates += self.ledger.parked.due_customers(now)  # SPEC §8: parked too long
        result = self.ledger.tick(now, candidates, effects=effects)
        SWEEP_RUNS.inc()
        for action, count in result.counts.items():
            SWEEP_RECORDED.labels(action).inc(count)
        return result

    def all_customers(self) -> list[str]:
        from services.infrastructure.store import all_customer_ids

        return all_customer_ids(self.ledger.recorder)

    def on_close(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def close(self) -> None:
        for closer in reversed(self._closers):
            closer()
        self._closers.clear()
        self.ledger.close()


def build(
    settings: Settings | None = None,
    *,
    rules: ProgramRules | None = None,
    api_keys: ApiKeys | None = None,
    with_projections: bool = True,
) -> Container:
    settings = settings or Settings()
    # The whole configuration is checked before the store is opened (and written to).
    store = StoreURL.parse(settings.store)
    rules_file_hash = None
    if rules is None:
        rules = program_rules(settings.program)
        rules_file_hash = file_hash(settings.program or default_program_file())
    created: dict[str, str] = {}
    if api_keys is None:
        api_keys, created = keys_from_settings(settings)
    # What is opened is closed again if a later step fails (a store that stops answering
    # halfway): `build_patiently` builds again, and must not leave pools behind.
    keys = customer_keys(store)
    try:
        ledger = Ledger(
            env=store.eventsourcing_env(),
            rules=rules,
            account_cache_size=settings.aggregate_cache_size,
            account_cache_events=settings.aggregate_cache_events,
            rules_file_hash=rules_file_hash,
            keys=keys,
        )
    except BaseException:
        if isinstance(keys, SqlKeyring):
            keys.db.close()
        raise
    container = Container(
        settings=settings, store=store, ledger=ledger, api_keys=api_keys, created_keys=created
    )
    if isinstance(keys, SqlKeyring):
        container.on_close(keys.db.close)
    try:
        _warn_if_positions_can_move(store)
        if with_projections:
            from services.audit.wiring import attach as attach_audit
            from services.projections.wiring import attach as attach_projections

            attach_projections(container)
            attach_audit(container)
    except BaseException:
        container.close()
        raise
    return container


def build_patiently(settings: Settings | None = None, **options: Any) -> Container:
    """`build()` for a process that runs for a long time (`serve`, `consume`, `project`):
    a store that does not answer yet (PostgreSQL restarting under a fleet, or started after
    it) is waited for, `settings.startup_patience_seconds` at most, instead of ending the
    process with exit 1 at its first refused connection. Anything else stops it at once,
    and so does any error of the embedded store: a file that cannot be opened now will
    not open later (SQLite's busy timeout already waits for a lock)."""
    from services.infrastructure.sql import TRANSIENT_ERRORS

    settings = settings or Settings()
    if StoreURL.parse(settings.store).kind != "postgres":
        return build(settings, **options)
    # The API keys once, before the store: keys made on a first start are shown once,
    # by the attempt that works, not made again (and never shown) by a later attempt.
    created: dict[str, str] = {}
    if options.get("api_keys") is None:
        options["api_keys"], created = keys_from_settings(settings)
    deadline = time.monotonic() + settings.startup_patience_seconds
    wait = 0.2
    while True:
        try:
            container = build(settings, **options)
            container.created_keys = created
            return container
        except TRANSIENT_ERRORS as error:
            if time.monotonic() + wait > deadline:
                raise StoreUnavailable(
                    f"the store did not answer within {settings.startup_patience_seconds:g} s "
                    f"(LOYALTY_STARTUP_PATIENCE_SECONDS): {_one_line(error)}"
                ) from error
            log.warning("the store does not answer yet (%s): trying again", _one_line(error))
            time.sleep(wait)
            wait = min(wait * 2, 5.0)


class StoreUnavailable(RuntimeError):
    """The store did not answer at start within the process's patience."""


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def customer_keys(store: StoreURL) -> Any:
    """The customers' keys: their own table in the store's database (SPEC §11)."""
    from services.infrastructure.keys import MemoryKeyring, SqlKeyring
    from services.infrastructure.sql import Database

    if store.kind == "sqlite" and store.path == ":memory:":
        return MemoryKeyring()  # another connection would be another database
    keyring = SqlKeyring(Database(store, pool_size=2))
    try:
        keyring.create()
    except BaseException:
        keyring.db.close()
        raise
    return keyring


def _warn_if_positions_can_move(store: StoreURL) -> None:
    if store.kind != "sqlite" or store.path == ":memory:" or store.path.startswith("file:"):
        return
    import sqlite3

    from services.ledger.adapters.eventstore.sqlite import has_stable_positions

    with contextlib.closing(sqlite3.connect(store.path)) as db:
        if not has_stable_positions(db):
            log.warning(
                "this store's positions are implicit SQLite rowids, which VACUUM may renumber "
                "and a .dump does not keep: run `loyalty store migrate` once (docs/AUDIT.md)"
            )


def program_rules(path: Path | None) -> ProgramRules:
    """The rules of the program file `path` (default: the package's `program.toml`)."""
    path = path or default_program_file()
    try:
        return load_rules_file(path)
    except OSError as error:
        raise ConfigurationError(
            f"LOYALTY_PROGRAM: cannot read {path}: {error.strerror or error}"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"LOYALTY_PROGRAM: {path} is not TOML: {error}") from None
    except ArithmeticError:  # decimal.InvalidOperation: says nothing a reader can use
        raise ConfigurationError(f"LOYALTY_PROGRAM: {path}: a number in it is not one") from None
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ConfigurationError(f"LOYALTY_PROGRAM: {path}: {error}") from None
