"""The program: its rules and their versions. Every rule change is an event (SPEC §3)."""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from services.ledger.domain.rules import ProgramRules


class Program(Aggregate):
    class Started(Aggregate.Created):
        name: str
        rules: dict[str, Any]
        changed_by: str

    class RulesChanged(Aggregate.Event):
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
