"""NPS (seed 003, SPEC §4): promoters 9-10, passives 7-8, detractors 0-6,
NPS = %promoters - %detractors, overall, per store and per touchpoint."""

from __future__ import annotations

from services.projections.views.program import ProgramView, nps_answer, nps_class, nps_score
from tests.unit.view_events import day, review


def test_ratings_fall_into_three_classes() -> None:
    assert [nps_class(r) for r in range(11)] == [2] * 7 + [1] * 2 + [0] * 2


def test_nps_is_percent_promoters_minus_percent_detractors() -> None:
    assert nps_answer(2, 1, 1) == {
        "nps": 25.0,
        "promoters": 2,
        "passives": 1,
        "detractors": 1,
        "responses": 4,
    }
    assert nps_score(0, 0, 3) == -100.0
    assert nps_score(1, 1, 1) == 0.0
    assert nps_score(2, 0, 1) == 33.3
    assert nps_score(0, 0, 0) is None


def test_the_program_counts_responses_per_store_and_touchpoint() -> None:
    program = ProgramView()
    for n, (rating, touchpoint) in enumerate(
        [(10, "sales"), (9, "service"), (3, "sales"), (7, "sales")]
    ):
        _, fields = review(f"r{n}", day(n), rating, touchpoint=touchpoint)
        program.apply_account("ReviewRecorded", fields, 0, 0, 0)
    assert program.nps == {("riga-1", "sales"): [1, 1, 1], ("riga-1", "service"): [1, 0, 0]}
    promoters, passives, detractors = (sum(c[i] for c in program.nps.values()) for i in range(3))
    assert nps_answer(promoters, passives, detractors)["nps"] == 25.0
