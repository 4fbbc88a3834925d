"""The event store adapter against the library's own path: one story told to a ledger
that takes every shortcut and to one that takes none, and the readers of the log.

`LibraryLedger` is the ledger on the library's path: `Application.save` instead of the
fast append, `JSONTranscoder` instead of orjson, and (given the library's environment)
the library's own recorders. With the library's clock frozen both ledgers must store the
same log, byte for byte, at the same positions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import eventsourcing.domain
import pytest
from eventsourcing.persistence import ApplicationRecorder, JSONTranscoder, Transcoder

from services.ledger.adapters.contract import validate_event
from services.ledger.application.ledger import Ledger, Outcome
from services.projections.source import LogReader

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
FROZEN = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class LibraryLedger(Ledger):
    """The ledger without the adapter's shortcuts."""

    def construct_transcoder(self) -> Transcoder:
        transcoder = JSONTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def _append(self, *objs: Any) -> dict[UUID, int]:
        recordings = self.save(*objs)
        return {r.notification.originator_id: r.notification.id for r in recordings}  # type: ignore[misc]


@contextmanager
def frozen_library_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every event the library timestamps gets the same timestamp (both ledgers alike)."""
    with monkeypatch.context() as patch:
        patch.setattr(eventsourcing.domain, "datetime_now_with_tzinfo", lambda: FROZEN)
        yield


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def pos(kind: str, customer: str, event_id: str, when: float, **fields: Any) -> dict[str, Any]:
    return validate_event(
        {
            "event_id": event_id,
            "type": kind,
            "customer_id": customer,
            "occurred_at": day(when).isoformat(),
            "store_id": "riga-1",
            "schema_version": 1,
            **fields,
        }
    )


def eur(value: str) -> dict[str, str]:
    return {"value": value, "currency": "EUR"}


def story(ledger: Ledger) -> list[Any]:
    """Every kind of write the ledger makes; returns every answer it gave."""
    answers: list[Any] = []
    answers += ledger.record_batch(
        [
            pos("purchase", "anna", "p1", 0, receipt_id="r-p1", amount=eur("120.00")),
            pos("referral", "boris", "ref1", 1, referrer_id="anna"),
            pos("purchase", "boris", "bp1", 2, receipt_id="r-bp1", amount=eur("40.00")),
            pos("review", "anna", "r1", 4, rating=10, touchpoint="sales"),
            pos("refund", "anna", "f1", 5, original_event_id="p1", amount=eur("30.00")),
            pos("redemption", "boris", "x0", 5, points=9000, reward_id="coffee"),  # refused
            pos("purchase", "anna", "p1", 0, receipt_id="r-p1", amount=eur("120.00")),  # repeat
        ],
        sources=[None] * 5 + [{"topic": "pos", "partition": 0, "offset": 5}, None],
    )
    answers.append(ledger.tick(day(17), ["anna", "boris"]))
    answers += ledger.record_batch(
        [
            pos("redemption", "anna", "x1", 18, points=600, reward_id="coffee"),
            pos("goodwill", "anna", "g1", 20, points=3000, reason_code="late", issued_by="ivan"),
        ]
    )
    answers.append(ledger.approve_goodwill("g1", approved_by="sam", decided_at=day(20.5)))
    answers.append(
        ledger.adjust(
            customer_id="boris",
            adjustment_id="adj-1",
            points=50_000,
            reason="migration",
            requested_by="ivan",
            occurred_at=day(21),
        )
    )
    answers.append(
        ledger.approve_adjustment(
            customer_id="boris", adjustment_id="adj-1", approved_by="sam", decided_at=day(21.5)
        )
    )
    answers.append(ledger.tick(day(400), ["anna", "boris"]))
    return [_comparable(answer) for answer in answers]


def _comparable(answer: Any) -> Any:
    if isinstance(answer, Outcome):
        error = answer.error
        return (answer.event_id, answer.status, answer.position, answer.effect, repr(error))
    return answer


def stored_log(recorder: ApplicationRecorder) -> list[tuple[int, UUID, int, str, bytes]]:
    """The whole log as the library reads it back."""
    return [
        (n.id, UUID(str(n.originator_id)), n.originator_version, n.topic, bytes(n.state))
        for n in recorder.select_notifications(start=1, limit=1_000_000)
    ]


def library_page(
    recorder: ApplicationRecorder, after: int, until: int, topics: Sequence[str]
) -> list[tuple[int, str, str, bytes]]:
    """What the log reader's page must hold, by the library's `select_notifications`."""
    if until <= after:
        return []
    return [
        (n.id, str(n.originator_id), n.topic, bytes(n.state))
        for n in recorder.select_notifications(
            start=after + 1, limit=until - after, stop=until, topics=topics
        )
    ]


def assert_log_reader_reads_what_the_library_reads(
    recorder: ApplicationRecorder, topics: Sequence[str]
) -> list[tuple[int, str, str, bytes]]:
    """Pages and states over several spans (empty, one, inside, at and past the end) are
    the library's; returns the whole log as the reader read it."""
    reader = LogReader(recorder, topics)
    top = reader.max_position()
    assert top > 20
    spans = [(0, top), (0, 1), (3, 9), (top - 5, top), (top, top + 10), (7, 7)]
    for after, until in spans:
        page = [(p, o, t, bytes(s)) for p, o, t, s in reader.page(after, until)]
        assert page == library_page(recorder, after, until, topics), (after, until)
    everything = library_page(recorder, 0, top, topics)
    positions = [p for p, _, _, _ in everything][::3]
    assert reader.states(positions) == {p: s for p, _, _, s in everything if p in positions}
    return everything
