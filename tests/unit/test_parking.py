"""Out of order (SPEC §8): a follow-up whose original the ledger has not seen yet is
parked, applied with its original when that arrives (same transaction, occurred_at
order), refused with `unknown-original-event` once it waited `park_days`, and a repeat
answers what it is at the time (parked, then the applied verdict)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from services.ledger.application.ledger import Ledger
from services.ledger.domain.clock import iso, utcnow
from services.ledger.domain.intake import IntakeRecord

NOW = utcnow().replace(microsecond=0)


def at(hours: float) -> str:
    return iso(NOW - timedelta(hours=48) + timedelta(hours=hours))


def purchase(
    event_id: str,
    customer: str = "ana",
    amount: str = "100.00",
    h: float = 0,
    receipt: str | None = None,
) -> Any:
    return {
        "event_id": event_id,
        "type": "purchase",
        "customer_id": customer,
        "occurred_at": at(h),
        "store_id": "s1",
        "schema_version": 1,
        "receipt_id": receipt or f"r-{event_id}",
        "amount": {"value": amount, "currency": "EUR"},
    }


def refund(event_id: str, original: str, amount: str, customer: str = "ana", h: float = 1) -> Any:
    return {
        "event_id": event_id,
        "type": "refund",
        "customer_id": customer,
        "occurred_at": at(h),
        "store_id": "s1",
        "schema_version": 1,
        "original_event_id": original,
        "amount": {"value": amount, "currency": "EUR"},
    }


def ledger(env: dict[str, str] | None = None) -> Ledger:
    return Ledger({"PERSISTENCE_MODULE": "eventsourcing.popo", **(env or {})})


def test_a_refund_before_its_purchase_is_parked_then_applied_with_it() -> None:
    app = ledger()
    parked = app.record(refund("f1", "p1", "40.00"))
    assert parked.status == "parked" and parked.position is not None
    assert app.record(refund("f1", "p1", "40.00")).status == "parked"  # a repeat
    assert [i.event_id for i in app.parked.page(0, 10)[0]] == ["f1"]

    bought = app.record(purchase("p1"))
    assert bought.status == "accepted"
    assert bought.effect["applied_follow_ups"] == ["f1"]
    account = app.account("ana")
    assert account.purchases["p1"].refunded == 40 and account.parked == {}
    assert app.parked.page(0, 10)[0] == []

    repeat = app.record(refund("f1", "p1", "40.00"))
    assert repeat.status == "duplicate" and repeat.effect["points_reversed"] == 40
    assert repeat.position == bought.position  # where its effect is in the store


def test_follow_ups_are_applied_in_occurred_at_order() -> None:
    app = ledger()
    # The later refund comes first; applied in occurred_at order, the second would be
    # refused if it ran first (it leaves 10.00 of 100.00 to refund).
    assert app.record(refund("f2", "p1", "10.00", h=3)).status == "parked"
    assert app.record(refund("f1", "p1", "90.00", h=2)).status == "parked"
    bought = app.record(purchase("p1"))
    assert bought.effect["applied_follow_ups"] == ["f1", "f2"]
    assert app.account("ana").purchases["p1"].refunded == 100


def test_a_follow_up_parked_and_released_in_one_batch_is_accepted() -> None:
    app = ledger()
    outcomes = app.record_batch([refund("f1", "p1", "5.00"), purchase("p1")])
    assert [o.status for o in outcomes] == ["accepted", "accepted"]
    assert outcomes[0].effect["points_reversed"] == 5
    assert app.record(refund("f1", "p1", "5.00")).status == "duplicate"


def test_a_refund_of_a_known_event_of_another_customer_is_refused_not_parked() -> None:
    app = ledger()
    app.record(purchase("p1", customer="ben"))
    outcome = app.record(refund("f1", "p1", "5.00", customer="ana"))
    assert outcome.status == "rejected" and outcome.error is not None
    assert outcome.error.slug == "unknown-original-event"


def test_a_follow_up_older_than_park_days_is_refused_at_once() -> None:
    app = ledger()
    old = refund("f1", "p1", "5.00", h=-24 * 8)
    outcome = app.record(old)
    assert outcome.status == "rejected" and outcome.error is not None
    assert outcome.error.slug == "unknown-original-event"


def test_the_sweep_refuses_what_waited_past_park_days_and_a_repeat_answers_that() -> None:
    app = ledger()
    assert app.record(refund("f1", "p1", "5.00")).status == "parked"
    early = app.tick(NOW + timedelta(days=1), ["ana"])
    assert early.recorded == []
    late = app.tick(NOW + timedelta(days=7), ["ana"])
    assert late.recorded == [{"customer_id": "ana", "action": "parked_expired", "event_id": "f1"}]
    assert app.tick(NOW + timedelta(days=8), ["ana"]).recorded == []
    repeat = app.record(refund("f1", "p1", "5.00"))
    assert repeat.status == "rejected" and repeat.repeat and repeat.error is not None
    assert repeat.error.slug == "unknown-original-event"
    # A redelivered message of it gets no ordinary dead letter: its letter is the late one.
    assert repeat.late
    record: IntakeRecord = app.repository.get(IntakeRecord.create_id("f1"))
    assert record.refusal is not None and not record.parked
    # The purchase itself is taken; the expired refund is not applied to it.
    bought = app.record(purchase("p1"))
    assert bought.status == "accepted" and "applied_follow_ups" not in bought.effect
    assert app.account("ana").purchases["p1"].refunded == 0
    assert app.parked.due_customers(NOW + timedelta(days=30)) == []


def test_a_parked_follow_up_survives_a_restart(tmp_path: Any) -> None:
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "l.db")}
    first = ledger(env)
    assert first.record(refund("f1", "p1", "5.00")).status == "parked"
    first.close()
    second = ledger(env)
    assert second.record(refund("f1", "p1", "5.00")).status == "parked"
    assert [i.event_id for i in second.parked.page(0, 10)[0]] == ["f1"]
    assert second.record(purchase("p1")).effect["applied_follow_ups"] == ["f1"]
    second.close()


def test_the_parking_events_match_their_stored_schemas() -> None:
    import jsonschema
    import orjson

    from services.ledger.domain import stored_schemas, topics

    root = Path(__file__).parents[2] / "schemas" / "stored"
    files = {
        topic: stored_schemas.file_name(a, cls) for a, topic, cls in stored_schemas.stored_classes()
    }
    app = ledger()
    app.record(refund("f1", "p1", "5.00"))
    kafka = {"topic": "loyalty.pos-events.v1", "partition": 1, "offset": 7}
    app.record_batch([refund("f2", "p2", "5.00")], [kafka])
    app.record(purchase("p1"))
    app.tick(NOW + timedelta(days=9), ["ana"])
    (owed,) = app.late_refusals.refresh()  # f2 came from Kafka: it owes a dead letter
    assert (owed.event_id, owed.source) == ("f2", kafka)
    app.late_dead_lettered(["f2"], "loyalty.pos-events.dlq")
    assert app.late_refusals.refresh() == []
    app.record(refund("f3", "p3", "500.00"))
    app.record(purchase("p3"))  # f3 refused: more than the purchase
    wanted = {
        *(
            topics.INTAKE_EVENTS[n]
            for n in ("Parked", "ParkedApplied", "ParkedRefused", "LateDeadLettered")
        ),
        *(topics.ACCOUNT_EVENTS[n] for n in ("FollowUpParked", "FollowUpReleased")),
    }
    seen = set()
    for notification in app.recorder.select_notifications(start=1, limit=1000):
        if notification.topic in wanted:
            schema = orjson.loads((root / files[notification.topic]).read_bytes())
            jsonschema.Draft202012Validator(schema).validate(orjson.loads(notification.state))
            seen.add(notification.topic)
    assert seen == wanted


def test_a_follow_up_of_a_refused_original_is_refused_with_it() -> None:
    app = ledger()
    assert app.record(purchase("p0", receipt="r-same")).status == "accepted"
    assert app.record(refund("f1", "p1", "5.00")).status == "parked"
    refused = app.record(purchase("p1", receipt="r-same"))  # duplicate-receipt
    assert refused.status == "rejected" and refused.error is not None
    assert refused.error.slug == "duplicate-receipt"
    repeat = app.record(refund("f1", "p1", "5.00"))
    assert repeat.status == "rejected" and repeat.error is not None
    assert repeat.error.slug == "unknown-original-event" and "was refused" in repeat.error.detail
    assert app.account("ana").parked == {} and app.parked.page(0, 10)[0] == []
