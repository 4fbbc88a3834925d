"""Account snapshots: a bounded cold start for a customer with a long history (issue 14).

Loading an account replays its events; a customer with 34,000 of them took 2.3 s after a
restart. The ledger now keeps, beside the events, the latest snapshot of each long
account: its whole state at a version, in the `account_snapshots` table of the same store.
An account is rebuilt from its snapshot and the events after it, which are few.

A snapshot is a cache, never the truth:
- it is written after the events it covers are committed, in its own transaction; a lost
  or failed snapshot write only means a longer load next time;
- it is taken only of a state the store holds (an account just saved);
- it is keyed by `CODE`, a hash of the domain's source: a snapshot taken by other code
  (a new release, a changed rule of `apply`) is ignored, and replaced at the account's
  next snapshot, so a snapshot never carries state that today's handlers would not
  build from the same events;
- the events stay the record: `audit replay`, the hash chain and the export never read it.

The state is pickled (the account's own objects, as they are), and unpickled by an
`Unpickler` that builds only the account's types: classes defined in the domain package
and a short list of value types. A snapshot row written by someone with access to the
database can therefore build an account, never call anything else.

How often: when an account's version crosses a multiple of `step(version)`, a power of
two that grows with the account (1,024 up to 32,768 events, then 1/32 of the history):
the events replayed after a snapshot stay a small share, and the cost of writing one
(proportional to the state) stays a small share of the events it covers.
"""

from __future__ import annotations

import gc
import hashlib
import io
import logging
import pickle
import sys
from collections.abc import Iterable
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import Repository, project_aggregate
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder

from .postgres import SCHEMA_LOCK
from .reads import in_memory_index

log = logging.getLogger(__name__)

TABLE = "account_snapshots"
MIN_STEP = 1024
_DOMAIN = Path(__file__).resolve().parents[2] / "domain"


def _code(domain: Path = _DOMAIN) -> str:
    sources = sorted(domain.rglob("*.py"))
    if not sources:  # a hash of nothing would let snapshots outlive the code that took them
        raise RuntimeError(f"no domain sources under {domain} to key the snapshots with")
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.relative_to(domain).as_posix().encode())
        digest.update(path.read_bytes())
    for name in ("eventsourcing", "sortedcontainers"):
        digest.update(f"{name}={package_version(name)}".encode())
    digest.update(f"python={sys.version_info[:2]} pickle={pickle.HIGHEST_PROTOCOL}".encode())
    return digest.hexdigest()[:32]


CODE = _code()


def step(version: int) -> int:
    """Events between two snapshots of an account at `version`."""
    return max(MIN_STEP, 1 << max(0, version.bit_length() - 6))


def due(before: int, after: int) -> bool:
    """A save that took the account from version `before` to `after` crossed a step."""
    size = step(after)
    return after >= MIN_STEP and after // size > before // size


# ---- the state, as bytes -----------------------------------------------------------------

