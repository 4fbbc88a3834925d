"""Many accounts from the store at once (issue 14: "a batch loads all its uncached
accounts in one query").

`load` reads the accounts' snapshots in one query and the events after each snapshot (or
all the events of an account without one) in one more, both in one read unit; then each
account is its snapshot brought up to date with its events, as `snapshots.restore` and
the library's `Repository.get` build it one account at a time (a query an account: a
batch of 1,000 uncached customers made 1,001 of them). `tests/integration/
test_snapshots.py` checks it against the library's replay, account by account.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from eventsourcing.application import Repository
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder

from .reads import in_memory_index
from .snapshots import NotAnAccount, Snapshots, loads

log = logging.getLogger(__name__)

SQLITE_CHUNK = 400  # accounts per statement on SQLite (two bound parameters each)


def load(
    repository: Repository[UUID], snapshots: Snapshots | None, account_ids: Iterable[UUID]
) -> dict[UUID, Any]:
    """The stored accounts among `account_ids` (an id the store has no event of is left
    out), each from its snapshot if this code took one, and the events after it."""
    ids = list(dict.fromkeys(account_ids))
    if not ids:
        return {}
    bases: dict[UUID, Any] = {}
    for account_id, (version, state) in (snapshots.latest(ids) if snapshots else {}).items():
        try:
            account = loads(state)
            if getattr(account, "id", None) != account_id or account.version != version:
                raise NotAnAccount(f"the snapshot of {account_id} holds another account")
            bases[account_id] = account
        except Exception:  # not one the code can read: the events are the record
            log.warning("snapshot of %s unreadable; replaying", account_id, exc_info=True)
    after = {i: bases[i].version if i in bases else 0 for i in ids}
    stored = _events_after(repository, after)
    mapper = repository.event_store.mapper
    found: dict[UUID, Any] = {}
    for account_id in ids:
        events = [mapper.to_domain_event(e) for e in stored.get(account_id, ())]
        account = project(bases.get(account_id), events)
        if account is not None:
            found[account_id] = account
    return found


def project(account: Any, events: Iterable[Any]) -> Any:
    """The library's `project_aggregate` without its `assert isinstance(event,
    CanMutateProtocol)`: a runtime-checkable protocol costs ~20 us an event on Python 3.11
    (typing's `_get_protocol_attrs`), up to half of a replay's time; each event here is
    one the mapper made of a stored domain event, which has `mutate`."""
    for event in events:
        account = event.mutate(account)
    return account


def _events_after(
    repository: Repository[UUID], after: dict[UUID, int]
) -> dict[UUID, list[StoredEvent]]:
    """Each account's stored events with a version above `after[id]`, in version order."""
    recorder: Any = repository.event_store.recorder
    if in_memory_index(recorder) is not None:  # the in-memory store: no query to save
        return {i: recorder.select_events(i, gt=v or None) for i, v in after.items()}
    table = recorder.events_table_name
    columns = "e.originator_id, e.originator_version, e.topic, e.state"
    order = "ORDER BY e.originator_id, e.originator_version"
    rows: list[Any] = []
    if isinstance(recorder, PostgresApplicationRecorder):
        with recorder.datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT {columns} FROM unnest(%s::uuid[], %s::bigint[]) AS w(id, after) "
                f"JOIN {table} e ON e.originator_id = w.id AND e.originator_version > w.after "
                f"{order}",
                (list(after), list(after.values())),
            )
            rows = curs.fetchall()
    else:
        items = list(after.items())
        with recorder.datastore.transaction(commit=False) as curs:  # one read snapshot
            for start in range(0, len(items), SQLITE_CHUNK):
                chunk = items[start : start + SQLITE_CHUNK]
                values = ",".join(["(?, ?)"] * len(chunk))
                curs.execute(
                    f"WITH w(id, after) AS (VALUES {values}) SELECT {columns} FROM w "
                    f"JOIN {table} e ON e.originator_id = w.id "
                    f"AND e.originator_version > w.after {order}",
                    [p for i, v in chunk for p in (i.hex, v)],
                )
                rows += curs.fetchall()
    found: dict[UUID, list[StoredEvent]] = {}
    for row in rows:
        originator_id = UUID(str(row["originator_id"]))
        found.setdefault(originator_id, []).append(
            StoredEvent(
                originator_id=originator_id,
                originator_version=row["originator_version"],
                topic=row["topic"],
                state=bytes(row["state"]),
            )
        )
    return found
