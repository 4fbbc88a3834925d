"""Personal fields under a key per customer (SPEC §11, domain/privacy.py): sealed on the
way in, opened on the way out, `erased` for ever once the key is gone; the registries
name real fields; old plaintext events load through the upcasters; erasure takes two
people."""

from __future__ import annotations

import gzip
import shutil
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import orjson
import pytest
from eventsourcing.persistence import StoredEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.infrastructure.keys import MemoryKeyring
from services.ledger.application import erasure
from services.ledger.application.ledger import Ledger
from services.ledger.domain import errors, topics
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.intake import IntakeRecord
from services.ledger.domain.privacy import (
    ERASED,
    PERSONAL_FIELDS,
    POS_PERSONAL_FIELDS,
    Revealer,
    new_key,
    reveal,
    seal,
)
from services.ledger.domain.rules import ProgramRules
from services.resources import schema_dir
from services.tools.simulation import generate_events

GOLDEN = Path(__file__).parents[1] / "golden" / "history.sqlite.gz"
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@given(st.text(max_size=300), st.sampled_from(["anna", "bob", "c:1"]))
def test_a_sealed_field_opens_with_its_key_only(text: str, customer: str) -> None:
    key = new_key()
    sealed = seal(key, customer, text)
    assert sealed is not None and set(sealed) == {"sealed"}
    assert reveal(sealed, key, customer, erased=False) == text
    assert reveal(sealed, None, customer, erased=True) == ERASED  # the key is gone
    assert reveal(sealed, new_key(), customer, erased=False) == ERASED  # another key
    assert reveal(sealed, key, customer + "x", erased=False) == ERASED  # another customer's


def test_old_plaintext_reads_as_itself_until_the_customer_is_erased() -> None:
    for old in ("long queue", {"plain": "long queue"}):
        assert reveal(old, None, "anna", erased=False) == "long queue"
        assert reveal(old, None, "anna", erased=True) == ERASED
    assert reveal(None, None, "anna", erased=True) is None  # no comment stays no comment
    assert reveal({"erased": True}, new_key(), "anna", erased=False) == ERASED


# Events that came after encryption: sealed from their first version.
BORN_SEALED = {"CustomerEnrolled"}


def test_the_registries_name_fields_that_exist() -> None:
    for name, fields in PERSONAL_FIELDS.items():
        declared = getattr(CustomerAccount, name).__annotations__
        assert set(fields) <= set(declared), name
        if name not in BORN_SEALED:  # stored in plain text before version 2
            assert getattr(CustomerAccount, name).class_version >= 2, name
    for kind, fields in POS_PERSONAL_FIELDS.items():
        schema = orjson.loads((schema_dir() / "pos" / f"{kind}.v1.json").read_bytes())
        assert set(fields) <= set(schema["properties"]), kind


class CountingKeyring(MemoryKeyring):
    def __init__(self) -> None:
        super().__init__()
        self.fetches = 0

    def keys_for_writing(self, customer_ids: Iterable[str]) -> dict[str, bytes | None]:
        self.fetches += 1
        return super().keys_for_writing(customer_ids)


def bare(keys: MemoryKeyring | None = None) -> Ledger:
    return Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, rules=ProgramRules(), keys=keys)


def review(n: int, customer: str, comment: str | None = "nice") -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": f"r-{customer}-{n}",
        "type": "review",
        "customer_id": customer,
        "occurred_at": NOW.isoformat(),
        "rating": 9,
        "touchpoint": "sales",
        "schema_version": 1,
    }
    if comment is not None:
        doc["comment"] = f"{comment} {n}"
    return doc


def test_a_batch_fetches_the_keys_once_and_stores_no_plaintext() -> None:
    keys = CountingKeyring()
    ledger = Ledger(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, rules=ProgramRules(), keys=keys
    )
    docs = [review(n, f"c{n % 5}") for n in range(50)] + [review(99, "quiet", None)]
    outcomes = ledger.record_batch(docs)
    assert {o.status for o in outcomes} == {"accepted"}
    assert keys.fetches == 1
    states = [s.state for s in ledger.recorder.select_notifications(start=1, limit=1000)]
    assert not any(b"nice " in state for state in states)
    revealer = Revealer(keys)
    account = ledger.account("c3")
    comments = [
        revealer.field("c3", e.comment)
        for e in ledger.repository.event_store.get(account.id)
        if isinstance(e, CustomerAccount.ReviewRecorded)
    ]
    assert comments == [f"nice {n}" for n in range(3, 50, 5)]
    intake = ledger.repository.get(IntakeRecord.create_id("r-c3-3"))
    assert revealer.document(intake.document)["comment"] == "nice 3"
    ledger.close()


