"""The program: its rules and their versions. Every rule change is an event (SPEC §3)."""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from services.ledger.domain import topics
from services.ledger.domain.rules import ProgramRules


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

    @staticmethod
    def create_id(name: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"loyalty-ledger:program:{name}")

    @event(Started)
    def __init__(self, name: str, rules: dict[str, Any], changed_by: str) -> None:
        self.name = name
        self.rules = ProgramRules.from_document(rules, version=1)

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
