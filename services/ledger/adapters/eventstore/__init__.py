"""The event store adapter: the ONE place that relies on the `eventsourcing` library's
private names, overridden internals or raw tables (pinned: `eventsourcing==9.5.6`).

The ledger uses the library's public API everywhere else. Where that cost too much
(docs/BENCHMARKS.md), a shortcut here does the same job as the library's own path, and
each has a differential test against that path (`tests/unit/test_eventstore_adapter.py`,
`tests/integration/test_eventstore_on_postgres.py`):

- `writes.append`: what `Application.save` stores, without its `Recording` objects
  (`Ledger._append`); `writes.creation_event`: what an aggregate's constructor puts in
  `collect_events()`, without the aggregate (`IntakeRecord.accepted` / `refused`).
- `transcoder.OrjsonTranscoder`: `JSONTranscoder`'s bytes, written by orjson; plugged in
  with the library's `TRANSCODER_TOPIC` setting.
- `sqlite.LedgerSQLiteFactory` / `postgres.LedgerPostgresFactory`: the library's
  factories with our recorders (stable SQLite positions; binary PostgreSQL batches),
  plugged in with the library's `PERSISTENCE_MODULE` setting (`store.StoreURL`).
- `reads`: plain-tuple cursors on the recorder's own connection (the projections' log
  reader) and the in-memory recorder's index.

`surface.SURFACE` lists every library name these rely on, with its signature as of the
pinned version; `tests/unit/test_eventstore_surface.py` (the upgrade canary) fails,
naming the name, when one changes. Upgrading the library: run it, re-read each named
name against the code here, then `python -m services.ledger.adapters.eventstore.surface`
prints the new record. Nothing outside this package may use a private library name.

This module imports nothing heavy: the domain imports `writes`.
"""

TRANSCODER_TOPIC = "services.ledger.adapters.eventstore.transcoder:OrjsonTranscoder"
SQLITE_FACTORY_TOPIC = "services.ledger.adapters.eventstore.sqlite:LedgerSQLiteFactory"
POSTGRES_FACTORY_TOPIC = "services.ledger.adapters.eventstore.postgres:LedgerPostgresFactory"
