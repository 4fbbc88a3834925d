"""The customers' keys table on both stores (services/infrastructure/keys.py): one key per
customer whoever creates it first, erasure a tombstone that no writer can bring back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from services.infrastructure.keys import SqlKeyring
from services.infrastructure.sql import Database
from services.infrastructure.store import StoreURL


def test_two_writers_get_the_same_key_and_an_erased_customer_never_gets_one_again(
    store_url: str,
) -> None:
    store = StoreURL.parse(store_url)
    first, second = SqlKeyring(Database(store)), SqlKeyring(Database(store))
    first.create()
    second.create()
    try:
        customers = [f"c{n}" for n in range(40)]
        with ThreadPoolExecutor(2) as pool:
            one, two = pool.map(lambda k: k.keys_for_writing(customers), (first, second))
        assert one == two and all(len(key or b"") == 32 for key in one.values())
        assert len(set(one.values())) == len(customers)
        assert first.keys_for_reading(["c1", "nobody"]) == {"c1": one["c1"], "nobody": None}

        second.erase("c1")
        second.erase("c1")  # idempotent
        second.erase("never-had-a-key")
        assert first.keys_for_writing(["c1", "never-had-a-key", "c2"]) == {
            "c1": None,
            "never-had-a-key": None,
            "c2": one["c2"],
        }
        assert first.erased(["c1", "c2", "never-had-a-key", "nobody"]) == {
            "c1",
            "never-had-a-key",
        }
    finally:
        first.db.close()
        second.db.close()