def test_an_enrolments_birthday_is_sealed_and_opens_for_its_customer_only() -> None:
    keys = MemoryKeyring()
    ledger = bare(keys)
    enrolment = {
        "event_id": "enrol-ana",
        "type": "enrolment",
        "customer_id": "ana",
        "occurred_at": NOW.isoformat(),
        "schema_version": 1,
        "birthday": "--07-14",
    }
    assert ledger.record(enrolment).status == "accepted"
    states = [s.state for s in ledger.recorder.select_notifications(start=1, limit=1000)]
    assert not any(b"07-14" in state for state in states)
    account = ledger.account("ana")
    assert Revealer(keys).field("ana", account.birthday) == "--07-14"
    intake = ledger.repository.get(IntakeRecord.create_id("enrol-ana"))
    assert Revealer(keys).document(intake.document)["birthday"] == "--07-14"
    keys.erase("ana")
    assert Revealer(keys).field("ana", account.birthday) == ERASED
    ledger.close()


def test_erasure_takes_two_people_and_the_comments_are_gone_for_good() -> None:
    keys = MemoryKeyring()
    ledger = Ledger(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, rules=ProgramRules(), keys=keys
    )
    ledger.record_batch([review(1, "anna")])
    before = ledger.account("anna")
    asked = erasure.request_erasure(
        ledger,
        "anna",
        requested_by="dpo",
        reason="ticket 1",
        occurred_at=NOW,
        requested_with_key="k1",
    )
    assert asked.effect["status"] == "awaiting_approval"
    with pytest.raises(errors.NotPending):  # one request at a time
        erasure.request_erasure(ledger, "anna", requested_by="x", reason="y", occurred_at=NOW)
    with pytest.raises(errors.MakerChecker):
        erasure.approve_erasure(ledger, "anna", approved_by="dpo", decided_at=NOW)
    with pytest.raises(errors.MakerChecker):
        erasure.approve_erasure(
            ledger, "anna", approved_by="cfo", decided_at=NOW, approver_key="k1"
        )
    assert keys.keys_for_reading(["anna"])["anna"] is not None  # a refusal deletes nothing
    erasure.approve_erasure(ledger, "anna", approved_by="cfo", decided_at=NOW, approver_key="k2")
    after = ledger.account("anna")
    assert after.erased and (after.available, after.pending) == (before.available, before.pending)
    assert keys.keys_for_writing(["anna"]) == {"anna": None}  # never a new key
    ledger.record_batch([review(2, "anna")])
    last = list(ledger.repository.event_store.get(after.id))[-1]
    assert last.comment == {"erased": True}
    with pytest.raises(errors.NotPending):
        erasure.request_erasure(ledger, "anna", requested_by="dpo", reason="again", occurred_at=NOW)
    ledger.close()


def test_an_erasure_can_be_rejected() -> None:
    ledger = bare()
    ledger.record_batch([review(1, "bob")])
    erasure.request_erasure(ledger, "bob", requested_by="dpo", reason="t", occurred_at=NOW)
    erasure.reject_erasure(ledger, "bob", rejected_by="cfo", decided_at=NOW)
    assert not ledger.account("bob").erased and not ledger.account("bob").requests
    with pytest.raises(errors.NotPending):
        erasure.approve_erasure(ledger, "bob", approved_by="cfo", decided_at=NOW)
    ledger.close()


@pytest.fixture(scope="module")
def golden_states(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    path = tmp_path_factory.mktemp("golden") / "store.db"
    with gzip.open(GOLDEN) as packed, open(path, "wb") as db:
        shutil.copyfileobj(packed, db)
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT topic, state FROM stored_events WHERE topic IN (?, ?, ?) AND "
            '(CAST(state AS TEXT) LIKE \'%"comment":"%\' OR topic != ?)',
            (
                topics.ACCOUNT_EVENTS["ReviewRecorded"],
                topics.ACCOUNT_EVENTS["IncidentReported"],
                topics.INTAKE_EVENTS["Accepted"],
                topics.ACCOUNT_EVENTS["ReviewRecorded"],
            ),
        ).fetchall()
    found: dict[str, bytes] = {}
    for topic, state in rows:
        if topic == topics.INTAKE_EVENTS["Accepted"] and b'"type":"incident"' not in state:
            continue
        found.setdefault(topic, bytes(state))
    return found


