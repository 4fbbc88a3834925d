"""Out of order (SPEC §8): a follow-up that arrives before its original is parked, not
refused, and applied with the original, in the same transaction, when that arrives.

A follow-up is an event that names an `original_event_id` (refund, redemption cancel). It
is parked when its command refuses it as `unknown-original-event` and the ledger holds no
verdict at all for that event id (were the original stored, refused or for another
customer, the refusal stands), and while it is younger than `park_days` (by its
`occurred_at`). Parking writes two things in the batch's one append:

- an `IntakeRecord.Parked` (the event as received, where it came from): a repeat answers
  `parked`, a restart loses nothing;
- a `FollowUpParked` event on the customer's account, the index by original event id.
  Being on the account makes parking and the original's arrival race on the account's
  version: whichever writer loses is re-run on fresh state and sees the other, so no
  follow-up is left waiting for an original that was recorded meanwhile.

When an event is accepted, what waits for it on the account is applied right after it, in
`occurred_at` order, each followed by a `FollowUpReleased`; its intake record gets its
final verdict (`ParkedApplied` with the effect, or `ParkedRefused`). The sweep refuses
what waited past `park_until` with `unknown-original-event` (`expire_parked`), as does an
original that comes too late.

`ParkedIndex` lists what waits (`GET /v1/admin/parked`, the sweep's candidates) from the
two account events' topics, read incrementally from the notification log.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson
from eventsourcing.persistence import ApplicationRecorder

from services.ledger.application.commands import RulesAt, apply_pos_event
from services.ledger.application.outcomes import Outcome, Verdict
from services.ledger.domain import errors, topics
from services.ledger.domain.account import CustomerAccount, Effect
from services.ledger.domain.account.parking import APPLIED, EXPIRED, REFUSED, ParkedFollowUp
from services.ledger.domain.clock import parse_ts
from services.ledger.domain.commands import PosCommand
from services.ledger.domain.intake import IntakeRecord
from services.ledger.domain.rules import ProgramRules

if TYPE_CHECKING:
    from services.ledger.application.accounts import Accounts

FOLLOW_UP_FIELD = "original_event_id"
PARKED_TOPICS = (topics.ACCOUNT_EVENTS["FollowUpParked"], topics.ACCOUNT_EVENTS["FollowUpReleased"])


def expired_refusal(event_id: str, original_event_id: str, park_until: str) -> errors.LedgerError:
    return errors.UnknownOriginalEvent(
        f"event {event_id!r} waited for its original {original_event_id!r} until "
        f"{park_until} (park_days), and it never came",
        field=FOLLOW_UP_FIELD,
    )


def may_park(
    command: PosCommand,
    refusal: errors.LedgerError,
    known: Callable[[UUID], bool],
    rules: ProgramRules,
    now: datetime,
) -> bool:
    """Park this refused follow-up? Only when its original is unknown to the ledger (no
    verdict of any kind for its event id: `known` says whether an intake id is stored or
    in this batch) and it is still within `park_days` of its `occurred_at`."""
    original = command.original
    if original is None or not isinstance(refusal, errors.UnknownOriginalEvent):
        return False
    if known(IntakeRecord.create_id(original)):
        return False
    return command.occurred_at + timedelta(days=rules.park_days) >= now


@dataclass
class Release:
    """One released follow-up: its event id and its final outcome."""

    event_id: str
    customer_id: str
    status: str  # "accepted" or "rejected"
    effect: Effect = field(default_factory=dict)
    error: errors.LedgerError | None = None


def release_waiting(
    account: CustomerAccount,
    original_event_id: str,
    accounts: Accounts,
    documents: dict[str, dict[str, Any]],
    rules: ProgramRules,
    rules_at: RulesAt,
    now: datetime,
) -> list[Release]:
    """Apply what waits on `account` for `original_event_id` (just accepted), in
    `occurred_at` order; `documents` are the parked events as received, by event id."""
    released: list[Release] = []
    for parked in account.parked_for(original_event_id):
        released.append(_release_one(account, parked, accounts, documents, rules, rules_at, now))
    return released


def _release_one(
    account: CustomerAccount,
    parked: ParkedFollowUp,
    accounts: Accounts,
    documents: dict[str, dict[str, Any]],
    rules: ProgramRules,
    rules_at: RulesAt,
    now: datetime,
) -> Release:
    customer_id = account.customer_id
    if parse_ts(parked.park_until) < now:  # the sweep had not come round to it yet
        account.release_follow_up(parked.event_id, EXPIRED, now)
        accounts.touch(account)
        error = expired_refusal(parked.event_id, parked.original_event_id, parked.park_until)
        return Release(parked.event_id, customer_id, "rejected", error=error)
    try:
        effect = apply_pos_event(documents[parked.event_id], accounts, rules, rules_at, now)
    except errors.LedgerError as refusal:
        account.release_follow_up(parked.event_id, REFUSED, now)
        accounts.touch(account)
        return Release(parked.event_id, customer_id, "rejected", error=refusal)
    account.release_follow_up(parked.event_id, APPLIED, now)
    accounts.touch(account)
    return Release(parked.event_id, customer_id, "accepted", effect=effect)


def refuse_waiting(
    account: CustomerAccount,
    original_event_id: str,
    refusal: errors.LedgerError,
    accounts: Accounts,
    now: datetime,
) -> list[Release]:
    """The original was refused (finally): what waited for it is refused now."""
    released = []
    for parked in account.parked_for(original_event_id):
        account.release_follow_up(parked.event_id, REFUSED, now)
        accounts.touch(account)
        error = errors.UnknownOriginalEvent(
            f"its original {original_event_id!r} was refused ({refusal.slug})",
            field=FOLLOW_UP_FIELD,
        )
        released.append(Release(parked.event_id, account.customer_id, "rejected", error=error))
    return released


def expire_parked(account: CustomerAccount, now: datetime) -> list[Release]:
    """The sweep's part: refuse what waited on `account` past its `park_until`."""
    released = []
    for parked in account.parked_due(now):
        account.release_follow_up(parked.event_id, EXPIRED, now)
        error = expired_refusal(parked.event_id, parked.original_event_id, parked.park_until)
        released.append(Release(parked.event_id, account.customer_id, "rejected", error=error))
    return released


