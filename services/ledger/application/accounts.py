"""The accounts of one unit of work (`Accounts`) and the write side's account cache
(`AccountCache`), for `Ledger.record_batch` and the sweep."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Protocol
from uuid import UUID

from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.campaigns.engine import CampaignBook
from services.ledger.domain.privacy import Keyring, Sealer
from services.ledger.domain.receipts import ReceiptRecord


class AccountSource(Protocol):
    """What the accounts of a unit of work ask of the ledger (`Ledger`, which imports
    this module: named here rather than imported)."""

    keys: Keyring

    def load_accounts(self, customer_ids: list[str]) -> dict[str, CustomerAccount | None]: ...
    def find_account(self, customer_id: str) -> CustomerAccount | None: ...


class Accounts:
    """The accounts of one unit of work, each loaded once. Those the batch names up front
    are loaded together (`preload`); new ones are created on first touch and saved only
    if an accepted event touched them."""

    def __init__(self, app: AccountSource) -> None:
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
