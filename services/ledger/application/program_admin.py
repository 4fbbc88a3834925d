"""The program's rules on the write side (mixed into `Ledger`): the file's rules at start,
changes through the API (maker-checker for those that loosen a control, SPEC §8), and
the rules in force at a moment."""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import orjson
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from services.ledger.application.outcomes import RuleChange
from services.ledger.domain.program import Program, loosened
from services.ledger.domain.rules import ProgramRules

PROGRAM_NAME = "default"
SAVE_ATTEMPTS = 3


class ProgramAdmin:
    """Mixed into `Ledger`: what it provides is declared here for the type checker."""

    repository: Any
    _write_lock: threading.RLock
    _rules: ProgramRules
    _program: Program

    if TYPE_CHECKING:  # provided by `Ledger`

        def _append(self, *objs: Any) -> dict[UUID, int]: ...

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
