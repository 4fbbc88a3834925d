"""The ledger application: the unit of work of the write side.

Every path that changes the ledger goes through `record_batch`: the HTTP API (one event
or a batch) and the Kafka consumer (one poll). A batch loads each customer account once,
applies the events in order, and saves every touched account together with one
`IntakeRecord` per judged event (accepted or refused) in ONE transaction, so a batch of
500 costs one table lock and one commit, not 500 (the PostgreSQL recorder locks the
events table on every insert).
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Literal, TypeVar
from uuid import UUID, uuid4

import orjson
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from services.ledger.adapters.eventstore import TRANSCODER_TOPIC, snapshots
from services.ledger.adapters.eventstore.snapshots import Snapshots
from services.ledger.adapters.eventstore.writes import append
from services.ledger.adapters.keys import MemoryKeyring
from services.ledger.adapters.store import max_position, positions_of, versions_of
from services.ledger.application import parking
from services.ledger.application.campaigns import CampaignAdmin
from services.ledger.application.commands import apply_pos_event
from services.ledger.domain import errors
from services.ledger.domain.account import CustomerAccount, Effect
from services.ledger.domain.campaigns.engine import CampaignBook
from services.ledger.domain.clock import iso, utcnow
from services.ledger.domain.intake import IntakeRecord, fingerprint
from services.ledger.domain.privacy import Keyring, Sealer
from services.ledger.domain.program import Program, loosened
from services.ledger.domain.receipts import ReceiptRecord
from services.ledger.domain.rules import ProgramRules

T = TypeVar("T")
log = logging.getLogger(__name__)

PROGRAM_NAME = "default"
SAVE_ATTEMPTS = 3
# A batch that loses a race is re-run; a campaign's budget is one aggregate shared by all
# its customers (SPEC §9), so batches of different customers race for it too: they get
# more tries, a few milliseconds apart (jittered, so two losers do not meet again).
BATCH_ATTEMPTS = 12
SWEEP_ATTEMPTS_ALONE = 20  # one account's sweep, after its chunk lost every race


Status = Literal["accepted", "duplicate", "rejected", "parked"]


@dataclass
class Outcome:
    """What happened to one submitted event: the HTTP and Kafka answers are built from it.

    A `rejected` outcome with `repeat` set is a repeat of a refusal recorded earlier (the
    same verdict, not judged again); `first_source` is where that refusal's message came
    from (None: not from Kafka)."""

    event_id: str
    status: Status
    position: int | None = None
    effect: Effect = field(default_factory=dict)
    error: errors.LedgerError | None = None
    customer_id: str | None = None
    repeat: bool = False
    first_source: dict[str, Any] | None = None


@dataclass(frozen=True)
class RuleChange:
    """A rule change's answer: the rules in force, and the request when it waits."""

    rules: ProgramRules
    request_id: str | None = None
    loosened: list[str] = field(default_factory=list)


@dataclass
class TickResult:
    now: str
    recorded: list[Effect]
    position: int


class Accounts:
    """The accounts of one unit of work, each loaded once. Those the batch names up front
    are loaded together (`preload`); new ones are created on first touch and saved only
    if an accepted event touched them."""

    def __init__(self, app: Ledger) -> None:
        self._app = app
        self.loaded: dict[str, CustomerAccount] = {}
        self.touched: dict[str, CustomerAccount] = {}
        self.new: set[str] = set()
        # Personal fields are sealed on the way in, one key fetch per customer per batch.
        self.sealer = Sealer(app.keys)
        # The campaigns in force for the batch's purchases (SPEC §9; none: no campaigns).
        self.campaigns: CampaignBook | None = None

        # SPEC §8 "Receipts": the receipt records the store holds (of the batch's
        # purchases, looked up with its intake records) and those this batch creates.
        self.receipts_stored: set[UUID] = set()
        self.receipts_used: dict[UUID, ReceiptRecord.Used] = {}

    def receipt_used(self, store_id: str | None, receipt_id: str) -> bool:
        key = ReceiptRecord.create_id(store_id, receipt_id)
        return key in self.receipts_stored or key in self.receipts_used

    def use_receipt(
        self, store_id: str | None, receipt_id: str, customer_id: str, event_id: str
    ) -> None:
        record = ReceiptRecord.used(
            store_id=store_id, receipt_id=receipt_id, customer_id=customer_id, event_id=event_id
        )
        self.receipts_used[record.originator_id] = record

    def preload(self, customer_ids: Iterable[str]) -> None:
        wanted = [c for c in dict.fromkeys(customer_ids) if c not in self.loaded]
        for customer_id, account in self._app.load_accounts(wanted).items():
            self._add(customer_id, account)

    def _add(self, customer_id: str, account: CustomerAccount | None) -> CustomerAccount:
        if account is None:
            account = CustomerAccount(customer_id)
            self.new.add(customer_id)
        self.loaded[customer_id] = account
        return account

    def get(self, customer_id: str) -> CustomerAccount:
        account = self.loaded.get(customer_id)
        if account is None:
            account = self._add(customer_id, self._app.find_account(customer_id))
        return account

    def existing(self, customer_id: str) -> CustomerAccount | None:
        """The account if the ledger knows the customer (stored, or touched in this batch)."""
        account = self.get(customer_id)
        known = customer_id not in self.new or customer_id in self.touched
        return account if known else None

    def touch(self, *accounts: CustomerAccount) -> None:
        for account in accounts:
            self.touched[account.customer_id] = account


