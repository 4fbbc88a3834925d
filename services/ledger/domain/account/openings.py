"""Opening balances (SPEC §9): a programme moving to the ledger brings each customer's
points as an available lot that keeps its original dates, and expires on them.

Idempotent by `import_id`: the line is recorded under the intake id of
`opening-balance/<import_id>` (a "/" no POS event_id has), so a repeat is a duplicate and
the same id with other content a conflict. A line already past its expiry is refused
(`opening-balance-expired`): its points were lost in the old programme, not here.
"""

from __future__ import annotations

from datetime import datetime

from services.ledger.domain import errors
from services.ledger.domain.account.bookkeeping import Bookkeeping
from services.ledger.domain.account.program_events import OpeningBalanceImported
from services.ledger.domain.clock import iso
from services.ledger.domain.effects import OpeningBalanceEffect
from services.ledger.domain.lots import IMPORT_LOT
from services.ledger.domain.rules import ProgramRules


class Openings(Bookkeeping):
    def check_opening_dates(self, earned_at: datetime, expires_at: datetime, now: datetime) -> None:
        if expires_at <= earned_at:
            raise errors.TimestampOutOfRange(
                f"expires_at {iso(expires_at)} is not after earned_at {iso(earned_at)}",
                field="expires_at",
            )
        if expires_at <= now:
            raise errors.OpeningBalanceExpired(
                f"the points expired at {iso(expires_at)}, before the import ({iso(now)})",
                field="expires_at",
            )

    def import_opening_balance(
        self,
        *,
        import_id: str,
        points: int,
        earned_at: datetime,
        expires_at: datetime,
        now: datetime,
        rules: ProgramRules,
    ) -> OpeningBalanceEffect:
        self.check_opening_dates(earned_at, expires_at, now)
        lot_id = IMPORT_LOT.format(import_id=import_id)
        if lot_id in self.lots:  # the intake record makes a repeat a duplicate first
            raise errors.EventIdConflict(
                f"opening balance {import_id!r} is already imported", field="import_id"
            )
        postings, repaid = self._credit_available_postings(points)
        self.trigger_event(
            OpeningBalanceImported,
            import_id=import_id,
            occurred_at=iso(earned_at),
            points=points,
            expires_at=iso(expires_at),
            debt_repaid=repaid,
            rule_version=rules.version,
            postings=postings,
        )
        return OpeningBalanceEffect(
            points=points,
            lot_id=lot_id,
            earned_at=iso(earned_at),
            expires_at=iso(expires_at),
            debt_repaid=repaid,
        )

    def on_opening_balance_imported(self, e: OpeningBalanceImported) -> None:
        self._add_available_lot(
            IMPORT_LOT.format(import_id=e.import_id),
            "import",
            e.points,
            e.occurred_at,
            e.expires_at,
            e.rule_version,
            e.debt_repaid,
        )
