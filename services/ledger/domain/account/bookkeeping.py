"""The account's books: its lots and the postings every credit shares (SPEC §4).

The lots and the double-entry postings themselves are in `domain/lots.py`; this part is
what the account does with them: its balances, the postings of an immediately available
credit, and adding such a credit's lot (repaying debt from it first).

Every change to a lot goes through `_put_lot` or `_change_lot`, which keep the running
state (`running.LotIndex`: the totals and the lots by expiry) in step with the lots.
"""

from __future__ import annotations

from datetime import datetime

from services.ledger.domain import errors
from services.ledger.domain.account.state import AccountState
from services.ledger.domain.clock import parse_ts
from services.ledger.domain.lots import AVAILABLE, DEBT, ISSUED, Allocation, Lot, Postings, move
from services.ledger.domain.rules import ProgramRules


class Bookkeeping(AccountState):
    @property
    def available(self) -> int:
        return self.books.available

    @property
    def pending(self) -> int:
        return self.books.pending

    # The slow way, from every lot: the reference the running state is tested against.
    def _slow_available(self) -> int:
        return sum(lot.remaining for lot in self.lots.values() if not lot.pending)

    def _slow_pending(self) -> int:
        return sum(lot.remaining for lot in self.lots.values() if lot.pending)

    def _put_lot(self, lot: Lot) -> None:
        replaced = self.lots.get(lot.lot_id)
        if replaced is not None:
            self.books.leave(replaced)
        self.lots[lot.lot_id] = lot
        self.books.enter(lot)

    def _change_lot(
        self,
        lot_id: str,
        *,
        used: int = 0,
        reversal: int = 0,
        expired: int = 0,
        matured: bool = False,
    ) -> Lot:
        lot = self.lots[lot_id]
        self.books.leave(lot)
        lot.used += used
        lot.reversed += reversal
        lot.expired += expired
        if matured:
            lot.pending = False
        self.books.enter(lot)
        return lot

    def _allocate(
        self, points: int, moment: datetime, *, exclude: str | None = None
    ) -> tuple[Allocation, int]:
        """`lots.allocate` over this account's lots, from the running index."""
        return self.books.allocate(self.lots, points, moment, exclude=exclude)

    @staticmethod
    def check_currency(currency: str, rules: ProgramRules, field: str) -> None:
        if currency != rules.currency:
            raise errors.CurrencyMismatch(
                f"the program runs in {rules.currency}; this event is in {currency} "
                "(no conversion is made)",
                field=field,
            )

    def check_enough_points(self, points: int, moment: datetime) -> None:
        spendable = self.books.spendable_at(moment, self.lots)
        if points > spendable:
            raise errors.InsufficientPoints(
                f"{points} points requested, {spendable} available", field="points"
            )

    def _credit_available_postings(self, points: int) -> tuple[Postings, int]:
        """Postings of an immediately available credit; outstanding debt is repaid first,
        so that a customer never holds available points while owing points."""
        postings: Postings = []
        move(postings, ISSUED, AVAILABLE, points)
        repaid = min(self.debt, points)
        move(postings, AVAILABLE, DEBT, repaid)
        return postings, repaid

    def _add_available_lot(
        self,
        lot_id: str,
        source: str,
        points: int,
        earned_at: str,
        expires_at: str,
        rule_version: int,
        repaid: int,
    ) -> None:
        if not points:
            return
        self._put_lot(
            Lot(
                lot_id=lot_id,
                source=source,
                points=points,
                pending=False,
                earned_at=parse_ts(earned_at),
                matures_at=None,
                expires_at=parse_ts(expires_at),
                rule_version=rule_version,
            )
        )
        self._repay_debt_from_lots(repaid, [lot_id])

    def _repay_debt_from_lots(self, repaid: int, lot_ids: list[str]) -> None:
        left = repaid
        for lot_id in lot_ids:
            lot = self.lots[lot_id]
            take = min(left, max(lot.remaining, 0))
            self._change_lot(lot_id, used=take)
            left -= take
        self.debt -= repaid - left
        if left:
            raise errors.BooksOutOfBalance(
                f"{repaid} points of debt repaid from lots {lot_ids} that held {repaid - left}"
            )
