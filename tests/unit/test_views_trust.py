"""Sewell's trust deposit (seed 000, SPEC §4): +1 per job done well, -10 per mistake,
+5 when goodwill resolves an incident within 48 h; forgiving while positive."""

from __future__ import annotations

from datetime import timedelta

from services.projections.views.answers import trust_answer
from services.projections.views.customer import CustomerView
from tests.unit.view_events import (
    RULES,
    day,
    fold,
    goodwill,
    incident,
    purchase,
    refund,
    review,
)


def test_a_customer_is_new_only_before_any_interaction() -> None:
    """A passive review and a goodwill are interactions: the deposit stands at 0, which is
    `at_risk` (SPEC §3: `new` before any interaction; it once said `new` here)."""
    view, _ = fold([review("r1", day(0), 8), goodwill("g1", day(1))])
    assert (view.deposit, view.trust_status()) == (0, "at_risk")
    assert CustomerView("c", "o", 1).trust_status() == "new"


def test_each_purchase_and_each_promoter_review_adds_one() -> None:
    view, _ = fold(
        [purchase("p1", day(0), "10"), purchase("p2", day(1), "10"), review("r", day(2), 9)]
    )
    assert (view.good_jobs, view.mistakes, view.deposit) == (3, 0, 3)
    assert view.trust_status() == "forgiving"


def test_one_mistake_equals_ten_jobs_done_well() -> None:
    ten_jobs = [purchase(f"p{i}", day(i), "10") for i in range(10)]
    view, _ = fold([*ten_jobs, incident("i1", day(11))])
    # "as long as the balance is positive, customers forgive you": zero is not positive.
    assert (view.deposit, view.trust_status()) == (0, "at_risk")
    view, _ = fold([*ten_jobs, purchase("p10", day(10.5), "10"), incident("i1", day(11))])
    assert (view.deposit, view.trust_status()) == (1, "forgiving")


def test_a_detractor_review_is_a_mistake_and_a_passive_one_is_neither() -> None:
    view, _ = fold([purchase("p1", day(0), "10"), review("r1", day(1), 6), review("r2", day(2), 7)])
    assert (view.good_jobs, view.mistakes, view.deposit) == (1, 1, -9)
    view, _ = fold([review("r0", day(1), 0), review("r8", day(2), 8)])
    assert (view.good_jobs, view.mistakes, view.deposit) == (0, 1, -10)


def test_a_refund_is_neither_a_good_job_nor_a_mistake() -> None:
    view, _ = fold([purchase("p1", day(0), "100"), refund("f1", day(1), "p1", "100.00", 100)])
    assert (view.good_jobs, view.mistakes, view.deposit) == (1, 0, 1)


def test_goodwill_resolving_an_incident_within_48_hours_restores_five() -> None:
    late = day(1) + timedelta(hours=48)
    view, _ = fold([incident("i1", day(1)), goodwill("g1", late, incident_id="i1")])
    assert (view.restored, view.deposit) == (1, -5)


def test_goodwill_after_48_hours_or_naming_no_incident_restores_nothing() -> None:
    too_late = day(1) + timedelta(hours=48, seconds=1)
    view, _ = fold(
        [incident("i1", day(1)), goodwill("g1", too_late, incident_id="i1"), goodwill("g2", day(2))]
    )
    assert (view.restored, view.deposit) == (0, -10)


def test_an_approved_goodwill_counts_from_when_it_was_granted() -> None:
    view, _ = fold(
        [incident("i1", day(1)), goodwill("g1", day(1.5), incident_id="i1", granted_at=day(4))]
    )
    assert view.restored == 0


def test_an_incident_recorded_after_its_goodwill_is_still_resolved() -> None:
    view, _ = fold([goodwill("g1", day(2), incident_id="i1"), incident("i1", day(1))])
    assert (view.mistakes, view.restored, view.deposit) == (1, 1, -5)


def test_one_incident_is_resolved_once_however_many_grants_name_it() -> None:
    view, _ = fold(
        [
            incident("i1", day(1)),
            goodwill("g1", day(1.1), incident_id="i1"),
            goodwill("g2", day(1.2), incident_id="i1"),
        ]
    )
    assert (view.restored, view.deposit) == (1, -5)


def test_more_than_three_grants_in_90_days_flags_a_trust_tester() -> None:
    three = [goodwill(f"g{i}", day(i * 10)) for i in range(3)]
    view, _ = fold(three)
    assert trust_answer(view, day(30), RULES)["flagged"] is False
    view, changes = fold([*three, goodwill("g3", day(40))])
    assert trust_answer(view, day(40), RULES)["flagged"] is True
    assert view.watch is not None and view.watch.flagged
    assert ("TrustStatusChanged", ("new", False)) in changes
    # Once the oldest grant is more than 90 days old, the flag falls.
    assert trust_answer(view, day(90), RULES)["flagged"] is False


def test_grants_spread_over_more_than_90_days_do_not_flag() -> None:
    view, _ = fold([goodwill(f"g{i}", day(i * 31)) for i in range(4)])
    assert trust_answer(view, day(93), RULES)["flagged"] is False


def test_the_change_feed_reports_each_status_change_once() -> None:
    _, changes = fold(
        [purchase("p1", day(0), "10"), purchase("p2", day(1), "10"), incident("i1", day(2))]
    )
    trust = [previous for kind, previous in changes if kind == "TrustStatusChanged"]
    assert trust == [None, ("new", False), ("forgiving", False)]
