"""The ledger on real stores: one customer story, told against each store (SPEC §7).

`LedgerOnAStore` holds the story and the batch behaviour every store must show; each
subclass only says which store. Stores that outlive a `Ledger` (SQLite, PostgreSQL)
also prove exactly-once across restarts and all-or-nothing batches when a concurrent
writer wins the race.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from services.infrastructure.store import StoreURL, positions_of, versions_of
from services.ledger.adapters.contract import validate_event
from services.ledger.application import ledger as ledger_module
from services.ledger.application.ledger import BATCH_ATTEMPTS, Ledger, Outcome
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.intake import IntakeRecord
from services.ledger.domain.lots import REFERRAL_LOT
from services.ledger.domain.rules import ProgramRules

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
REWARD_LOT = REFERRAL_LOT.format(referee_id="boris")  # Anna's reward for bringing Boris


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def eur(value: str) -> dict[str, str]:
    return {"value": value, "currency": "EUR"}


def event(kind: str, customer: str, event_id: str, when: datetime, **fields: Any) -> dict:
    """A POS event as the contract accepts it (checked, so the story stays realistic)."""
    return validate_event(
        {
            "event_id": event_id,
            "type": kind,
            "customer_id": customer,
            "occurred_at": when.isoformat(),
            "store_id": "riga-1",
            "schema_version": 1,
            **fields,
        }
    )


def purchase(customer: str, event_id: str, amount: str, when: datetime) -> dict:
    return event(
        "purchase", customer, event_id, when, receipt_id=f"rc-{event_id}", amount=eur(amount)
    )


def refund(customer: str, event_id: str, original: str, amount: str, when: datetime) -> dict:
    return event("refund", customer, event_id, when, original_event_id=original, amount=eur(amount))


def redemption(customer: str, event_id: str, points: int, when: datetime) -> dict:
    return event("redemption", customer, event_id, when, points=points, reward_id="coffee")


def review(customer: str, event_id: str, rating: int, when: datetime) -> dict:
    return event("review", customer, event_id, when, rating=rating, touchpoint="sales")


def slugs(outcomes: list[Outcome]) -> list[str]:
    return [o.error.slug if o.error else o.status for o in outcomes]


# ---- reading the store back ------------------------------------------------------------
def stored_events(ledger: Ledger) -> list[tuple[int, Any]]:
    found: list[tuple[int, Any]] = []
    start = 1
    while True:
        page = ledger.recorder.select_notifications(start=start, limit=500)
        found += [(n.id, ledger.mapper.to_domain_event(n)) for n in page]
        if len(page) < 500:
            return found
        start = page[-1].id + 1


def customer_postings(ledger: Ledger) -> dict[str, int]:
    """What each customer holds according to the postings of their stored events."""
    owner = {}
    totals: dict[str, int] = defaultdict(int)
    events = stored_events(ledger)
    for _, e in events:
        if isinstance(e, CustomerAccount.Opened):
            owner[e.originator_id] = e.customer_id
    for _, e in events:
        for account, points in getattr(e, "postings", ()):
            if str(account).startswith("customer:"):
                totals[owner[e.originator_id]] += int(points)
    return dict(totals)


def program_postings_total(ledger: Ledger) -> int:
    return sum(int(p) for _, e in stored_events(ledger) for _, p in getattr(e, "postings", ()))


# ---- stores (fixtures `sqlite_url` and `postgres_url` from tests/conftest.py) ------------
class LedgerOnAStore:
    """The story every store must tell the same way. Subclasses provide `store_env`."""

    @pytest.fixture
    def store_env(self) -> dict[str, str]:
        raise NotImplementedError

    @pytest.fixture
    def open_ledger(self, store_env: dict[str, str]) -> Iterator[Callable[[], Ledger]]:
        opened: list[Ledger] = []

        def open_() -> Ledger:
            ledger = Ledger(env=dict(store_env), rules=ProgramRules().with_version(0))
            opened.append(ledger)
            return ledger

        yield open_
        for ledger in reversed(opened):
            ledger.close()

    @pytest.fixture
    def ledger(self, open_ledger: Callable[[], Ledger]) -> Ledger:
        return open_ledger()

    def test_a_customer_story(self, ledger: Ledger) -> None:
        # Anna buys twice, brings her friend Boris, reviews, returns part of a purchase.
        outcomes = ledger.record_batch(
            [
                purchase("anna", "p1", "120.00", day(0)),
                event("referral", "boris", "ref1", day(1), referrer_id="anna"),
                purchase("boris", "bp1", "40.00", day(2)),
                purchase("anna", "p2", "80.00", day(3)),
                review("anna", "r1", 10, day(4)),
                refund("anna", "f1", "p1", "30.00", day(5)),
            ]
        )
        assert [o.status for o in outcomes] == ["accepted"] * 6
        positions = [o.position for o in outcomes]
        assert positions == sorted(positions) and len(set(positions)) == 6
        assert outcomes[0].effect["points"] == 120
        assert outcomes[4].effect["points"] == 50
        assert outcomes[5].effect["takes"] == [["p1", "pending", 30]]
        anna = ledger.account("anna")
        assert (anna.available, anna.pending, anna.debt) == (50, 170, 0)

        # The return window passes: the lots mature, Boris's first purchase pays Anna.
        tick = ledger.tick(day(17), ["anna", "boris"])
        actions = sorted((r["customer_id"], r["action"]) for r in tick.recorded)
        assert actions == [
            ("anna", "matured"),
            ("anna", "matured"),
            ("anna", "referral_rewarded"),
            ("boris", "matured"),
        ]
        assert tick.position == ledger.position()
        assert ledger.tick(day(17), ["anna", "boris"]).recorded == []
        assert ledger.account("anna").available == 50 + 90 + 80 + 500

        # She spends most of it (soonest-expiring lots first), then asks for too much.
        spent = ledger.record(redemption("anna", "x1", 600, day(18)))
        assert spent.effect["allocation"] == [
            ["p1", 90],
            ["p2", 80],
            ["r1", 50],
            [REWARD_LOT, 380],
        ]
        too_much = ledger.record(redemption("anna", "x2", 500, day(19)))
        assert too_much.status == "rejected" and too_much.error is not None
        assert too_much.error.slug == "insufficient-points"

        # A late delivery: small money is granted at once, a big gesture waits for Sam.
        small = event(
            "goodwill",
            "anna",
            "g1",
            day(20),
            amount=eur("10.00"),
            reason_code="late",
            issued_by="ivan",
        )
        big = event(
            "goodwill", "anna", "g2", day(20), points=3000, reason_code="late", issued_by="ivan"
        )
        granted, waiting = ledger.record_batch([small, big])
        assert granted.effect["status"] == "granted" and granted.effect["points"] == 1000
        assert waiting.effect["status"] == "awaiting_approval"
        approved = ledger.approve_goodwill("g2", approved_by="sam", decided_at=day(20.5))
        assert approved.effect["status"] == "granted"
        assert approved.position == ledger.position()
        assert ledger.account("anna").available == 120 + 1000 + 3000

        # She returns the whole second purchase, whose points she already spent: the
        # ledger claws them back from her other available points.
        returned = ledger.record(refund("anna", "f2", "p2", "80.00", day(21)))
        assert returned.effect["points_reversed"] == 80
        assert returned.effect["takes"] == [[REWARD_LOT, "clawback", 80]]
        assert returned.effect["debt_added"] == 0

        # The reward is cancelled: the 600 points go back to their lots.
        cancelled = ledger.record(
            event("redemption_cancel", "anna", "c1", day(22), original_event_id="x1")
        )
        assert cancelled.effect["points"] == 600
        ledger.record(event("incident", "anna", "i1", day(23), severity="low", description="rude"))
        anna = ledger.account("anna")
        assert (anna.available, anna.pending, anna.debt) == (4640, 0, 0)

        # A year on, everything left has expired.
        expired = ledger.tick(day(400), ["anna", "boris"])
        assert {r["action"] for r in expired.recorded} == {"expired"}
        assert sum(r["points"] for r in expired.recorded) == 4640 + 40
        for customer in ("anna", "boris"):
            account = ledger.account(customer)
            assert (account.available, account.pending, account.debt) == (0, 0, 0)

        # The books: every event posts double entry, the customers' postings are their balances.
        assert program_postings_total(ledger) == 0
        assert customer_postings(ledger) == {"anna": 0, "boris": 0}

    def test_balances_equal_the_postings_of_the_stored_events(self, ledger: Ledger) -> None:
        ledger.record_batch(
            [
                purchase("anna", "p1", "100.00", day(0)),
                review("anna", "r1", 3, day(1)),
                purchase("boris", "bp1", "75.50", day(1)),
            ]
        )
        ledger.tick(day(15), ["anna", "boris"])
        ledger.record_batch(
            [redemption("anna", "x1", 150, day(16)), refund("anna", "f1", "p1", "100.00", day(17))]
        )
        anna, boris = ledger.account("anna"), ledger.account("boris")
        assert (anna.available, anna.pending, anna.debt) == (0, 0, 100)
        assert customer_postings(ledger) == {
            "anna": anna.available + anna.pending - anna.debt,
            "boris": boris.available + boris.pending - boris.debt,
        }
        assert program_postings_total(ledger) == 0

    def test_a_batch_answers_each_event_in_order(self, ledger: Ledger) -> None:
        first = ledger.record(purchase("anna", "p0", "10.00", day(0)))
        p1 = purchase("anna", "p1", "50.00", day(1))
        p1_changed = purchase("anna", "p1", "55.00", day(1))
        before = ledger.position()
        outcomes = ledger.record_batch(
            [
                p1,
                redemption("anna", "x1", 10, day(2)),  # points still pending
                p1,  # the same event again, in the same batch
                p1_changed,  # same event_id, other content
                refund("anna", "f1", "p-unknown", "5.00", day(2)),
                review("anna", "r1", 9, day(3)),
                purchase("anna", "p0", "10.00", day(0)),  # stored by an earlier request
                refund("anna", "f2", "p1", "60.00", day(4)),  # more than was bought
                refund("anna", "f3", "p1", "50.00", day(4)),
                event("referral", "anna", "ref1", day(5), referrer_id="anna"),
            ]
        )
        assert slugs(outcomes) == [
            "accepted",
            "insufficient-points",
            "duplicate",
            "event-id-conflict",
            "unknown-original-event",
            "accepted",
            "duplicate",
            "refund-exceeds-purchase",
            "accepted",
            "self-referral",
        ]
        assert [o.event_id for o in outcomes] == [
            "p1", "x1", "p1", "p1", "f1", "r1", "p0", "f2", "f3", "ref1",
        ]  # fmt: skip
        accepted = [o for o in outcomes if o.status == "accepted"]
        assert all(o.position is not None and o.position > before for o in accepted)
        assert outcomes[2].position == outcomes[0].position
        assert outcomes[6].position == first.position
        assert outcomes[8].effect["points_reversed"] == 50
        assert all(o.position is None for o in outcomes if o.status == "rejected")
        # Each refusal is recorded (a repeat gets the same verdict), with no account event.
        refused = ("x1", "f1", "f2", "ref1")
        stored = positions_of(ledger.recorder, [IntakeRecord.create_id(e) for e in refused])
        assert len(stored) == len(refused)
        for event_id in refused:
            record = ledger.repository.get(IntakeRecord.create_id(event_id))
            assert record.refusal is not None and record.source is None
        again = ledger.record_batch([redemption("anna", "x1", 10, day(2))])
        assert again[0].status == "rejected" and again[0].repeat
        assert again[0].error is not None and again[0].error.slug == "insufficient-points"

    def test_the_batch_look_ups_find_each_account_version_and_first_position(
        self, ledger: Ledger
    ) -> None:
        outcomes = ledger.record_batch(
            [purchase("anna", f"p{n}", "10.00", day(n)) for n in range(5)]
            + [purchase("ben", "q0", "10.00", day(1))]
        )
        ids = {name: CustomerAccount.create_id(name) for name in ("anna", "ben", "nobody")}
        versions = versions_of(ledger.recorder, [*ids.values(), ids["anna"]])
        assert versions == {ids["anna"]: 6, ids["ben"]: 2}  # opened, then one per purchase
        assert versions[ids["anna"]] == ledger.account("anna").version
        intakes = [IntakeRecord.create_id(e) for e in ("p0", "q0", "never-sent")]
        assert positions_of(ledger.recorder, intakes) == {
            intakes[0]: outcomes[0].position,
            intakes[1]: outcomes[5].position,
        }

    def test_a_batch_of_500_commits_in_one_transaction(
        self, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        batch = [
            purchase(f"c-{n % 50}", f"b-{n}", f"{10 + n % 90}.{n % 100:02d}", day(n / 100))
            for n in range(400)
        ] + [review(f"c-{n % 50}", f"rv-{n}", n % 11, day(5)) for n in range(100)]
        inserts: list[int] = []
        insert_events = ledger.recorder.insert_events

        def counting(stored_events: Any, **kwargs: Any) -> Any:
            inserts.append(len(stored_events))
            return insert_events(stored_events, **kwargs)

        monkeypatch.setattr(ledger.recorder, "insert_events", counting)
        before = ledger.position()
        outcomes = ledger.record_batch(batch)

        assert [o.status for o in outcomes] == ["accepted"] * 500
        assert len(inserts) == 1  # one insert, one transaction
        positions = [o.position for o in outcomes]
        assert len(set(positions)) == 500
        # Intake records go last, after every account event of the batch, back to back.
        assert max(positions) == ledger.position()
        assert max(positions) - min(positions) == 499
        # 50 openings, 500 account events, 400 receipt records (SPEC §8 "Receipts")
        assert min(positions) == before + 50 + 500 + 400 + 1
        stored = positions_of(
            ledger.recorder, [IntakeRecord.create_id(d["event_id"]) for d in batch]
        )
        assert sorted(stored.values()) == sorted(positions)
        assert ledger.account("c-7").pending == sum(
            o.effect["points"]
            for d, o in zip(batch, outcomes, strict=True)
            if d["customer_id"] == "c-7" and d["type"] == "purchase"
        )


class PersistentLedgerOnAStore(LedgerOnAStore):
    """Stores that outlive the process: restarts and concurrent writers."""

    def test_exactly_once_across_restarts(self, open_ledger: Callable[[], Ledger]) -> None:
        first = open_ledger()
        original = first.record(purchase("anna", "p1", "42.00", day(0)))
        assert original.status == "accepted"
        first.record(review("anna", "r1", 8, day(1)))
        first.close()

        again = open_ledger()
        position = again.position()
        repeat = again.record(purchase("anna", "p1", "42.00", day(0)))
        assert repeat.status == "duplicate"
        assert repeat.position == original.position
        assert repeat.effect == original.effect

        changed = again.record(purchase("anna", "p1", "43.00", day(0)))
        assert changed.status == "rejected" and changed.error is not None
        assert changed.error.slug == "event-id-conflict"
        assert changed.error.status == 409
        assert again.position() == position
        assert again.account("anna").pending == 42

    def test_a_batch_whose_save_fails_leaves_nothing_stored(
        self, open_ledger: Callable[[], Ledger], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ledger, rival = open_ledger(), open_ledger()
        ledger.record(purchase("c-0", "seed", "10.00", day(0)))
        batch = [purchase(f"c-{n % 20}", f"b-{n}", "20.00", day(1)) for n in range(500)]
        real_save = ledger._append
        rival_wins: list[int] = []

        def rival_commits_first(*objects: Any, **kwargs: Any) -> Any:
            # Another instance records for c-0 between our load and our save, every time.
            n = len(rival_wins)
            rival_wins.append(rival.record(purchase("c-0", f"rival-{n}", "1.00", day(2))).position)
            return real_save(*objects, **kwargs)

        monkeypatch.setattr(ledger, "_append", rival_commits_first)
        with pytest.raises(IntegrityError):
            ledger.record_batch(batch)

        # The batch was re-run, and lost each time (a batch gets BATCH_ATTEMPTS tries: a
        # campaign's budget is shared by all its customers, so batches race more often).
        assert len(rival_wins) == BATCH_ATTEMPTS
        assert ledger.position() == rival_wins[-1]
        intake_ids = [IntakeRecord.create_id(d["event_id"]) for d in batch]
        assert positions_of(ledger.recorder, intake_ids) == {}
        assert ledger.find_account("c-1") is None
        assert ledger.account("c-0").pending == 10 + BATCH_ATTEMPTS

        # Nothing half-done is left behind: the same batch goes through afterwards.
        monkeypatch.setattr(ledger, "_append", real_save)
        assert {o.status for o in ledger.record_batch(batch)} == {"accepted"}
        assert ledger.account("c-0").pending == 10 + BATCH_ATTEMPTS + 25 * 20

    def test_a_batch_keeps_trying_past_its_attempts_while_it_has_patience(
        self, open_ledger: Callable[[], Ledger], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Four writers racing for one campaign budget on two cores once lost twelve tries
        in a row: a 500 to the POS. A caller may let a batch keep trying for a while."""
        ledger, rival = open_ledger(), open_ledger()
        ledger.record(purchase("c-0", "seed", "10.00", day(0)))
        real_save = ledger._append
        losses = BATCH_ATTEMPTS + 8

        rivals: list[int] = []

        def rival_first(*objects: Any, **kwargs: Any) -> Any:
            if len(rivals) < losses:  # another instance records for c-0 first, every time
                won = rival.record(purchase("c-0", f"rival-{len(rivals)}", "1.00", day(2)))
                rivals.append(won.position)
            return real_save(*objects, **kwargs)

        monkeypatch.setattr(ledger, "_append", rival_first)
        monkeypatch.setattr(ledger_module, "RETRY_WAIT_MAX", 0.001)
        outcomes = ledger.record_batch([purchase("c-0", "b-1", "20.00", day(1))], patience=20.0)
        assert [o.status for o in outcomes] == ["accepted"]
        assert len(rivals) == losses  # lost every one of those races, then won
        assert ledger.account("c-0").pending == 10 + losses + 20

    def test_a_concurrent_writer_winning_once_makes_the_batch_rerun_on_fresh_state(
        self, open_ledger: Callable[[], Ledger], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ledger, rival = open_ledger(), open_ledger()
        ledger.record(review("anna", "r0", 9, day(0)))  # no purchase: no reward
        ledger.record(purchase("anna", "p1", "10.00", day(0)))
        ledger.record(review("anna", "r1", 9, day(1)))  # 50 available
        real_save = ledger._append
        raced: list[Outcome] = []

        def rival_once(*objects: Any, **kwargs: Any) -> Any:
            if not raced:  # the rival spends the 50 points between our load and our save
                raced.append(rival.record(redemption("anna", "x-rival", 50, day(2))))
            return real_save(*objects, **kwargs)

        monkeypatch.setattr(ledger, "_append", rival_once)
        outcomes = ledger.record_batch(
            [redemption("anna", "x1", 30, day(3)), purchase("anna", "p2", "5.00", day(3))]
        )
        assert raced[0].status == "accepted"
        # Re-run on the fresh state, the redemption no longer finds the points.
        assert slugs(outcomes) == ["insufficient-points", "accepted"]
        anna = ledger.account("anna")
        assert (anna.available, anna.pending) == (0, 15)

    def test_an_admin_decision_is_re_run_when_a_concurrent_writer_wins(
        self, open_ledger: Callable[[], Ledger], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ledger, rival = open_ledger(), open_ledger()
        gesture = event(
            "goodwill", "anna", "g1", day(0), points=5000, reason_code="late", issued_by="ivan"
        )
        assert ledger.record(gesture).effect["status"] == "awaiting_approval"
        self.rival_wins_once(ledger, rival, monkeypatch)
        approved = ledger.approve_goodwill("g1", approved_by="sam", decided_at=day(1))
        assert approved.effect["status"] == "granted"
        anna = ledger.account("anna")
        assert (anna.available, anna.pending) == (5000, 10)

    def test_a_tick_is_re_run_when_a_concurrent_writer_wins(
        self, open_ledger: Callable[[], Ledger], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ledger, rival = open_ledger(), open_ledger()
        ledger.record(purchase("anna", "p0", "30.00", day(-20)))
        self.rival_wins_once(ledger, rival, monkeypatch)
        [matured] = ledger.tick(day(1), ["anna"]).recorded
        assert matured["lot_id"] == "p0"
        anna = ledger.account("anna")
        assert (anna.available, anna.pending) == (30, 10)

    @staticmethod
    def rival_wins_once(ledger: Ledger, rival: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
        """Another instance records a purchase for anna just before `ledger` next saves."""
        real_save = ledger._append
        raced: list[Outcome] = []

        def rival_first(*objects: Any, **kwargs: Any) -> Any:
            if not raced:
                raced.append(rival.record(purchase("anna", "p-rival", "10.00", day(0))))
            return real_save(*objects, **kwargs)

        monkeypatch.setattr(ledger, "_append", rival_first)


class TestLedgerOnSQLite(PersistentLedgerOnAStore):
    @pytest.fixture
    def store_env(self, sqlite_url: str) -> dict[str, str]:
        return StoreURL.parse(sqlite_url).eventsourcing_env()


@pytest.mark.postgres
class TestLedgerOnPostgres(PersistentLedgerOnAStore):
    @pytest.fixture
    def store_env(self, postgres_url: str) -> dict[str, str]:
        return StoreURL.parse(postgres_url).eventsourcing_env()


class TestLedgerInMemory(LedgerOnAStore):
    @pytest.fixture
    def store_env(self) -> dict[str, str]:
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
