"""The program: its rules and their versions. Every rule change is an event (SPEC §3).

A change that loosens a control (`LOOSENING`: a higher approval or small-money limit, a
laxer trust tester) is not applied by the admin who asks for it: it waits as a request
until a second person approves it, with the same second-person rule as goodwill and
adjustments (`account.approvals`). A change that loosens nothing is applied at once. The
program file is not asked: changing it takes a deploy, which is its own four eyes.
"""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from services.ledger.domain import errors, topics
from services.ledger.domain.account.approvals import PendingApproval, check_waiting
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
        class_version = 1
        request_id: str
        rejected_by: str
        note: str | None

    @staticmethod
    def create_id(name: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"loyalty-ledger:program:{name}")

    @event(Started)
    def __init__(self, name: str, rules: dict[str, Any], changed_by: str) -> None:
        self.name = name
        self.rules = ProgramRules.from_document(rules, version=1)
        self.requests: dict[str, PendingApproval] = {}

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
        self.change_rules(rules, changed_by=request.requested_by, reason=reason)
        return self.rules

    def reject_rule_change(self, request_id: str, *, rejected_by: str, note: str | None) -> None:
        check_waiting(self._pending(), request_id, "rule_change")
        self._rule_change_rejected(request_id=request_id, rejected_by=rejected_by, note=note)

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
    def _rule_change_rejected(self, request_id: str, rejected_by: str, note: str | None) -> None:
        self._pending().pop(request_id, None)

    def change_rules(self, rules: ProgramRules, *, changed_by: str, reason: str) -> bool:
        """Record new rules as the next version; the same rules again change nothing."""
        if rules == self.rules:
            return False
        self._rules_changed(
            rule_version=self.rules.version + 1,
            rules=rules.to_document(),
            changed_by=changed_by,
            reason=reason,
        )
        return True

    @event(RulesChanged)
    def _rules_changed(
        self, rule_version: int, rules: dict[str, Any], changed_by: str, reason: str
    ) -> None:
        self.rules = ProgramRules.from_document(rules, version=rule_version)
