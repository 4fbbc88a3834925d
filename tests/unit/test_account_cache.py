"""The write side's account cache is bounded by the events its accounts hold, not only
by their number: a few long accounts cannot take the process's memory (issue 14)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.ledger.application.ledger import AccountCache


@dataclass
class Account:
    customer_id: str
    version: int


def cached(cache: AccountCache, *accounts: Account) -> list[str]:
    cache.put(accounts)  # type: ignore[arg-type]
    return [a.customer_id for a in accounts if cache.get(a.customer_id, a.version) is not None]


def test_long_accounts_push_out_the_least_recently_used_by_events_held() -> None:
    cache = AccountCache(maxsize=100, max_events=1_000)
    small = [Account(f"c{n}", 10) for n in range(10)]
    assert cached(cache, *small) == [a.customer_id for a in small]
    assert cache.events == 100
    cache.get("c0", 10)  # c0 used again: c1 is now the least recently used
    whale = Account("whale", 950)
    cache.put([whale])  # type: ignore[list-item]
    assert cache.events <= 1_000
    assert cache.get("whale", 950) is not None and cache.get("c0", 10) is not None
    assert [a.customer_id for a in small if cache.get(a.customer_id, 10) is None] == [
        "c1",
        "c2",
        "c3",
        "c4",
        "c5",
    ]


def test_a_saved_account_replaces_its_older_self_and_forgetting_frees_its_events() -> None:
    cache = AccountCache(maxsize=10, max_events=1_000)
    cache.put([Account("ana", 5)])  # type: ignore[list-item]
    cache.put([Account("ana", 9)])  # type: ignore[list-item]
    assert cache.events == 9 and len(cache) == 1
    assert cache.get("ana", 5) is None and cache.get("ana", 9) is not None
    cache.forget(["ana", "nobody"])
    assert cache.events == 0 and len(cache) == 0


def test_an_account_longer_than_the_whole_budget_is_not_kept() -> None:
    cache = AccountCache(maxsize=10, max_events=100)
    kept: Any = cached(cache, Account("ana", 5), Account("giant", 500))
    assert kept == [] and cache.events == 0