class AccountCache:
    """Recently used accounts, trusted only while their version is the store's.

    The batch path asks the store for the current versions of all its customers in one
    query and reuses a cached account whose version matches; any other is loaded afresh.
    A stale account can never be saved over newer events: the store's unique
    (originator_id, version) key refuses it and the batch is re-run.

    Bounded in accounts (`maxsize`) and in the events they hold (`max_events`, their
    versions summed): an account's memory grows with its history (~2 KB an event), so a
    count alone let a few long accounts take gigabytes. The least recently used go first;
    a long account pushed out loads again from its snapshot.
    """

    def __init__(self, maxsize: int, max_events: int = 500_000) -> None:
        self.maxsize = maxsize
        self.max_events = max_events
        self.events = 0  # the versions of the cached accounts, summed
        self._items: OrderedDict[str, CustomerAccount] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, customer_id: str, version: int) -> CustomerAccount | None:
        account = self._items.get(customer_id)
        if account is None or account.version != version:
            return None
        self._items.move_to_end(customer_id)
        return account

    def put(self, accounts: Iterable[CustomerAccount]) -> None:
        if self.maxsize <= 0:
            return
        for account in accounts:
            earlier = self._items.pop(account.customer_id, None)
            if earlier is not None:
                self.events -= earlier.version
            self._items[account.customer_id] = account
            self.events += account.version
        while self._items and (len(self._items) > self.maxsize or self.events > self.max_events):
            _, evicted = self._items.popitem(last=False)
            self.events -= evicted.version

    def forget(self, customer_ids: Iterable[str]) -> None:
        for customer_id in customer_ids:
            evicted = self._items.pop(customer_id, None)
            if evicted is not None:
                self.events -= evicted.version


