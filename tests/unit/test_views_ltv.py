"""Lifetime value (seed 003: LTV = m x a x t) and Sewell's example (seed 000): an average
car of $25,000, ten cars in a lifetime, and about a third more for service: $332,500."""

from __future__ import annotations

from decimal import Decimal

from services.ledger.domain.rules import ProgramRules
from services.projections.views.answers import ltv_answer
from services.projections.views.standing import lifetime_value
from tests.unit.view_events import RULES, day, fold, purchase, refund

# Sewell counts in years: one car a year, ten years.
SEWELL = ProgramRules(currency="USD", ltv_lifetime_years=10).with_version(1)


def test_sewells_customer_is_worth_332_500() -> None:
    cars = lifetime_value(Decimal("25000"), a=1, t=10)
    service = lifetime_value(Decimal("8250"), a=1, t=10)  # about a third of each car
    assert (cars, service, cars + service) == (250_000, 82_500, 332_500)


def test_sewells_customer_through_the_projection() -> None:
    view, _ = fold(
        [
            purchase("car", day(0), "25000.00"),
            purchase("oil", day(90), "2750.00"),
            purchase("tyres", day(180), "2750.00"),
            purchase("dent", day(270), "2750.00"),
        ],
        SEWELL,
    )
    answer = ltv_answer(view, day(300), SEWELL)
    assert answer == {
        "ltv": "332500.00",
        "realised": "33250.00",
        "m": "8312.50",
        "a": 4,
        "t": 10,
        "currency": "USD",
    }


def test_ltv_is_m_times_a_times_t_over_the_last_12_months() -> None:
    view, _ = fold(
        [
            purchase("old", day(0), "500"),
            purchase("p1", day(400), "100"),
            purchase("p2", day(401), "50"),
        ]
    )
    answer = ltv_answer(view, day(401), RULES)
    assert (answer["m"], answer["a"], answer["t"]) == ("75.00", 2, 5)
    assert answer["ltv"] == "750.00"  # 75 x 2 x 5
    assert answer["realised"] == "650.00"  # every purchase to date


def test_refunds_come_off_realised_value_and_a_wholly_refunded_purchase_does_not_count() -> None:
    view, _ = fold(
        [
            purchase("p1", day(0), "100"),
            purchase("p2", day(1), "40"),
            refund("f1", day(2), "p1", "30", 30),
            refund("f2", day(3), "p2", "40", 40),
        ]
    )
    answer = ltv_answer(view, day(3), RULES)
    assert (answer["realised"], answer["m"], answer["a"], answer["ltv"]) == (
        "70.00",
        "70.00",
        1,
        "350.00",
    )


def test_a_customer_without_purchases_is_worth_nothing_yet() -> None:
    view, _ = fold([])
    assert ltv_answer(view, None, RULES)["ltv"] == "0.00"


def test_derived_money_is_in_the_currencys_minor_unit() -> None:
    """SPEC §8: LTV and `m` rounded to the ISO 4217 minor unit, whatever the currency."""
    for currency, amounts, ltv, m in (
        ("EUR", ["10.00", "5.01"], "75.05", "7.50"),  # m = 7.505: half to even
        ("JPY", ["1000", "333"], "6665", "666"),  # m = 666.5
        ("BHD", ["1.000", "0.235"], "6.175", "0.618"),  # m = 0.6175
    ):
        rules = ProgramRules(currency=currency).with_version(1)
        view, _ = fold(
            [purchase(f"p{n}", day(n), amount) for n, amount in enumerate(amounts)], rules
        )
        answer = ltv_answer(view, day(30), rules)
        assert (answer["ltv"], answer["m"], answer["a"]) == (ltv, m, 2), currency