_DOMAIN_PACKAGE = "services.ledger.domain."
_VALUE_TYPES = {
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("collections", "OrderedDict"),
    ("datetime", "date"),
    ("datetime", "datetime"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("decimal", "Decimal"),
    ("uuid", "UUID"),
    ("uuid", "SafeUUID"),
    ("sortedcontainers.sortedlist", "SortedList"),
    ("sortedcontainers.sortedlist", "SortedKeyList"),
    ("sortedcontainers.sorteddict", "SortedDict"),
}


class NotAnAccount(pickle.UnpicklingError):
    """The snapshot names something that is not one of the account's types."""


class _AccountUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _VALUE_TYPES:
            return super().find_class(module, name)
        if module.startswith(_DOMAIN_PACKAGE) and (name.isidentifier() or _nested(name)):
            found = super().find_class(module, name)
            if isinstance(found, type) and found.__module__ == module:
                return found
        raise NotAnAccount(f"{module}.{name} is not one of an account's types")


def _nested(name: str) -> bool:
    """`CustomerAccount.PurchaseRecorded`: a class inside a class (pickle allows dots)."""
    return all(part.isidentifier() for part in name.split(".")) and "." in name


def restore(repository: Repository[UUID], account_id: UUID, state: bytes, version: int) -> Any:
    """The account of snapshot `state` (at `version`) brought up to date with the events
    stored after it: what the library's `Repository._reconstruct_aggregate` does from a
    snapshot of its own (surface.py records it)."""
    account = loads(state)
    if getattr(account, "id", None) != account_id or getattr(account, "version", None) != version:
        raise NotAnAccount(f"the snapshot of {account_id} holds another account or version")
    later = repository.event_store.get(originator_id=account_id, gt=version)
    return project_aggregate(account, later)


def dumps(account: Any) -> bytes:
    return pickle.dumps(account, protocol=pickle.HIGHEST_PROTOCOL)


def loads(state: bytes) -> Any:
    """The account of a snapshot. The collector is off meanwhile: unpickling a long
    account makes ~400,000 objects (100,000 events), none of them garbage, and the
    collections they set off scanned the young ones again and again; one collection
    after it instead (0.20 -> 0.16 s for that account, bench/account_history.py)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _AccountUnpickler(io.BytesIO(state)).load()
    finally:
        if collecting:
            gc.enable()


# ---- the table -------------------------------------------------------------------------


class Snapshots:
    """The `account_snapshots` table of the ledger's store (none for the in-memory one)."""

    def __init__(self, recorder: ApplicationRecorder) -> None:
        self.recorder = recorder
        self.datastore: Any = recorder.datastore  # type: ignore[attr-defined]
        self.postgres = isinstance(recorder, PostgresApplicationRecorder)
        self.mark = "%s" if self.postgres else "?"
        kind = ("uuid", "bigint", "bytea") if self.postgres else ("TEXT", "INTEGER", "BLOB")
        with self.datastore.transaction(commit=True) as curs:
            if self.postgres:  # DDL one process at a time, as the event store's own
                curs.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            curs.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (originator_id {kind[0]} PRIMARY KEY, "
                f"version {kind[1]} NOT NULL, code TEXT NOT NULL, state {kind[2]} NOT NULL)"
            )

    @classmethod
    def of(cls, recorder: ApplicationRecorder) -> Snapshots | None:
        if in_memory_index(recorder) is not None or not hasattr(recorder, "datastore"):
            return None
        return cls(recorder)

    def _id(self, originator_id: UUID) -> Any:
        return originator_id if self.postgres else str(originator_id)

    def latest(self, originator_ids: Iterable[UUID]) -> dict[UUID, tuple[int, bytes]]:
        """Each account's snapshot taken by this code (`CODE`), in one query."""
        ids = list(originator_ids)
        if not ids:
            return {}
        marks = ", ".join([self.mark] * len(ids))
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT originator_id, version, state FROM {TABLE} "
                f"WHERE code = {self.mark} AND originator_id IN ({marks})",
                (CODE, *(self._id(i) for i in ids)),
            )
            rows = curs.fetchall()
        return {
            UUID(str(row["originator_id"])): (int(row["version"]), bytes(row["state"]))
            for row in rows
        }

    def put(self, originator_id: UUID, version: int, state: bytes) -> None:
        """Keep the newest: an older snapshot (a slower process) never replaces a newer
        one taken by the same code."""
        m = self.mark
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                f"INSERT INTO {TABLE} (originator_id, version, code, state) "
                f"VALUES ({m}, {m}, {m}, {m}) ON CONFLICT (originator_id) DO UPDATE SET "
                "version = excluded.version, code = excluded.code, state = excluded.state "
                f"WHERE {TABLE}.code <> excluded.code OR {TABLE}.version < excluded.version",
                (self._id(originator_id), version, CODE, state),
            )

    def delete(self, originator_id: UUID) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                f"DELETE FROM {TABLE} WHERE originator_id = {self.mark}",
                (self._id(originator_id),),
            )

    def take(self, accounts: Iterable[Any]) -> int:
        """Snapshot each of `accounts` (just saved, so what the store holds); how many. A
        failure is logged and forgotten: the next load replays a little more."""
        taken = 0
        for account in accounts:
            try:
                self.put(account.id, account.version, dumps(account))
                taken += 1
            except Exception:
                log.warning("snapshot of account %s not written", account.id, exc_info=True)
        return taken