class Ledger(CampaignAdmin, Application[UUID]):
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
        # The stored states' encoder, through the library's setting (the library's
        # `construct_transcoder` builds it and registers the transcodings).
        super().__init__({**(env or {}), "TRANSCODER_TOPIC": TRANSCODER_TOPIC})
        self._write_lock = threading.RLock()
        # The customers' keys (SPEC §11): their own table in the store (bootstrap), or in
        # memory with the in-memory store.
        self.keys: Keyring = keys if keys is not None else MemoryKeyring()
        self._accounts = AccountCache(account_cache_size, account_cache_events)
        if self.snapshots is not None or self.repository.cache is not None:
            raise ValueError("the ledger's writes (`_append`) take no snapshots, no library cache")
        # The ledger's own account snapshots (adapters/snapshots.py), not the library's.
        self._snapshots = Snapshots.of(self.recorder)
        self._rules = self._start_program(rules or ProgramRules(), rules_file_hash)
        self.parked = parking.ParkedIndex(self.recorder)
        self.late_refusals = parking.LateRefusals(self.recorder)

    # ---- reading the write model ---------------------------------------------------------
    def find_account(self, customer_id: str) -> CustomerAccount | None:
        return self._load([customer_id]).get(customer_id)

    def drop_snapshot(self, customer_id: str) -> None:
        """Forget the account's snapshot (an erasure: it is a copy of the state)."""
        if self._snapshots is not None:
            self._snapshots.delete(CustomerAccount.create_id(customer_id))

    def _load(self, customer_ids: list[str]) -> dict[str, CustomerAccount | None]:
        """Accounts from the store: from their snapshots (one query for all) and the
        events after them, or from all their events."""
        ids = {customer_id: CustomerAccount.create_id(customer_id) for customer_id in customer_ids}
        taken = self._snapshots.latest(ids.values()) if self._snapshots else {}
        found: dict[str, CustomerAccount | None] = {}
        for customer_id, account_id in ids.items():
            account: CustomerAccount | None = None
            if account_id in taken:
                version, state = taken[account_id]
                try:
                    account = snapshots.restore(self.repository, account_id, state, version)
                except Exception:  # not one the code can read: the events are the record
                    log.warning("snapshot of %s unreadable; replaying", account_id, exc_info=True)
                    account = None
            if account is None:
                try:
                    account = self.repository.get(account_id)
                except AggregateNotFoundError:
                    account = None
            found[customer_id] = account
        return found

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

    # ---- program rules ------------------------------------------------------------------
    def _start_program(self, rules: ProgramRules, file_hash: str | None) -> ProgramRules:
        """The program file's rules at start: the first version of a new program; later,
        a new version only when the file changed (its content hash, `file_hash`; without
        one, the hash of the rules themselves). A restart with an unchanged file keeps
        what an admin changed through the API (SPEC §8)."""
        file_hash = (
            file_hash
            or hashlib.sha256(
                orjson.dumps(rules.to_document(), option=orjson.OPT_SORT_KEYS)
            ).hexdigest()
        )
        program_id = Program.create_id(PROGRAM_NAME)
        for attempt in range(1, SAVE_ATTEMPTS + 1):
            try:
                program: Program = self.repository.get(program_id)
            except AggregateNotFoundError:
                # No hash yet: the program's rules are the file's, which is what a program
                # without a hash and with rules from the file means (`file_rules_to_record`).
                program = Program(PROGRAM_NAME, rules.to_document(), "program file")
            else:
                if program.file_rules_to_record(rules, file_hash):
                    program.change_rules(
                        rules,
                        changed_by="program file",
                        reason="program file changed",
                        file_hash=file_hash,
                    )
                elif program.file_hash != file_hash and (
                    program.file_hash is not None or rules != program.rules
                ):
                    # Remembered, so that this file is not taken again at the next start.
                    # A program from before file hashes whose rules are the file's needs
                    # no event: starting on it writes nothing.
                    program.read_file(file_hash)
            try:
                if program.pending_events:
                    self._append(program)
                break
            except IntegrityError:  # another instance started (or read the file) first
                if attempt == SAVE_ATTEMPTS:
                    raise
        self._program = program
        return program.rules

    def change_rules(
        self,
        rules: ProgramRules,
        *,
        changed_by: str,
        reason: str,
        requested_with_key: str | None = None,
        effective_from: datetime | None = None,
    ) -> RuleChange:
        """Apply new rules, in force for events from `effective_from` (default now, never
        in the past), or, when they loosen a control, record a request that waits for a
        second person (`approve_rule_change`, in force when approved)."""
        with self._write_lock:
            program: Program = self.repository.get(Program.create_id(PROGRAM_NAME))
            if loosened(program.rules, rules):
                request_id = f"rules-{uuid4().hex[:12]}"
                names = program.request_rule_change(
                    rules,
                    request_id=request_id,
                    requested_by=changed_by,
                    requested_with_key=requested_with_key,
                    reason=reason,
                )
                self._append(program)
                return RuleChange(program.rules, request_id=request_id, loosened=names)
            if program.change_rules(
                rules,
                changed_by=changed_by,
                reason=reason,
                effective_from=effective_from,
                changed_with_key=requested_with_key,
            ):
                self._append(program)
            self._program = program
            self._rules = program.rules
            return RuleChange(self._rules)

    def approve_rule_change(
        self, request_id: str, *, approved_by: str, approver_key: str | None = None
    ) -> ProgramRules:
        with self._write_lock:
            program: Program = self.repository.get(Program.create_id(PROGRAM_NAME))
            program.approve_rule_change(
                request_id, approved_by=approved_by, approver_key=approver_key
            )
            self._append(program)
            self._program = program
            self._rules = program.rules
            return self._rules

    def reject_rule_change(
        self,
        request_id: str,
        *,
        rejected_by: str,
        note: str | None,
        rejected_with_key: str | None = None,
    ) -> None:
        with self._write_lock:
            program: Program = self.repository.get(Program.create_id(PROGRAM_NAME))
            program.reject_rule_change(
                request_id, rejected_by=rejected_by, note=note, rejected_with_key=rejected_with_key
            )
            self._append(program)

    def pending_rule_changes(self) -> dict[str, dict[str, Any]]:
        """The rule changes waiting for a second person, by request id."""
        program: Program = self.repository.get(Program.create_id(PROGRAM_NAME))
        return {
            request_id: {
                "requested_by": request.requested_by,
                "reason": request.details["reason"],
                "loosened": request.details["loosened"],
                "rules": request.details["rules"],
            }
            for request_id, request in program._pending().items()
        }

    def refresh_rules(self) -> ProgramRules:
        program: Program = self.repository.get(Program.create_id(PROGRAM_NAME))
        self._program = program
        self._rules = program.rules
        return self._rules

    def rules_at(self, moment: datetime) -> ProgramRules:
        """The version in force at `moment` (as of the last `refresh_rules`)."""
        return self._program.rules_at(moment)

    # ---- POS events -----------------------------------------------------------------------
    def record(self, document: dict[str, Any]) -> Outcome:
        return self.record_batch([document])[0]

    def record_batch(
        self,
        documents: Sequence[dict[str, Any]],
        sources: Sequence[dict[str, Any] | None] | None = None,
    ) -> list[Outcome]:
        """Record validated POS events in order, all of them in one transaction.

        A rule refusal rejects only that event, and is recorded: a repeat of a stored
        `event_id` gets the verdict it got the first time, `duplicate` of an acceptance
        or the same refusal (same content), or `event-id-conflict` (other content), and
        changes nothing. `sources` (one per document) say where each came from, kept with
        a refusal. If another writer saved an account or an event_id concurrently, the
        whole batch is re-run against the fresh state: so an identical retry racing its
        original is answered `duplicate`, never refused by the original's own effect.
        """
        with self._write_lock:
            return self._retrying(
                lambda: self._record_batch_once(documents, sources), attempts=BATCH_ATTEMPTS
            )

    def _record_batch_once(
        self,
        documents: Sequence[dict[str, Any]],
        sources: Sequence[dict[str, Any] | None] | None,
    ) -> list[Outcome]:
        rules = self.refresh_rules()
        now = utcnow()
        intake_ids = [IntakeRecord.create_id(doc["event_id"]) for doc in documents]
        originals = {
            IntakeRecord.create_id(doc[parking.FOLLOW_UP_FIELD])
            for doc in documents
            if doc.get(parking.FOLLOW_UP_FIELD)
        }
        receipts = {
            ReceiptRecord.create_id(doc.get("store_id"), doc["receipt_id"])
            for doc in documents
            if doc["type"] == "purchase"
        }
        stored = positions_of(self.recorder, set(intake_ids) | originals | receipts)
        accounts = Accounts(self)
        accounts.receipts_stored = receipts & set(stored)
        accounts.preload(
            c for doc in documents for c in (doc["customer_id"], doc.get("referrer_id")) if c
        )
        accounts.sealer.prepare(documents)
        if any(doc["type"] == "purchase" for doc in documents):
            accounts.campaigns = self.campaign_book() or None
        new: dict[UUID, parking.Verdict] = {}
        late: dict[UUID, IntakeRecord] = {}  # stored parked records released by this batch
        outcomes: list[Outcome] = []
        at: dict[UUID, int] = {}  # this batch's outcome of each new record

        def known(intake: UUID) -> bool:
            return intake in stored or intake in new or intake in late

        for n, (doc, intake_id) in enumerate(zip(documents, intake_ids, strict=True)):
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
                outcomes.append(self._repeat_of(earlier, print_, position))
                continue
            source = sources[n] if sources else None
            try:
                effect = apply_pos_event(doc, accounts, rules, self.rules_at, now)
            except errors.LedgerError as refusal:
                # A refused event changed no account (the commands check before they
                # trigger events), so only its record (and a parking) is saved.
                if parking.may_park(doc, refusal, known, rules, now):
                    account = accounts.get(doc["customer_id"])
                    account.park_follow_up(
                        event_id=doc["event_id"],
                        type=doc["type"],
                        original_event_id=doc[parking.FOLLOW_UP_FIELD],
                        occurred_at=parking.occurred_at(doc),
                        park_days=rules.park_days,
                    )
                    accounts.touch(account)
                    new[intake_id] = IntakeRecord.parked_record(
                        event_id=doc["event_id"],
                        customer_id=doc["customer_id"],
                        type=doc["type"],
                        fingerprint=print_,
                        document=doc,
                        original_event_id=doc[parking.FOLLOW_UP_FIELD],
                        source=source,
                    )
                    at[intake_id] = len(outcomes)
                    outcomes.append(
                        Outcome(
                            doc["event_id"],
                            "parked",
                            effect={"original_event_id": doc[parking.FOLLOW_UP_FIELD]},
                            customer_id=doc["customer_id"],
                        )
                    )
                    continue
                self._release(doc, accounts, new, late, at, outcomes, rules, now, refusal)
                new[intake_id] = IntakeRecord.refused(
                    event_id=doc["event_id"],
                    customer_id=doc["customer_id"],
                    type=doc["type"],
                    fingerprint=print_,
                    document=accounts.sealer.document(doc),
                    error=refusal,
                    source=source,
                )
                outcomes.append(
                    Outcome(
                        doc["event_id"], "rejected", error=refusal, customer_id=doc["customer_id"]
                    )
                )
                continue
            released = self._release(doc, accounts, new, late, at, outcomes, rules, now)
            if released:
                effect = {**effect, "applied_follow_ups": released}
            new[intake_id] = IntakeRecord.accepted(
                event_id=doc["event_id"],
                customer_id=doc["customer_id"],
                type=doc["type"],
                fingerprint=print_,
                document=accounts.sealer.document(doc),
                effect=effect,
            )
            outcomes.append(
                Outcome(doc["event_id"], "accepted", effect=effect, customer_id=doc["customer_id"])
            )
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

    def _release(
        self,
        doc: dict[str, Any],
        accounts: Accounts,
        new: dict[UUID, parking.Verdict],
        late: dict[UUID, IntakeRecord],
        at: dict[UUID, int],
        outcomes: list[Outcome],
        rules: ProgramRules,
        now: datetime,
        refusal: errors.LedgerError | None = None,
    ) -> list[str]:
        """Apply what waited for the accepted `doc` (SPEC §8 "Out of order"), or refuse
        it when `doc` was refused (`refusal`: a refusal is final, so its follow-ups need
        not wait); the ids of the follow-ups applied. A follow-up parked earlier in this
        batch gets its final record at once, and its outcome in this batch says so."""
        account = accounts.get(doc["customer_id"])
        waiting = account.parked_for(doc["event_id"])
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
                else late.get(intake_id) or self.repository.get(intake_id)
            )
            records[parked.event_id] = record
            documents[parked.event_id] = record.document
        applied = []
        releases = (
            parking.refuse_waiting(account, doc["event_id"], refusal, accounts, now)
            if refusal is not None
            else parking.release_waiting(
                account, doc["event_id"], accounts, documents, rules, self.rules_at, now
            )
        )
        for release in releases:
            record = records[release.event_id]
            intake_id = IntakeRecord.create_id(release.event_id)
            if isinstance(record, IntakeRecord.Parked):  # parked by this very batch
                new[intake_id] = parking.verdict_of(record, release)
                outcomes[at[intake_id]] = Outcome(
                    release.event_id,
                    "accepted" if release.error is None else "rejected",
                    effect=release.effect,
                    error=release.error,
                    customer_id=release.customer_id,
                )
            else:
                parking.final_verdict(record, release)
                late[intake_id] = record
            if release.error is None:
                applied.append(release.event_id)
        return applied

    @staticmethod
    def _repeat_of(
        earlier: IntakeRecord | parking.Verdict,
        print_: str,
        position: int | None,
    ) -> Outcome:
        if earlier.fingerprint != print_:
            conflict = errors.EventIdConflict(
                f"event_id {earlier.event_id!r} was recorded with other content; "
                "a retry must resend the same event",
                field="event_id",
            )
            return Outcome(
                earlier.event_id, "rejected", error=conflict, customer_id=earlier.customer_id
            )
        if isinstance(earlier, IntakeRecord.Parked) or getattr(earlier, "parked", False):
            return Outcome(
                earlier.event_id,
                "parked",
                position=position,
                effect={"original_event_id": getattr(earlier, "original_event_id", None)},
                customer_id=earlier.customer_id,
            )
        refusal = getattr(earlier, "refusal", None)
        if refusal is not None:
            return Outcome(
                earlier.event_id,
                "rejected",
                error=errors.refusal(refusal["slug"], refusal["detail"], refusal["field"]),
                customer_id=earlier.customer_id,
                repeat=True,
                first_source=getattr(earlier, "source", None),
            )
        return Outcome(
            earlier.event_id,
            "duplicate",
            position=position,
            effect=getattr(earlier, "effect", None) or {},
            customer_id=earlier.customer_id,
        )

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

    # ---- time: maturations and expiries ---------------------------------------------
    def tick(self, now: datetime, customer_ids: Iterable[str], chunk: int = 500) -> TickResult:
        """Record every maturation and expiry due by `now` for the given customers (the
        candidates; the accounts decide). Idempotent: a second run records nothing new.
        A chunk that loses to a concurrent writer is re-run on fresh state (sweeping is
        idempotent, so re-running is safe)."""
        recorded: list[Effect] = []
        pending_ids = list(dict.fromkeys(customer_ids))
        with self._write_lock:
            rules = self.refresh_rules()
            for start in range(0, len(pending_ids), chunk):
                ids = pending_ids[start : start + chunk]
                recorded += self._sweep(now, ids, rules)
        return TickResult(now=iso(now), recorded=recorded, position=self.position())

    def _sweep(self, now: datetime, customer_ids: list[str], rules: ProgramRules) -> list[Effect]:
        """One chunk of the sweep, however busy the accounts are: a chunk that keeps
        losing races to the intake (a customer buying while being swept) is split in
        halves, down to one account, which is tried until it wins. Sweeping is
        idempotent, so what the lost attempts read is simply read again."""
        try:
            return self._retrying(partial(self._tick_chunk, now, customer_ids, rules))
        except IntegrityError:
            if len(customer_ids) > 1:
                half = len(customer_ids) // 2
                return self._sweep(now, customer_ids[:half], rules) + self._sweep(
                    now, customer_ids[half:], rules
                )
        for attempt in range(1, SWEEP_ATTEMPTS_ALONE + 1):
            time.sleep(min(1.0, 0.01 * 2**attempt))
            try:
                return self._retrying(partial(self._tick_chunk, now, customer_ids, rules))
            except IntegrityError:
                if attempt == SWEEP_ATTEMPTS_ALONE:
                    raise
        raise AssertionError("unreachable")

    def _retrying(self, unit_of_work: Callable[[], T], attempts: int = SAVE_ATTEMPTS) -> T:
        """Run a unit of work; re-run it when a concurrent writer won (the store refused
        our append on its unique key). The losing unit's accounts were dropped from the
        cache by `_save`; the others are still checked against the store's versions
        before use, so the re-run reloads only what changed (with two consumers in a
        group, forgetting every account on each lost race cost more than the race).
        Any other error forgets every cached account."""
        for attempt in range(1, attempts + 1):
            try:
                return unit_of_work()
            except IntegrityError:
                if attempt == attempts:
                    self._forget_cached_aggregates()
                    raise
                if attempt >= SAVE_ATTEMPTS:
                    time.sleep(random.uniform(0, 0.002 * attempt))
            except BaseException:
                self._forget_cached_aggregates()
                raise
        raise AssertionError("unreachable")

    def _tick_chunk(
        self, now: datetime, customer_ids: list[str], rules: ProgramRules
    ) -> list[Effect]:
        accounts = Accounts(self)
        accounts.preload(customer_ids)
        recorded: list[Effect] = []
        expired: list[IntakeRecord] = []
        queue = deque(customer_ids)
        while queue:
            customer_id = queue.popleft()
            account = accounts.existing(customer_id)
            if account is None:
                continue
            effects = account.sweep(now)
            for release in parking.expire_parked(account, now):
                # SPEC §8: a follow-up whose original never came is refused, finally.
                record: IntakeRecord = self.repository.get(IntakeRecord.create_id(release.event_id))
                parking.final_verdict(record, release)
                expired.append(record)
                effects.append({"action": "parked_expired", "event_id": release.event_id})
            if effects:
                accounts.touch(account)
            for effect in effects:
                recorded.append({"customer_id": customer_id, **effect})
                referrer_id = effect.get("referral_reward_to")
                if referrer_id:
                    referrer = accounts.get(referrer_id)
                    reward = referrer.reward_referral(
                        referee_id=customer_id,
                        occurred_at=datetime.fromisoformat(effect["occurred_at"]),
                        rules=rules,
                    )
                    accounts.touch(referrer)
                    recorded.append(
                        {"customer_id": referrer_id, "action": "referral_rewarded", **reward}
                    )
                    # The reward is dated at the referee's maturity: it may be due already.
                    queue.append(referrer_id)
        if accounts.touched:
            self._save(accounts, *expired)
        return recorded

    # ---- admin decisions (maker-checker) and adjustments --------------------------------
    def _decide(self, customer_id: str, decide: Callable[[CustomerAccount], Effect]) -> Outcome:
        def unit_of_work() -> Outcome:
            account = self.find_account(customer_id)
            if account is None:
                raise errors.UnknownCustomer(f"customer {customer_id!r} is not known")
            effect = decide(account)
            positions = self._append(account)
            return Outcome(
                event_id="",
                status="accepted",
                position=positions.get(account.id) or self.position(),
                effect=effect,
                customer_id=customer_id,
            )

        with self._write_lock:
            return self._retrying(unit_of_work)

    def _goodwill_customer(self, event_id: str) -> str:
        try:
            intake: IntakeRecord = self.repository.get(IntakeRecord.create_id(event_id))
        except AggregateNotFoundError:
            raise errors.NotPending(f"no goodwill event {event_id!r} is known") from None
        if intake.type != "goodwill":
            raise errors.NotPending(f"event {event_id!r} is a {intake.type}, not a goodwill")
        return intake.customer_id

    def approve_goodwill(
        self,
        event_id: str,
        *,
        approved_by: str,
        decided_at: datetime,
        approver_key: str | None = None,
    ) -> Outcome:
        customer_id = self._goodwill_customer(event_id)
        return self._decide(
            customer_id,
            lambda account: account.approve_goodwill(
                event_id=event_id,
                approved_by=approved_by,
                decided_at=decided_at,
                rules=self.rules,
                approver_key=approver_key,
            ),
        )

    def reject_goodwill(
        self,
        event_id: str,
        *,
        rejected_by: str,
        note: str | None,
        decided_at: datetime,
        rejected_with_key: str | None = None,
    ) -> Outcome:
        customer_id = self._goodwill_customer(event_id)
        return self._decide(
            customer_id,
            lambda account: account.reject_goodwill(
                event_id=event_id,
                rejected_by=rejected_by,
                note=Sealer(self.keys).seal(customer_id, note),
                decided_at=decided_at,
                rejected_with_key=rejected_with_key,
            ),
        )

    def adjust(
        self,
        *,
        customer_id: str,
        adjustment_id: str,
        points: int,
        reason: str,
        requested_by: str,
        occurred_at: datetime,
        requested_with_key: str | None = None,
    ) -> Outcome:
        """A manual adjustment; above the limit it waits for a second admin."""

        def decide(account: CustomerAccount) -> Effect:
            if adjustment_id in account.requests or account.has_adjustment(adjustment_id):
                raise errors.EventIdConflict(
                    f"adjustment {adjustment_id!r} already exists", field="adjustment_id"
                )
            return account.adjust(
                adjustment_id=adjustment_id,
                occurred_at=occurred_at,
                points=points,
                reason=reason,
                requested_by=requested_by,
                rules=self.rules,
                requested_with_key=requested_with_key,
            )

        return self._decide(customer_id, decide)

    def approve_adjustment(
        self,
        *,
        customer_id: str,
        adjustment_id: str,
        approved_by: str,
        decided_at: datetime,
        approver_key: str | None = None,
    ) -> Outcome:
        return self._decide(
            customer_id,
            lambda account: account.approve_adjustment(
                adjustment_id=adjustment_id,
                approved_by=approved_by,
                decided_at=decided_at,
                rules=self.rules,
                approver_key=approver_key,
            ),
        )

    def reject_adjustment(
        self,
        *,
        customer_id: str,
        adjustment_id: str,
        rejected_by: str,
        note: str | None,
        decided_at: datetime,
        rejected_with_key: str | None = None,
    ) -> Outcome:
        return self._decide(
            customer_id,
            lambda account: account.reject_adjustment(
                adjustment_id=adjustment_id,
                rejected_by=rejected_by,
                note=note,
                decided_at=decided_at,
                rejected_with_key=rejected_with_key,
            ),
        )
