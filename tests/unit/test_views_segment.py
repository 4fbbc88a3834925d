"""The buyer ladder of seed 001 (SPEC §4): visitor, buyer, client, advocate."""

from __future__ import annotations

from services.projections.views.answers import segment_answer
from tests.unit.view_events import day, fold, purchase, referral_rewarded, refund, review


def segment_at(events: list, when: float) -> str:  # type: ignore[type-arg]
    view, _ = fold(events)
    return str(segment_answer(view, day(when))["segment"])


def test_a_known_customer_without_a_purchase_is_a_visitor() -> None:
    assert segment_at([review("r1", day(0), 10)], 0) == "visitor"


def test_one_purchase_makes_a_buyer() -> None:
    assert segment_at([purchase("p1", day(0), "10")], 0) == "buyer"


def test_a_wholly_refunded_purchase_is_no_purchase() -> None:
    events = [purchase("p1", day(0), "10"), refund("f1", day(1), "p1", "10", 10)]
    assert segment_at(events, 1) == "visitor"


def test_three_purchases_in_twelve_months_make_a_client() -> None:
    three = [purchase(f"p{i}", day(i * 100), "10") for i in range(3)]
    assert segment_at(three, 200) == "client"
    # The first purchase leaves the 12 months on day 365: a buyer again.
    assert segment_at(three, 364) == "client"
    assert segment_at(three, 365) == "buyer"


def test_a_client_with_a_promoter_review_in_twelve_months_is_an_advocate() -> None:
    three = [purchase(f"p{i}", day(i), "10") for i in range(3)]
    assert segment_at([*three, review("r1", day(3), 9)], 3) == "advocate"
    assert segment_at([*three, review("r1", day(3), 8)], 3) == "client"
    assert segment_at([review("r0", day(0), 10), *three], 364) == "advocate"
    assert segment_at([review("r0", day(-1), 10), *three], 364) == "client"


def test_a_promoter_who_is_not_a_client_is_not_an_advocate() -> None:
    assert segment_at([purchase("p1", day(0), "10"), review("r1", day(1), 10)], 1) == "buyer"


def test_a_client_who_referred_someone_who_bought_is_an_advocate() -> None:
    three = [purchase(f"p{i}", day(i), "10") for i in range(3)]
    assert segment_at([*three, referral_rewarded("friend", day(20))], 20) == "advocate"


def test_the_why_gives_the_numbers() -> None:
    view, _ = fold([purchase(f"p{i}", day(i), "10") for i in range(4)])
    why = segment_answer(view, day(4))["why"]
    assert why.startswith("client: 4 purchases in the 12 months up to 2025-03-07")
    assert "a client makes 3" in why


def test_the_change_feed_reports_each_step_up_the_ladder() -> None:
    _, changes = fold(
        [*(purchase(f"p{i}", day(i), "10") for i in range(3)), review("r", day(4), 10)]
    )
    assert [c for c in changes if c[0] == "SegmentChanged"] == [
        ("SegmentChanged", None),
        ("SegmentChanged", "visitor"),
        ("SegmentChanged", "buyer"),
        ("SegmentChanged", "client"),
    ]