def final_verdict(record: IntakeRecord, release: Release) -> None:
    """A stored parked record's final verdict, after its release."""
    if release.error is not None:
        record.refused_after_parking(release.error)
    else:
        record.applied(release.effect)


def verdict_of(
    record: IntakeRecord.Parked, release: Release
) -> IntakeRecord.Accepted | IntakeRecord.Refused:
    """The record of a follow-up parked and released by the same batch: its verdict."""
    if release.error is not None:
        return IntakeRecord.refused(
            event_id=record.event_id,
            customer_id=record.customer_id,
            type=record.type,
            fingerprint=record.fingerprint,
            document=record.document,
            error=release.error,
            source=record.source,
        )
    return IntakeRecord.accepted(
        event_id=record.event_id,
        customer_id=record.customer_id,
        type=record.type,
        fingerprint=record.fingerprint,
        document=record.document,
        effect=release.effect,
    )


@dataclass(frozen=True)
class ParkedItem:
    position: int
    event_id: str
    customer_id: str
    type: str
    original_event_id: str
    occurred_at: str
    park_until: str

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            "type": self.type,
            "original_event_id": self.original_event_id,
            "occurred_at": self.occurred_at,
            "park_until": self.park_until,
        }


class ParkedIndex:
    """What waits now, folded from `FollowUpParked` / `FollowUpReleased` as stored: the
    first use reads the log once, each later one only what was appended since."""

    PAGE = 10_000

    def __init__(self, recorder: ApplicationRecorder) -> None:
        self.recorder = recorder
        self.position = 0
        self.items: dict[str, ParkedItem] = {}
        self._lock = threading.Lock()

    def refresh(self) -> dict[str, ParkedItem]:
        with self._lock:
            self._refresh()
            return dict(self.items)

    def _refresh(self) -> None:
        """Fold what was appended since the last look (the caller holds the lock)."""
        stop = self.recorder.max_notification_id() or 0
        while self.position < stop:
            found = self.recorder.select_notifications(
                start=self.position + 1, limit=self.PAGE, stop=stop, topics=PARKED_TOPICS
            )
            for notification in found:
                self._apply(notification.id, notification.topic, notification.state)
            self.position = stop if len(found) < self.PAGE else found[-1].id

    def _apply(self, position: int, topic: str, state: bytes) -> None:
        data = orjson.loads(state)
        if topic == PARKED_TOPICS[0]:
            self.items[data["event_id"]] = ParkedItem(
                position,
                data["event_id"],
                data["customer_id"],
                data["type"],
                data["original_event_id"],
                data["occurred_at"],
                data["park_until"],
            )
        else:
            self.items.pop(data["event_id"], None)

    def due_customers(self, now: datetime) -> list[str]:
        """The customers with a follow-up that waited past its `park_until` by `now`."""
        return sorted(
            {i.customer_id for i in self.refresh().values() if parse_ts(i.park_until) < now}
        )

    def page(self, after_position: int, limit: int) -> tuple[list[ParkedItem], int | None, int]:
        """What waits, in the order it was parked, after `after_position`; the cursor of
        the next page (None: this was the last); the store position it reflects."""
        with self._lock:
            self._refresh()
            position = self.position
            items = sorted(
                (i for i in self.items.values() if i.position > after_position),
                key=lambda i: i.position,
            )
        page = items[:limit]
        return page, (page[-1].position if len(items) > limit else None), position


