"""The program: its rules and their versions. Every rule change is an event (SPEC §3).

A change that loosens a control (`LOOSENING`: a higher approval or small-money limit, a
laxer trust tester) is not applied by the admin who asks for it: it waits as a request
until a second person approves it, with the same second-person rule as goodwill and
adjustments (`account.approvals`). A change that loosens nothing is applied at once. The
program file is not asked: changing it takes a deploy, which is its own four eyes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from services.ledger.domain import errors, topics
from services.ledger.domain.approvals import PendingApproval, check_waiting
from services.ledger.domain.clock import iso, parse_ts, utcnow
from services.ledger.domain.rules import ProgramRules

# The controls a rule change may loosen only with a second person: (field, looser when).
LOOSENING: tuple[tuple[str, str], ...] = (
    ("adjustment_approval_limit", "higher"),  # adjustments applied without a second admin
    ("small_money_amount", "higher"),  # goodwill granted at once (SPEC §3, seed 000)
    ("small_money_points", "higher"),
    ("goodwill_points_per_unit", "higher"),  # more points for the same goodwill money
    ("trust_tester_grants", "higher"),  # more grants before a customer is flagged
    ("trust_tester_window_days", "lower"),  # a shorter window flags fewer customers
)


def loosened(old: ProgramRules, new: ProgramRules) -> list[str]:
    """The controls `new` loosens against `old`, by field name."""
    found = []
    for name, looser in LOOSENING:
        before, after = getattr(old, name), getattr(new, name)
        if (after > before) if looser == "higher" else (after < before):
            found.append(name)
    return found


class Program(Aggregate):
    # The stored contract (domain/topics.py): the program's topic and its events'.
    TOPIC = topics.PROGRAM

    class Event(Aggregate.Event):
        """The base of the program's events (its own, so that `Started` can be one)."""

    class Started(Aggregate.Created, Event):
        TOPIC = topics.PROGRAM_EVENTS["Started"]
        class_version = 1
        name: str
        rules: dict[str, Any]
        changed_by: str

    Created = Started  # the library's name for the first event: there is only one

    class RulesChanged(Event):
        TOPIC = topics.PROGRAM_EVENTS["RulesChanged"]
        class_version = 1
        rule_version: int
        rules: dict[str, Any]
        changed_by: str
        reason: str

    class RulesScheduled(Event):
        """A new version of the rules, in force for events that occur from `effective_from`
        on (SPEC §8); `file_hash` is the program file's content hash when the file gave it."""

        TOPIC = topics.PROGRAM_EVENTS["RulesScheduled"]
        class_version = 2  # 2: `changed_with_key`
        rule_version: int
        rules: dict[str, Any]
        changed_by: str
        reason: str
        effective_from: str
        file_hash: str | None
        changed_with_key: str | None = None  # the API key's name (never the secret)

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["changed_with_key"] = None  # not recorded before version 2

    class FileRead(Event):
        """The program file with this content hash was read at start and left the rules
        at `rule_version` (it gave no new rules, or an admin's change stands)."""

        TOPIC = topics.PROGRAM_EVENTS["FileRead"]
        class_version = 1
        file_hash: str
        rule_version: int

    class RuleChangeRequested(Event):
        TOPIC = topics.PROGRAM_EVENTS["RuleChangeRequested"]
        class_version = 1
        request_id: str
        rules: dict[str, Any]
        requested_by: str
        requested_with_key: str | None
        reason: str
        loosened: list[str]

    class RuleChangeApproved(Event):
        TOPIC = topics.PROGRAM_EVENTS["RuleChangeApproved"]
        class_version = 1
        request_id: str
        approved_by: str
        approver_key: str | None

    class RuleChangeRejected(Event):
        TOPIC = topics.PROGRAM_EVENTS["RuleChangeRejected"]
        class_version = 2  # 2: `rejected_with_key`
        request_id: str
        rejected_by: str
        note: str | None
        rejected_with_key: str | None = None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["rejected_with_key"] = None

    @staticmethod
    def create_id(name: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"loyalty-ledger:program:{name}")

    @event(Started)
    def __init__(self, name: str, rules: dict[str, Any], changed_by: str) -> None:
        self.name = name
        self.rules = ProgramRules.from_document(rules, version=1)
        self.requests: dict[str, PendingApproval] = {}
        self.rules_by = changed_by
        self.file_hash: str | None = None
        # (in force from, rules), by version; None: from the beginning (the first version,
        # and changes recorded before versions had a date).
        self.versions: list[tuple[datetime | None, ProgramRules]] = [(None, self.rules)]

    def _versions(self) -> list[tuple[datetime | None, ProgramRules]]:
        if "versions" not in self.__dict__:
            self.versions = [(None, self.rules)]
        return self.versions

    def rules_at(self, moment: datetime) -> ProgramRules:
        """The latest version in force at `moment` (SPEC §8 "Rules in force at occurred_at")."""
        found = self._versions()[0][1]
        for since, rules in self._versions():
            if (since is None or since <= moment) and rules.version > found.version:
                found = rules
        return found

    def file_rules_to_record(self, rules: ProgramRules, file_hash: str) -> bool:
        """Whether the program file (`rules`, its content hash `file_hash`) gives a new
        version at start: only a changed file does. A program recorded before file hashes
        were kept takes the file only when its last rules came from the file too, so an
        admin's change is never reverted by a restart."""
        known = self.__dict__.get("file_hash")
        if known == file_hash or rules == self.rules:
            return False
        return known is not None or self.__dict__.get("rules_by", "program file") == "program file"

    def _pending(self) -> dict[str, PendingApproval]:
        # Programs rebuilt from stores older than requests have no attribute yet.
        if "requests" not in self.__dict__:
            self.requests = {}
        return self.requests

    # ---- maker-checker for changes that loosen a control --------------------------------
    def request_rule_change(
        self,
        rules: ProgramRules,
        *,
        request_id: str,
        requested_by: str,
        requested_with_key: str | None,
        reason: str,
    ) -> list[str]:
        """Record a change that loosens `loosened(...)` as waiting for a second person."""
        if request_id in self._pending():
            raise errors.EventIdConflict(f"rule change {request_id!r} already exists")
        self._rule_change_requested(
            request_id=request_id,
            rules=rules.to_document(),
            requested_by=requested_by,
            requested_with_key=requested_with_key,
            reason=reason,
            loosened=loosened(self.rules, rules),
        )
        return self.requests[request_id].details["loosened"]  # type: ignore[no-any-return]

    def approve_rule_change(
        self, request_id: str, *, approved_by: str, approver_key: str | None
    ) -> ProgramRules:
        request = check_waiting(self._pending(), request_id, "rule_change")
        request.check_second_person(approved_by, approver_key)
        self._rule_change_approved(
            request_id=request_id, approved_by=approved_by, approver_key=approver_key
        )
        rules = ProgramRules.from_document(request.details["rules"])
        reason = f"{request.details['reason']} (approved by {approved_by})"
        self.change_rules(
            rules,
            changed_by=request.requested_by,
            changed_with_key=request.requested_with_key,
            reason=reason,
        )
        return self.rules

    def reject_rule_change(
        self,
        request_id: str,
        *,
        rejected_by: str,
        note: str | None,
        rejected_with_key: str | None = None,
    ) -> None:
        check_waiting(self._pending(), request_id, "rule_change")
        self._rule_change_rejected(
            request_id=request_id,
            rejected_by=rejected_by,
            rejected_with_key=rejected_with_key,
            note=note,
        )

    @event(RuleChangeRequested)
    def _rule_change_requested(
        self,
        request_id: str,
        rules: dict[str, Any],
        requested_by: str,
        requested_with_key: str | None,
        reason: str,
        loosened: list[str],
    ) -> None:
        self._pending()[request_id] = PendingApproval(
            kind="rule_change",
            requested_by=requested_by,
            requested_with_key=requested_with_key,
            points=0,
            details={"rules": rules, "reason": reason, "loosened": loosened},
        )

    @event(RuleChangeApproved)
    def _rule_change_approved(
        self, request_id: str, approved_by: str, approver_key: str | None
    ) -> None:
        self._pending().pop(request_id, None)

    @event(RuleChangeRejected)
    def _rule_change_rejected(
        self, request_id: str, rejected_by: str, rejected_with_key: str | None, note: str | None
    ) -> None:
        self._pending().pop(request_id, None)

    def change_rules(
        self,
        rules: ProgramRules,
        *,
        changed_by: str,
        reason: str,
        now: datetime | None = None,
        effective_from: datetime | None = None,
        file_hash: str | None = None,
        changed_with_key: str | None = None,
    ) -> bool:
        """Record new rules as the next version, in force from `effective_from` (default
        `now`; never before it); the same rules again change nothing."""
        now = now or utcnow()
        since = effective_from or now
        if since < now:
            raise errors.InvalidRules(
                f"effective_from {iso(since)} is in the past; a rule change starts now or later"
            )
        if rules == self.rules:
            if file_hash is not None:
                self._file_read(file_hash=file_hash, rule_version=self.rules.version)
            return False
        self._rules_scheduled(
            rule_version=self.rules.version + 1,
            rules=rules.to_document(),
            changed_by=changed_by,
            changed_with_key=changed_with_key,
            reason=reason,
            effective_from=iso(since),
            file_hash=file_hash,
        )
        return True

    def read_file(self, file_hash: str) -> None:
        """Remember the program file's hash without a new version."""
        self._file_read(file_hash=file_hash, rule_version=self.rules.version)

    @event(RulesScheduled)
    def _rules_scheduled(
        self,
        rule_version: int,
        rules: dict[str, Any],
        changed_by: str,
        changed_with_key: str | None,
        reason: str,
        effective_from: str,
        file_hash: str | None,
    ) -> None:
        self.rules = ProgramRules.from_document(rules, version=rule_version)
        self.rules_by = changed_by
        self._versions().append((parse_ts(effective_from), self.rules))
        if file_hash is not None:
            self.file_hash = file_hash

    @event(FileRead)
    def _file_read(self, file_hash: str, rule_version: int) -> None:
        self.file_hash = file_hash

    @event(RulesChanged)
    def _rules_changed(
        self, rule_version: int, rules: dict[str, Any], changed_by: str, reason: str
    ) -> None:
        self.rules = ProgramRules.from_document(rules, version=rule_version)
        self.rules_by = changed_by
        self._versions().append((None, self.rules))  # stored before versions had a date
