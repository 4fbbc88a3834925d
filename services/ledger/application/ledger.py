"""The ledger application: the unit of work of the write side.

Every path that changes the ledger goes through `record_batch`: the HTTP API (one event
or a batch) and the Kafka consumer (one poll). A batch loads each customer account once,
applies the events in order, and saves every touched account together with one
`IntakeRecord` per judged event (accepted or refused) in ONE transaction, so a batch of
500 costs one table lock and one commit, not 500 (the PostgreSQL recorder locks the
events table on every insert).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError

from services.infrastructure.keys import MemoryKeyring
from services.infrastructure.store import max_position, positions_of, versions_of
from services.ledger.adapters.eventstore import TRANSCODER_TOPIC, loads, snapshots
from services.ledger.adapters.eventstore.snapshots import Snapshots
from services.ledger.adapters.eventstore.writes import append
from services.ledger.application import parking
from services.ledger.application.accounts import AccountCache, Accounts
from services.ledger.application.campaigns import CampaignAdmin
from services.ledger.application.commands import apply_command
from services.ledger.application.decisions import AdminDecisions
from services.ledger.application.outcomes import Outcome, repeat_of
from services.ledger.application.program_admin import SAVE_ATTEMPTS, ProgramAdmin
from services.ledger.application.sweeps import Sweeps
from services.ledger.domain import errors
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.clock import utcnow
from services.ledger.domain.commands import Document, PosCommand, RecordPurchase, command_of
from services.ledger.domain.effects import FollowUpsApplied, Parked
from services.ledger.domain.intake import IntakeRecord, fingerprint
from services.ledger.domain.privacy import Keyring
from services.ledger.domain.receipts import ReceiptRecord
from services.ledger.domain.rules import ProgramRules

T = TypeVar("T")
log = logging.getLogger(__name__)

# A batch that loses a race is re-run; a campaign's budget is one aggregate shared by all
# its customers (SPEC §9), so batches of different customers race for it too: they get
# more tries, and a caller with nothing better to do can ask for more (`patience`). Waits
# between tries are random up to a doubling bound (RETRY_WAIT_MAX at most), so two losers
# stop meeting.
BATCH_ATTEMPTS = 12
RETRY_WAIT_MAX = 0.25


class Ledger(CampaignAdmin, ProgramAdmin, Sweeps, AdminDecisions, Application[UUID]):
    name = "Ledger"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        rules: ProgramRules | None = None,
        account_cache_size: int = 20_000,
        rules_file_hash: str | None = None,
        account_cache_events: int = 500_000,
        keys: Keyring | None = None,
    ):
        try:
            # The stored states' encoder, through the library's setting (the library's
            # `construct_transcoder` builds it and registers the transcodings).
            super().__init__({**(env or {}), "TRANSCODER_TOPIC": TRANSCODER_TOPIC})
            self._write_lock = threading.RLock()
            # The customers' keys (SPEC §11): their own table in the store (bootstrap), or in
            # memory with the in-memory store.
            self.keys: Keyring = keys if keys is not None else MemoryKeyring()
            self._accounts = AccountCache(account_cache_size, account_cache_events)
            if self.snapshots is not None or self.repository.cache is not None:
                raise ValueError("the ledger's writes take no library snapshots, no library cache")
            # The ledger's own account snapshots (adapters/snapshots.py), not the library's.
            self._snapshots = Snapshots.of(self.recorder)
            self._rules = self._start_program(rules or ProgramRules(), rules_file_hash)
            self.parked = parking.ParkedIndex(self.recorder)
            self.late_refusals = parking.LateRefusals(self.recorder)
        except BaseException:
            if getattr(self, "factory", None) is not None:
                self.factory.close()  # a store that stopped answering: no pool left behind
            raise

    # ---- reading the write model ---------------------------------------------------------
    def find_account(self, customer_id: str) -> CustomerAccount | None:
        return self._load([customer_id]).get(customer_id)

    def drop_snapshot(self, customer_id: str) -> None:
        """Forget the account's snapshot (an erasure: it is a copy of the state)."""
        if self._snapshots is not None:
            self._snapshots.delete(CustomerAccount.create_id(customer_id))

    def _load(self, customer_ids: list[str]) -> dict[str, CustomerAccount | None]:
        """Accounts from the store, all in two queries: their snapshots and the events
        after them, or all their events (adapters/eventstore/loads.py)."""
        ids = {customer_id: CustomerAccount.create_id(customer_id) for customer_id in customer_ids}
        found = loads.load(self.repository, self._snapshots, ids.values())
        return {customer_id: found.get(account_id) for customer_id, account_id in ids.items()}

    def load_accounts(self, customer_ids: list[str]) -> dict[str, CustomerAccount | None]:
        """Many accounts at once: one version query, then only the stale or uncached load."""
        ids = {customer_id: CustomerAccount.create_id(customer_id) for customer_id in customer_ids}
        versions = versions_of(self.recorder, ids.values())
        found: dict[str, CustomerAccount | None] = {}
        missing: list[str] = []
        for customer_id, account_id in ids.items():
            version = versions.get(account_id)
            cached = self._accounts.get(customer_id, version) if version is not None else None
            found[customer_id] = cached
            if version is not None and cached is None:
                missing.append(customer_id)
        found.update(self._load(missing))
        return found

    def account(self, customer_id: str) -> CustomerAccount:
        account = self.find_account(customer_id)
        if account is None:
            raise errors.UnknownCustomer(f"customer {customer_id!r} is not known to the ledger")
        return account

    @property
    def rules(self) -> ProgramRules:
        return self._rules

    def position(self) -> int:
        return max_position(self.recorder)

    # ---- POS events -----------------------------------------------------------------------
    def record(self, document: PosCommand | Document) -> Outcome:
        return self.record_batch([document])[0]

    def record_batch(
        self,
        events: Sequence[PosCommand | Document],
        sources: Sequence[dict[str, Any] | None] | None = None,
        *,
        patience: float = 0.0,
    ) -> list[Outcome]:
        """Record POS commands in order, all of them in one transaction. The intake
        (`application/intake.py`) hands commands built at the edge; a document checked
        before (an import line, a test's event) becomes its command here.

        A rule refusal rejects only that event, and is recorded: a repeat of a stored
        `event_id` gets the verdict it got the first time, `duplicate` of an acceptance
        or the same refusal (same content), or `event-id-conflict` (other content), and
        changes nothing. `sources` (one per event) say where each came from, kept with
        a refusal. If another writer saved an account or an event_id concurrently, the
        whole batch is re-run against the fresh state: so an identical retry racing its
        original is answered `duplicate`, never refused by the original's own effect.
        A batch that keeps losing is tried BATCH_ATTEMPTS times and for `patience`
        seconds, whichever is longer, then raises the store's IntegrityError.
        """
        commands = [e if isinstance(e, PosCommand) else command_of(e) for e in events]
        with self._write_lock:
            return self._retrying(
                lambda: self._record_batch_once(commands, sources),
                attempts=BATCH_ATTEMPTS,
                patience=patience,
            )

    def _record_batch_once(
        self,
        commands: Sequence[PosCommand],
        sources: Sequence[dict[str, Any] | None] | None,
    ) -> list[Outcome]:
        rules = self.refresh_rules()
        now = utcnow()
        intake_ids = [IntakeRecord.create_id(c.event_id) for c in commands]
        originals = {IntakeRecord.create_id(c.original) for c in commands if c.original}
        purchases = [c for c in commands if isinstance(c, RecordPurchase)]
        receipts = {ReceiptRecord.create_id(c.store_id, c.receipt_id) for c in purchases}
        stored = positions_of(self.recorder, set(intake_ids) | originals | receipts)
        accounts = Accounts(self)
        accounts.receipts_stored = receipts & set(stored)
        accounts.preload(
            c
            for command in commands
            for c in (command.customer_id, getattr(command, "referrer_id", None))
            if c
        )
        accounts.sealer.prepare(c.document for c in commands)
        if purchases:
            accounts.campaigns = self.campaign_book() or None
        new: dict[UUID, parking.Verdict] = {}
        late: dict[UUID, IntakeRecord] = {}  # stored parked records released by this batch
        outcomes: list[Outcome] = []
        at: dict[UUID, int] = {}  # this batch's outcome of each new record

        def known(intake: UUID) -> bool:
            return intake in stored or intake in new or intake in late

        for n, (command, intake_id) in enumerate(zip(commands, intake_ids, strict=True)):
            doc = command.document
            event_id, customer_id, kind = command.event_id, command.customer_id, doc["type"]
            print_ = fingerprint(doc)
            earlier = (
                new.get(intake_id)
                or late.get(intake_id)
                or (self.repository.get(intake_id) if intake_id in stored else None)
            )
            if earlier is not None:
                position = stored.get(intake_id)
                if getattr(earlier, "original_event_id", None) and isinstance(
                    earlier, IntakeRecord
                ):
                    # Applied after its original: that batch's position covers its effect.
                    original = IntakeRecord.create_id(earlier.original_event_id)
                    position = stored.get(original, position) if not earlier.parked else position
                outcomes.append(repeat_of(earlier, print_, position))
                continue
            source = sources[n] if sources else None
            try:
                effect = apply_command(command, accounts, rules, self.rules_at, now)
            except errors.LedgerError as refusal:
                # A refused event changed no account (the commands check before they
                # trigger events), so only its record (and a parking) is saved.
                if command.original and parking.may_park(command, refusal, known, rules, now):
                    account = accounts.get(customer_id)
                    account.park_follow_up(
                        event_id=event_id,
                        type=kind,
                        original_event_id=command.original,
                        occurred_at=command.occurred_at,
                        park_days=rules.park_days,
                    )
                    accounts.touch(account)
                    new[intake_id] = IntakeRecord.parked_record(
                        event_id=event_id,
                        customer_id=customer_id,
                        type=kind,
                        fingerprint=print_,
                        document=dict(doc),
                        original_event_id=command.original,
                        source=source,
                    )
                    at[intake_id] = len(outcomes)
                    outcomes.append(
                        Outcome(
                            event_id,
                            "parked",
                            effect=Parked(original_event_id=command.original),
                            customer_id=customer_id,
                        )
                    )
                    continue
                parking.release(
                    self.repository,
                    self.rules_at,
                    command,
                    accounts,
                    new,
                    late,
                    at,
                    outcomes,
                    rules,
                    now,
                    refusal,
                )
                new[intake_id] = IntakeRecord.refused(
                    event_id=event_id,
                    customer_id=customer_id,
                    type=kind,
                    fingerprint=print_,
                    document=accounts.sealer.document(doc),
                    error=refusal,
                    source=source,
                )
                outcomes.append(
                    Outcome(event_id, "rejected", error=refusal, customer_id=customer_id)
                )
                continue
            released = parking.release(
                self.repository,
                self.rules_at,
                command,
                accounts,
                new,
                late,
                at,
                outcomes,
                rules,
                now,
            )
            if released:
                effect = FollowUpsApplied(effect=effect, applied_follow_ups=released)
            new[intake_id] = IntakeRecord.accepted(
                event_id=event_id,
                customer_id=customer_id,
                type=kind,
                fingerprint=print_,
                document=accounts.sealer.document(doc),
                effect=effect.to_json(),
            )
            outcomes.append(Outcome(event_id, "accepted", effect=effect, customer_id=customer_id))
        if new or late:
            # Intake records go last, so each one's position is at or after every account
            # event of the batch: reading at that position sees the event's whole effect.
            touched = accounts.campaigns.touched.values() if accounts.campaigns else ()
            try:
                positions = self._save(
                    accounts,
                    *touched,
                    *accounts.receipts_used.values(),
                    *late.values(),
                    *new.values(),
                )
            except BaseException:
                self.forget_campaigns(accounts.campaigns)
                raise
            for outcome, intake_id in zip(outcomes, intake_ids, strict=True):
                if outcome.status != "rejected" and outcome.position is None:
                    outcome.position = positions.get(intake_id)
        return outcomes

    def _save(self, accounts: Accounts, *others: Any) -> dict[UUID, int]:
        """Save the touched accounts (and `others`) in one transaction; keep them cached
        only once they are stored, so the cache never holds unsaved changes. Returns the
        position of each saved aggregate's last event."""
        saved = [(a, a.version - len(a.pending_events)) for a in accounts.touched.values()]
        try:
            positions = self._append(*accounts.touched.values(), *others)
        except BaseException:
            self._accounts.forget(accounts.loaded)
            raise
        self._accounts.put(accounts.touched.values())
        if self._snapshots is not None:
            self._snapshots.take(a for a, before in saved if snapshots.due(before, a.version))
        return positions

    def _append(self, *objs: Any) -> dict[UUID, int]:
        """The library's `save` for every write of the ledger (POS events, ticks, admin
        decisions, the program's rules), without its per-event `Recording` and
        `Notification` objects (only positions are wanted). What else `save` does is off
        for the ledger: no snapshots, no library aggregate cache (the ledger keeps its
        own, checked against the store), no followers to notify."""
        return append(self.mapper, self.recorder, objs)  # adapters/eventstore/writes.py

    def _forget_cached_aggregates(self) -> None:
        self._accounts = AccountCache(self._accounts.maxsize, self._accounts.max_events)

    def late_dead_lettered(self, event_ids: Iterable[str], dead_letter_topic: str) -> None:
        """The consumer sent the dead letters these late refusals owed (SPEC §8)."""
        wanted = list(event_ids)

        def unit_of_work() -> None:
            records = []
            for event_id in wanted:
                record: IntakeRecord = self.repository.get(IntakeRecord.create_id(event_id))
                if not record.dead_lettered:
                    record.late_dead_lettered(dead_letter_topic)
                    records.append(record)
            if records:
                self._append(*records)

        with self._write_lock:
            self._retrying(unit_of_work)

    def _retrying(
        self,
        unit_of_work: Callable[[], T],
        attempts: int = SAVE_ATTEMPTS,
        *,
        patience: float = 0.0,
    ) -> T:
        """Run a unit of work; re-run it when a concurrent writer won (the store refused
        our append on its unique key). The losing unit's accounts were dropped from the
        cache by `_save`; the others are still checked against the store's versions
        before use, so the re-run reloads only what changed (with two consumers in a
        group, forgetting every account on each lost race cost more than the race).
        Any other error forgets every cached account.

        It gives up after `attempts` tries and `patience` seconds, whichever comes last;
        from the fourth try on it waits first, a random time up to a doubling bound, so
        that writers racing for one hot aggregate (a campaign's budget) stop meeting."""
        deadline = time.monotonic() + patience
        attempt = 0
        while True:
            attempt += 1
            try:
                return unit_of_work()
            except IntegrityError:
                if attempt >= attempts and time.monotonic() >= deadline:
                    self._forget_cached_aggregates()
                    raise
                if attempt >= SAVE_ATTEMPTS:
                    bound = min(RETRY_WAIT_MAX, 0.002 * 2 ** (attempt - SAVE_ATTEMPTS))
                    time.sleep(random.uniform(0, bound))
            except BaseException:
                self._forget_cached_aggregates()
                raise