@dataclass(frozen=True)
class LateRefusal:
    """A parked Kafka message refused after its batch was committed: it still owes the
    dead letter its message did not get then."""

    event_id: str
    source: dict[str, Any]  # {"topic", "partition", "offset"}
    refusal: dict[str, Any]  # {"slug", "detail", "field"}
    document: dict[str, Any]
    refused_at: datetime | None = None  # the refusal's stored timestamp (wall clock)


LATE_TOPICS = tuple(
    topics.INTAKE_EVENTS[name] for name in ("Parked", "ParkedRefused", "LateDeadLettered")
)


class LateRefusals:
    """The late refusals not dead-lettered yet, folded from the intake records' Parked,
    ParkedRefused and LateDeadLettered events as stored (incrementally, as `ParkedIndex`)."""

    PAGE = 10_000

    def __init__(self, recorder: ApplicationRecorder) -> None:
        self.recorder = recorder
        self.position = 0
        # by originator id (text: the stores give a UUID or its text)
        self._parked: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}
        self.owed: dict[str, LateRefusal] = {}
        self._lock = threading.Lock()

    def refresh(self) -> list[LateRefusal]:
        with self._lock:
            stop = self.recorder.max_notification_id() or 0
            while self.position < stop:
                found = self.recorder.select_notifications(
                    start=self.position + 1, limit=self.PAGE, stop=stop, topics=LATE_TOPICS
                )
                for notification in found:
                    self._apply(
                        str(notification.originator_id), notification.topic, notification.state
                    )
                self.position = stop if len(found) < self.PAGE else found[-1].id
            return sorted(
                self.owed.values(), key=lambda r: (r.source["partition"], r.source["offset"])
            )

    def _apply(self, originator_id: str, topic: str, state: bytes) -> None:
        data = orjson.loads(state)
        if topic == LATE_TOPICS[0]:
            if data.get("source") is not None:  # from Kafka
                self._parked[originator_id] = (data["event_id"], data["source"], data["document"])
        elif topic == LATE_TOPICS[1]:
            parked = self._parked.pop(originator_id, None)
            if parked is not None:
                event_id, source, document = parked
                self.owed[originator_id] = LateRefusal(
                    event_id, source, data["refusal"], document, _timestamp(data)
                )
        else:
            self._parked.pop(originator_id, None)
            self.owed.pop(originator_id, None)


def release(
    repository: Any,
    rules_at: RulesAt,
    command: PosCommand,
    accounts: Accounts,
    new: dict[UUID, Verdict],
    late: dict[UUID, IntakeRecord],
    at: dict[UUID, int],
    outcomes: list[Outcome],
    rules: ProgramRules,
    now: datetime,
    refusal: errors.LedgerError | None = None,
) -> list[str]:
    """Apply what waited for the accepted `command` (SPEC §8 "Out of order"), or refuse
    it when it was refused (`refusal`: a refusal is final, so its follow-ups need
    not wait); the ids of the follow-ups applied. A follow-up parked earlier in this
    batch gets its final record at once, and its outcome in this batch says so."""
    account = accounts.get(command.customer_id)
    waiting = account.parked_for(command.event_id)
    if not waiting:
        return []
    documents: dict[str, dict[str, Any]] = {}
    records: dict[str, IntakeRecord | IntakeRecord.Parked] = {}
    for parked in waiting:
        intake_id = IntakeRecord.create_id(parked.event_id)
        in_batch = new.get(intake_id)
        record: IntakeRecord | IntakeRecord.Parked = (
            in_batch
            if isinstance(in_batch, IntakeRecord.Parked)
            else late.get(intake_id) or repository.get(intake_id)
        )
        records[parked.event_id] = record
        documents[parked.event_id] = record.document
    applied = []
    releases = (
        refuse_waiting(account, command.event_id, refusal, accounts, now)
        if refusal is not None
        else release_waiting(account, command.event_id, accounts, documents, rules, rules_at, now)
    )
    for release in releases:
        record = records[release.event_id]
        intake_id = IntakeRecord.create_id(release.event_id)
        if isinstance(record, IntakeRecord.Parked):  # parked by this very batch
            new[intake_id] = verdict_of(record, release)
            outcomes[at[intake_id]] = Outcome(
                release.event_id,
                "accepted" if release.error is None else "rejected",
                effect=release.effect,
                error=release.error,
                customer_id=release.customer_id,
            )
        else:
            final_verdict(record, release)
            late[intake_id] = record
        if release.error is None:
            applied.append(release.event_id)
    return applied


def _timestamp(state: dict[str, Any]) -> datetime | None:
    """A stored event's `timestamp`, as the library's transcoder writes a datetime."""
    value = state.get("timestamp")
    if isinstance(value, dict):
        value = value.get("_data_")
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