def test_old_plaintext_events_load_through_the_upcasters(golden_states: dict[str, bytes]) -> None:
    ledger = bare()
    loaded = {
        topic: ledger.mapper.to_domain_event(
            StoredEvent(originator_id=uuid4(), originator_version=2, topic=topic, state=state)
        )
        for topic, state in golden_states.items()
    }
    incident = loaded[topics.ACCOUNT_EVENTS["IncidentReported"]]
    assert incident.description == {
        "plain": orjson.loads(golden_states[incident.TOPIC])["description"]
    }
    review_event = loaded[topics.ACCOUNT_EVENTS["ReviewRecorded"]]
    assert set(review_event.comment) == {"plain"}
    intake = loaded[topics.INTAKE_EVENTS["Accepted"]]
    assert set(intake.document["description"]) == {"plain"}
    ledger.close()


def test_a_refusal_of_an_erased_customer_carries_no_personal_text() -> None:
    """What a dead letter and a 422 carry: the problem document, never the free text."""
    from services.ledger.api.refusals import ledger_error_document

    keys = MemoryKeyring()
    ledger = bare(keys)
    ledger.record_batch([review(1, "cem")])
    erasure.request_erasure(ledger, "cem", requested_by="dpo", reason="t", occurred_at=NOW)
    erasure.approve_erasure(ledger, "cem", approved_by="cfo", decided_at=NOW)
    refund = {
        "event_id": "refund-of-nothing",
        "type": "refund",
        "customer_id": "cem",
        "occurred_at": NOW.isoformat(),
        "original_event_id": "never-seen",
        "amount": {"value": "5.00", "currency": "EUR"},
        "reason": "my neighbour Mr X returned it",
        "schema_version": 1,
    }
    [outcome] = ledger.record_batch([refund])
    assert outcome.status == "rejected" and outcome.error is not None
    assert "Mr X" not in orjson.dumps(ledger_error_document(outcome.error)).decode()
    record = ledger.repository.get(IntakeRecord.create_id("refund-of-nothing"))
    assert record.document["reason"] == {"erased": True}
    assert ledger.record_batch([refund])[0].repeat  # a retry is still the same refusal
    ledger.close()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(min_value=0, max_value=10_000),
    st.lists(st.integers(min_value=0, max_value=7), max_size=4, unique=True),
    st.integers(min_value=20, max_value=200),
)
def test_erasing_anyone_at_any_time_changes_no_books(
    seed: int, erased: list[int], when: int
) -> None:
    """Two ledgers take the same random history; one erases some customers part way.
    Every account's lots, balances and debt end the same, and the postings sum to zero."""
    docs = list(generate_events(seed, 8, 240, datetime(2025, 3, 3, tzinfo=UTC)))
    plain, erasing = bare(), bare()
    gone: set[str] = set()
    for n in range(0, len(docs), 20):
        batch = docs[n : n + 20]
        for ledger in (plain, erasing):
            ledger.record_batch(batch)
            ledger.tick(datetime.fromisoformat(batch[-1]["occurred_at"]), known(docs[: n + 20]))
        if n == when - when % 20:
            with_accounts = [w for w in known(docs[: n + 20]) if erasing.find_account(w)]
            for who in with_accounts[: len(erased)]:
                gone.add(who)
                erasure.request_erasure(
                    erasing, who, requested_by="dpo", reason="t", occurred_at=NOW
                )
                erasure.approve_erasure(erasing, who, approved_by="cfo", decided_at=NOW)
    try:
        for who in known(docs):
            a, b = plain.find_account(who), erasing.find_account(who)
            assert (a is None) is (b is None)
            if a is None or b is None:
                continue
            assert (a.available, a.pending, a.debt) == (b.available, b.pending, b.debt)
            assert a.lots == b.lots
            assert b.erased is (who in gone)
            for e in erasing.repository.event_store.get(b.id):
                assert sum(delta for _, delta in getattr(e, "postings", None) or ()) == 0
    finally:
        plain.close()
        erasing.close()


def known(docs: list[dict[str, Any]]) -> list[str]:
    return sorted({c for d in docs for c in (d["customer_id"], d.get("referrer_id")) if c})
