"""Tamper evidence (SPEC §5): raw SQL edits of the stored events are caught at the right
position, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.audit.verify import ALTERED, ANCHOR, DELETED, INSERTED, Anchor, verify
from services.audit.wiring import Audit, attach
from services.bootstrap import Container
from tests.integration.audit_support import make_container, raw_events, record_history


@pytest.fixture
def chained(store_url: str, tmp_path: Path) -> Iterator[tuple[str, Container, Audit]]:
    container = make_container(store_url, tmp_path)
    record_history(container, 60)
    audit = attach(container)
    audit.follower.catch_up()
    yield store_url, container, audit
    container.close()


def positions(url: str, topic_part: str = "") -> list[int]:
    with raw_events(url) as (conn, table, pos):
        rows = conn.execute(
            f"SELECT {pos} FROM {table} WHERE topic LIKE ? ORDER BY {pos}", (f"%{topic_part}%",)
        ).fetchall()
    return [int(r[0]) for r in rows]


def state_at(url: str, position: int) -> bytes:
    with raw_events(url) as (conn, table, pos):
        row = conn.execute(f"SELECT state FROM {table} WHERE {pos} = ?", (position,)).fetchone()
    return bytes(row[0])


def check(audit: Audit, **kwargs: Any) -> tuple[bool, int | None, str | None]:
    result = verify(audit.recorder, audit.chain, **kwargs)
    return result.ok, result.first_broken_position, result.reason


def test_an_untouched_ledger_verifies(chained: tuple[str, Container, Audit]) -> None:
    url, container, audit = chained
    result = verify(audit.recorder, audit.chain)
    assert result.ok and result.first_broken_position is None
    assert result.checked == len(positions(url)) == container.ledger.position()
    assert result.head is not None and result.head.position == container.ledger.position()


def test_one_changed_state_byte_is_caught_at_its_position(
    chained: tuple[str, Container, Audit],
) -> None:
    url, _, audit = chained
    target = positions(url, "PurchaseRecorded")[5]
    state = bytearray(state_at(url, target))
    digit = state.index(b'"points":') + len(b'"points":')
    state[digit] = ord("9") if state[digit] != ord("9") else ord("8")
    with raw_events(url) as (conn, table, pos):
        conn.execute(f"UPDATE {table} SET state = ? WHERE {pos} = ?", (bytes(state), target))
    assert check(audit) == (False, target, ALTERED)


def test_a_deleted_row_is_caught_at_its_position(chained: tuple[str, Container, Audit]) -> None:
    url, _, audit = chained
    target = positions(url)[40]
    with raw_events(url) as (conn, table, pos):
        conn.execute(f"DELETE FROM {table} WHERE {pos} = ?", (target,))
    assert check(audit) == (False, target, DELETED)


def test_the_deleted_last_row_is_caught(chained: tuple[str, Container, Audit]) -> None:
    url, _, audit = chained
    last = positions(url)[-1]
    with raw_events(url) as (conn, table, pos):
        conn.execute(f"DELETE FROM {table} WHERE {pos} = ?", (last,))
    assert check(audit) == (False, last, DELETED)


def test_two_swapped_states_are_caught_at_the_first(chained: tuple[str, Container, Audit]) -> None:
    url, _, audit = chained
    first, second = positions(url, "PurchaseRecorded")[3], positions(url, "PurchaseRecorded")[9]
    a, b = state_at(url, first), state_at(url, second)
    with raw_events(url) as (conn, table, pos):
        conn.execute(f"UPDATE {table} SET state = ? WHERE {pos} = ?", (b, first))
        conn.execute(f"UPDATE {table} SET state = ? WHERE {pos} = ?", (a, second))
    assert check(audit) == (False, first, ALTERED)


def test_two_swapped_topics_are_caught_at_the_first(chained: tuple[str, Container, Audit]) -> None:
    url, _, audit = chained
    first = positions(url, "PointsRedeemed")[0]
    second = positions(url, "ReviewRecorded")[-1]
    with raw_events(url) as (conn, table, pos):
        topics = dict(
            conn.execute(
                f"SELECT {pos}, topic FROM {table} WHERE {pos} IN (?, ?)", (first, second)
            ).fetchall()
        )
        conn.execute(f"UPDATE {table} SET topic = ? WHERE {pos} = ?", (topics[second], first))
        conn.execute(f"UPDATE {table} SET topic = ? WHERE {pos} = ?", (topics[first], second))
    assert check(audit) == (False, min(first, second), ALTERED)


def test_an_event_missing_from_the_chain_is_caught(chained: tuple[str, Container, Audit]) -> None:
    url, _, audit = chained
    target = positions(url)[17]
    with audit.db.transaction() as cur:
        cur.execute("DELETE FROM audit_chain WHERE position = ?", (target,))
    assert check(audit) == (False, target, INSERTED)


def test_a_rewritten_chain_is_caught_by_the_anchor(chained: tuple[str, Container, Audit]) -> None:
    """Who can write both tables can edit an event and rechain everything after it: the
    chain verifies again, but no longer reaches the head published before."""
    url, _, audit = chained
    published = verify(audit.recorder, audit.chain).head
    assert published is not None
    target = positions(url, "PurchaseRecorded")[2]
    state = state_at(url, target).replace(b'"amount":"', b'"amount":"1')
    with raw_events(url) as (conn, table, pos):
        conn.execute(f"UPDATE {table} SET state = ? WHERE {pos} = ?", (state, target))
    with audit.db.transaction() as cur:
        cur.execute("DELETE FROM audit_chain WHERE position >= ?", (target,))
    audit.follower.catch_up()
    assert check(audit)[0] is True
    anchor = Anchor(published.position, published.link)
    assert check(audit, anchor=anchor) == (False, published.position, ANCHOR)


def test_new_events_are_reported_unchained_until_the_follower_runs(
    chained: tuple[str, Container, Audit],
) -> None:
    _, container, audit = chained
    record_history(container, 5, seed=99)
    result = verify(audit.recorder, audit.chain)
    assert result.ok and result.unchained > 0
    audit.follower.catch_up()
    after = verify(audit.recorder, audit.chain)
    assert after.ok and after.unchained == 0 and after.checked == result.checked + result.unchained
