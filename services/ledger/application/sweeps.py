"""Maturations and expiries (mixed into `Ledger`): the sweep over candidate customers,
in chunks that survive races with the intake (SPEC §8 "The sweep runs by itself")."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from services.ledger.application import parking
from services.ledger.application.accounts import Accounts, AccountSource
from services.ledger.application.outcomes import TickResult
from services.ledger.domain.account import Effect
from services.ledger.domain.clock import iso
from services.ledger.domain.intake import IntakeRecord
from services.ledger.domain.rules import ProgramRules

T = TypeVar("T")
SWEEP_ATTEMPTS_ALONE = 20  # one account's sweep, after its chunk lost every race


class Sweeps:
    """Mixed into `Ledger`: what it provides is declared here for the type checker."""

    repository: Any
    _write_lock: threading.RLock

    if TYPE_CHECKING:  # provided by `Ledger`

        def refresh_rules(self) -> ProgramRules: ...
        def position(self) -> int: ...
        def _save(self, accounts: Accounts, *others: Any) -> dict[UUID, int]: ...
        def _retrying(self, unit_of_work: Callable[[], T], attempts: int = ...) -> T: ...

    # ---- time: maturations and expiries ---------------------------------------------
    def tick(
        self, now: datetime, customer_ids: Iterable[str], chunk: int = 500, *, effects: bool = True
    ) -> TickResult:
        """Record every maturation and expiry due by `now` for the given customers (the
        candidates; the accounts decide). Idempotent: a second run records nothing new.
        A chunk that loses to a concurrent writer is re-run on fresh state (sweeping is
        idempotent, so re-running is safe). Without `effects`, only their counts are
        kept: a sweep over a million customers would otherwise hold an effect for each
        lot it recorded (the background sweep needs the counts only)."""
        recorded: list[Effect] = []
        counts: Counter[str] = Counter()
        pending_ids = list(dict.fromkeys(customer_ids))
        with self._write_lock:
            rules = self.refresh_rules()
            for start in range(0, len(pending_ids), chunk):
                done = self._sweep(now, pending_ids[start : start + chunk], rules)
                counts.update(str(effect["action"]) for effect in done)
                if effects:
                    recorded += done
        return TickResult(
            now=iso(now), recorded=recorded, position=self.position(), counts=dict(counts)
        )

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

    def _tick_chunk(
        self, now: datetime, customer_ids: list[str], rules: ProgramRules
    ) -> list[Effect]:
        accounts = Accounts(cast(AccountSource, self))
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
