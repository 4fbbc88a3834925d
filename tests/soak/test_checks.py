"""The soak's checker fails when an invariant is broken: each test fabricates a history
with one violation (a double, a lie in the DLQ, a reordering, a missing change)."""

from __future__ import annotations

from tests.soak import checks
from tests.soak.checks import Change, Intake, Letter, Produced
from tests.soak.schedule import draw


def history() -> tuple[list[Produced], list[Intake], list[Letter], dict[str, list[str]]]:
    """c1 buys twice (e1, e2), e3 is refused, e1 is sent again, p0 is poison."""
    produced = [
        Produced(0, 0, "c1", "e1", True),
        Produced(0, 1, "c1", "e2", True),
        Produced(0, 2, "c1", "e3", True),
        Produced(0, 3, "c1", "e1", True),  # a POS retry: a duplicate
        Produced(0, 4, "c1", "p0", False),
        Produced(0, 5, "c1", "e3", True),  # a retry of the refused event: no second letter
    ]
    intake = [
        Intake("e1", True),
        Intake("e2", True),
        Intake("e3", False, "insufficient-points", (0, 2)),
    ]
    letters = [Letter((0, 2), "insufficient-points"), Letter((0, 4), "malformed-json")]
    accounts = {"c1": ["e1", "e1", "e2"]}  # one POS event may cause several account events
    return produced, intake, letters, accounts


def test_a_clean_history_passes_every_check() -> None:
    produced, intake, letters, accounts = history()
    assert checks.each_event_once(produced, intake, letters).ok
    assert checks.customer_order_kept(produced, intake, accounts).ok


def test_an_event_stored_twice_fails() -> None:
    produced, intake, letters, _ = history()
    verdict = checks.each_event_once(produced, [*intake, Intake("e2", True)], letters)
    assert not verdict.ok
    assert "e2: 2 intake records" in verdict.violations[0]


def test_an_event_accepted_and_dead_lettered_fails() -> None:
    produced, intake, letters, _ = history()
    verdict = checks.each_event_once(
        produced, intake, [*letters, Letter((0, 1), "insufficient-points")]
    )
    assert not verdict.ok
    assert any("e2: accepted and dead-lettered" in v for v in verdict.violations)


def test_a_refusal_dead_lettered_twice_or_never_or_for_another_reason_fails() -> None:
    produced, intake, letters, _ = history()
    twice = checks.each_event_once(produced, intake, [*letters, letters[0]])
    never = checks.each_event_once(produced, intake, letters[1:])
    other = checks.each_event_once(produced, intake, [Letter((0, 2), "self-referral"), letters[1]])
    assert "e3: refused (insufficient-points), 2 dead letters" in twice.violations
    assert "e3: refused (insufficient-points), 0 dead letters" in never.violations
    assert "e3: refused as insufficient-points, dead-lettered as self-referral" in other.violations


def test_a_retry_of_a_refused_event_dead_lettered_again_fails() -> None:
    produced, intake, letters, _ = history()
    verdict = checks.each_event_once(
        produced, intake, [*letters, Letter((0, 5), "insufficient-points")]
    )
    assert not verdict.ok
    assert "unexplained" in verdict.violations[0]


def test_a_lost_event_and_a_stored_poison_message_fail() -> None:
    produced, intake, letters, _ = history()
    lost = checks.each_event_once(produced, intake[1:], letters)
    stored = checks.each_event_once(produced, [*intake, Intake("p0", True)], letters)
    assert any("e1 (p0@0): lost" in v for v in lost.violations)
    assert "poison p0: stored" in stored.violations


def test_a_customer_whose_events_were_stored_out_of_order_fails() -> None:
    produced, intake, _, _ = history()
    verdict = checks.customer_order_kept(produced, intake, {"c1": ["e2", "e1"]})
    assert not verdict.ok
    assert verdict.violations == ["c1: stored ['e2', 'e1'], produced ['e1', 'e2']"]


def test_the_change_feed_may_repeat_but_not_lose_or_reorder() -> None:
    outbox = [Change("m1", "c1"), Change("m2", "c1"), Change("m3", "c2")]
    repeated = [Change("m1", "c1"), Change("m3", "c2"), Change("m1", "c1"), Change("m2", "c1")]
    assert checks.feed_complete_and_ordered(outbox, repeated).ok
    lost = checks.feed_complete_and_ordered(outbox, outbox[:2])
    swapped = checks.feed_complete_and_ordered(outbox, [outbox[1], outbox[0], outbox[2]])
    assert lost.violations == ["c2: 1 outbox rows never on the feed"]
    assert not swapped.ok


def test_the_same_seed_draws_the_same_faults_and_another_seed_others() -> None:
    assert draw(5, 60) == draw(5, 60)
    assert draw(5, 60) != draw(6, 60)
    kinds = {f.kind for f in draw(5, 60)}
    assert kinds == {"kill", "kill-consumers", "pause-broker", "restart-postgres"}
