"""The composition root: builds the object graph from settings, in one place.

Nothing connects at import time: `build()` is where the store is opened, and the
entrypoints (CLI, API) call it. Tests call it with their own settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.ledger.adapters.store import StoreURL
from services.ledger.api.auth import ApiKeys, keys_from_settings
from services.ledger.application.ledger import Ledger, TickResult
from services.ledger.domain.rules import ProgramRules, load_rules_file
from services.settings import Settings


@dataclass
class Container:
    settings: Settings
    store: StoreURL
    ledger: Ledger
    api_keys: ApiKeys
    created_keys: dict[str, str] = field(default_factory=dict)
    # The read side plugs in here (services.projections.wiring).
    projections: Any = None
    # The audit part (services.audit.wiring): the hash-chain follower and the readers.
    audit: Any = None
    due_customers: Callable[[datetime], list[str]] | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def tick(self, now: datetime) -> TickResult:
        """The sweep: candidates from the read side's lot index when it runs, else all."""
        candidates = self.due_customers(now) if self.due_customers else self.all_customers()
        return self.ledger.tick(now, candidates)

    def all_customers(self) -> list[str]:
        from services.ledger.adapters.store import all_customer_ids

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
    store = StoreURL.parse(settings.store)
    ledger = Ledger(
        env=store.eventsourcing_env(),
        rules=rules or load_rules_file(settings.program),
        account_cache_size=settings.aggregate_cache_size,
    )
    created: dict[str, str] = {}
    if api_keys is None:
        api_keys, created = keys_from_settings(settings)
    container = Container(
        settings=settings, store=store, ledger=ledger, api_keys=api_keys, created_keys=created
    )
    if with_projections:
        from services.audit.wiring import attach as attach_audit
        from services.projections.wiring import attach as attach_projections

        attach_projections(container)
        attach_audit(container)
    return container
