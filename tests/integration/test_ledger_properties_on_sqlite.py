"""The ledger's properties (tests/unit/test_ledger_properties.py) on a SQLite file.

The unit run checks them on the in-memory store, for many histories; here fewer histories
go through the SQLite recorder, whose own queries the batch path uses (duplicates by
position, current versions, the highest position).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.unit.test_ledger_properties import (
    check_balances_are_the_customer_postings_and_all_postings_sum_to_zero,
    check_no_event_is_applied_twice,
    check_refunds_and_redemptions_never_take_more_than_was_there,
    fresh_ledger,
    histories,
)

ON_SQLITE = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@ON_SQLITE
@given(history=histories)
def test_no_event_is_applied_twice_on_sqlite(history: tuple[list[Any], int]) -> None:
    with fresh_ledger(sqlite=True) as ledger:
        check_no_event_is_applied_twice(ledger, history)


@ON_SQLITE
@given(history=histories)
def test_balances_are_the_customer_postings_on_sqlite(history: tuple[list[Any], int]) -> None:
    with fresh_ledger(sqlite=True) as ledger:
        check_balances_are_the_customer_postings_and_all_postings_sum_to_zero(ledger, history)


@ON_SQLITE
@given(history=histories)
def test_refunds_and_redemptions_never_take_more_on_sqlite(history: tuple[list[Any], int]) -> None:
    with fresh_ledger(sqlite=True) as ledger:
        check_refunds_and_redemptions_never_take_more_than_was_there(ledger, history)
