"""POS intake and admin commands over HTTP (SPEC §6), end to end through the FastAPI app.

Every refusal is an RFC 9457 problem document, and a refused request stores nothing: the
tests read the store's position before and after each one.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eventsourcing.persistence import IntegrityError, OperationalError
from fastapi.testclient import TestClient

from services.api import create_app
from services.bootstrap import Container, build
from services.http.auth import ApiKeys
from services.ledger.api import events as events_module
from services.ledger.application import ledger as ledger_module
from services.ledger.domain.errors import PROBLEM_BASE
from services.ledger.domain.intake import IntakeRecord
from services.resources import schema_dir
from services.settings import Settings

KEYS = {
    "pos": "pos-key-000000000000",
    "service": "svc-key-0000000000000",
    "auditor": "aud-key-0000000000000",
    "admin": "adm-key-00000000000000",
    "admin2": "adm-key-second-000000000",  # a second admin, for maker-checker
}
PROBLEM_JSON = "application/problem+json"


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}"}


POS, ADMIN, SECOND_ADMIN = auth("pos"), auth("admin"), auth("admin2")


def envelope(kind: str, event_id: str, customer: str = "cust-42", **fields: Any) -> dict:
    return {
        "event_id": event_id,
        "type": kind,
        "customer_id": customer,
        "occurred_at": "2026-03-01T10:15:00+02:00",
        "store_id": "riga-1",
        "schema_version": 1,
        **fields,
    }


def purchase(event_id: str, value: str = "125.40", **changes: Any) -> dict:
    doc = envelope(
        "purchase",
        event_id,
        receipt_id=f"rc-{event_id}",
        amount={"value": value, "currency": "EUR"},
    )
    return {**doc, **changes}


def refund(event_id: str, original: str, value: str) -> dict:
    amount = {"value": value, "currency": "EUR"}
    return envelope("refund", event_id, original_event_id=original, amount=amount)


def redemption(event_id: str, points: int) -> dict:
    return envelope("redemption", event_id, points=points, reward_id="free-coffee")


def goodwill(event_id: str, issued_by: str = "clerk-7", **grant: Any) -> dict:
    return envelope("goodwill", event_id, reason_code="late_delivery", issued_by=issued_by, **grant)


def assert_problem(
    answer: httpx.Response, status: int, slug: str, field: str | None = None
) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM_JSON)
    body = answer.json()
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status
    assert body["title"] and body["detail"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
        assert all(e["message"] for e in body["errors"])
    return body


# ---- the app on a store ---------------------------------------------------------------
def open_app(
    url: str, var_dir: Path, *, raise_server_exceptions: bool = True
) -> Iterator[tuple[Container, TestClient]]:
    container = build(
        Settings(store=url, var_dir=var_dir),
        api_keys=ApiKeys.parse(",".join(f"{role.rstrip('2')}:{key}" for role, key in KEYS.items())),
        with_projections=False,
    )
    try:
        app = create_app(container)
        with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:
            yield container, client
    finally:
        container.close()


@pytest.fixture
def app(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[Container, TestClient]]:
    yield from open_app(sqlite_url, tmp_path)


@pytest.fixture
def any_store_app(store_url: str, tmp_path: Path) -> Iterator[tuple[Container, TestClient]]:
    """The app on each store (`store_url` from tests/conftest.py: SQLite, PostgreSQL)."""
    yield from open_app(store_url, tmp_path)


@pytest.fixture
def lenient_app(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[Container, TestClient]]:
    """The app on SQLite, answering 500 for a server error instead of raising it here."""
    yield from open_app(sqlite_url, tmp_path, raise_server_exceptions=False)


@pytest.fixture
def client(app: tuple[Container, TestClient]) -> TestClient:
    return app[1]


class Unchanged:
    """Asserts that the store's position did not move inside the block."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def __enter__(self) -> None:
        self.before = self.container.ledger.position()

    def __exit__(self, *exc: object) -> None:
        assert self.container.ledger.position() == self.before


class OnlyTheRefusalRecorded:
    """Asserts that the block stored nothing but records of refusals (no account event)."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def __enter__(self) -> None:
        self.before = self.container.ledger.position()

    def __exit__(self, *exc: object) -> None:
        ledger = self.container.ledger
        stored = ledger.recorder.select_notifications(start=self.before + 1, limit=1000)
        events = [ledger.mapper.to_domain_event(n) for n in stored]
        assert events and all(isinstance(e, IntakeRecord.Refused) for e in events), events


# ---- one event --------------------------------------------------------------------------
def test_an_event_is_accepted_once_and_a_repeat_answers_the_original_position(
    any_store_app: tuple[Container, TestClient],
) -> None:
    container, client = any_store_app
    first = client.post("/v1/events", json=purchase("pos-17:receipt-0001"), headers=POS)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["event_id"] == "pos-17:receipt-0001" and body["status"] == "accepted"
    assert body["position"] == container.ledger.position()
    assert body["effect"]["points"] == 125 and body["effect"]["status"] == "pending"

    with Unchanged(container):
        repeat = client.post("/v1/events", json=purchase("pos-17:receipt-0001"), headers=POS)
        assert repeat.status_code == 200
        assert repeat.json() == {**body, "status": "duplicate"}

        other = purchase("pos-17:receipt-0001", value="125.41")
        problem = assert_problem(
            client.post("/v1/events", json=other, headers=POS), 409, "event-id-conflict", "event_id"
        )
        assert "pos-17:receipt-0001" in problem["detail"]


def test_every_example_in_the_contract_is_accepted(client: TestClient) -> None:
    examples = sorted((schema_dir() / "examples").glob("*.json"))
    docs = [json.loads(path.read_bytes()) for path in examples]
    assert docs, "no examples in schemas/examples"
    # In a plausible order: what a refund, redemption or cancel refers to comes first.
    order = ["purchase", "referral", "review", "incident", "goodwill", "refund", "redemption"]
    order += ["enrolment", "donation", "redemption_hold", "redemption_capture", "redemption_void"]
    docs.sort(key=lambda d: order.index(d["type"]) if d["type"] in order else 99)
    answers = {}
    for doc in docs:
        if doc["type"] == "redemption":  # by then the purchase's points have matured
            client.post("/v1/admin/tick", json={"now": "2026-03-20T00:00:00Z"}, headers=ADMIN)
        answer = client.post("/v1/events", json=doc, headers=POS)
        answers[doc["event_id"]] = answer.status_code, answer.json()
    refused = {k: v for k, v in answers.items() if v[0] not in (200, 201)}
    # Only the USD example is refused, by the program's currency rule, not by the contract.
    assert list(refused) == ["web.order.99812"], refused
    assert refused["web.order.99812"][1]["type"] == PROBLEM_BASE + "currency-mismatch"


# ---- the contract: invalid events are refused with the failing field ---------------------
def _too_large() -> dict:
    """A purchase that is valid in every field but over 64 KiB as a whole."""
    item = {"sku": "S" * 64, "qty": 1, "unit_price": {"value": "1.00", "currency": "EUR"}}
    return purchase("big-1", items=[{**item, "category": "c" * 64}] * 500)


def _without(doc: dict, *names: str) -> dict:
    return {k: v for k, v in doc.items() if k not in names}


INVALID: dict[str, tuple[Any, int, str, str | None]] = {
    "malformed json": (b'{"event_id": "e1", "type": "purchase",', 400, "malformed-json", None),
    "a json array": (b"[]", 400, "malformed-json", None),
    "negative money": (
        purchase("e1", value="-25.00"),
        422,
        "invalid-event",
        "amount.value",
    ),
    "zero money": (purchase("e1", value="0.00"), 422, "invalid-event", "amount.value"),
    "float money": (
        {**purchase("e1"), "amount": {"value": 25.5, "currency": "EUR"}},
        422,
        "invalid-event",
        "amount.value",
    ),
    "float points": (redemption("e1", 5) | {"points": 5.0}, 422, "invalid-event", "points"),
    "unknown type": (envelope("teleport", "e1"), 422, "invalid-event", "type"),
    "missing receipt": (_without(purchase("e1"), "receipt_id"), 422, "invalid-event", "receipt_id"),
    "missing customer": (
        _without(purchase("e1"), "customer_id"),
        422,
        "invalid-event",
        "customer_id",
    ),
    "unknown field": (purchase("e1", coupon="X"), 422, "invalid-event", "coupon"),
    "timestamp without offset": (
        purchase("e1", occurred_at="2026-03-01T10:15:00"),
        422,
        "invalid-event",
        "occurred_at",
    ),
    "impossible date": (
        purchase("e1", occurred_at="2026-02-30T10:15:00+02:00"),
        422,
        "invalid-event",
        "occurred_at",
    ),
    "unknown currency": (
        {**purchase("e1"), "amount": {"value": "25.00", "currency": "EUX"}},
        422,
        "invalid-event",
        "amount.currency",
    ),
    "rating above 10": (
        envelope("review", "e1", rating=11, touchpoint="sales"),
        422,
        "invalid-event",
        "rating",
    ),
    "goodwill with points and amount": (
        goodwill("e1", points=5, amount={"value": "1.00", "currency": "EUR"}),
        422,
        "invalid-event",
        "amount",
    ),
    "bad event_id": (purchase("e 1"), 422, "invalid-event", "event_id"),
    "over 64 KiB": (_too_large(), 413, "payload-too-large", None),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_an_invalid_event_is_refused_with_a_problem_naming_the_field(
    case: str, app: tuple[Container, TestClient]
) -> None:
    container, client = app
    client.post("/v1/events", json=purchase("p0"), headers=POS)
    body, status, slug, field = INVALID[case]
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    with Unchanged(container):
        answer = client.post(
            "/v1/events",
            content=content,
            headers={**POS, "Content-Type": "application/json"},
        )
        assert_problem(answer, status, slug, field)
    if case == "over 64 KiB":
        assert len(content) > 64 * 1024


def test_a_timestamp_the_ledger_cannot_date_is_refused_and_does_not_sink_the_batch(
    lenient_app: tuple[Container, TestClient],
) -> None:
    container, client = lenient_app
    late_in_9999 = purchase("p-future", occurred_at="9999-06-01T00:00:00Z")
    with OnlyTheRefusalRecorded(container):
        answer = client.post("/v1/events", json=late_in_9999, headers=POS)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith(PROBLEM_JSON)
        assert "occurred_at" in [e["field"] for e in answer.json()["errors"]]
    batch = {"events": [purchase("p-today"), late_in_9999]}
    answer = client.post("/v1/events:batch", json=batch, headers=POS)
    assert answer.status_code == 200, answer.text
    assert [r["status"] for r in answer.json()["results"]] == ["accepted", "rejected"]


# ---- rules: well-formed events the program refuses -----------------------------------------
def test_refusals_by_the_rules_are_problems_and_store_only_the_verdict(
    app: tuple[Container, TestClient],
) -> None:
    container, client = app
    assert (
        client.post("/v1/events", json=purchase("p1", value="100.00"), headers=POS).status_code
        == 201
    )
    refusals = [
        (refund("f1", "p-unknown", "10.00"), "unknown-original-event", "original_event_id"),
        (refund("f2", "p1", "100.01"), "refund-exceeds-purchase", "amount.value"),
        (redemption("x1", 1), "insufficient-points", "points"),  # the 100 are still pending
        (
            purchase("p2") | {"amount": {"value": "10.00", "currency": "USD"}},
            "currency-mismatch",
            "amount.currency",
        ),
        (purchase("p3") | {"receipt_id": "rc-p1"}, "duplicate-receipt", "receipt_id"),
        (
            envelope("referral", "ref1", referrer_id="cust-42"),
            "self-referral",
            "referrer_id",
        ),
        (
            envelope("redemption_cancel", "c1", original_event_id="x-unknown"),
            "unknown-original-event",
            "original_event_id",
        ),
    ]
    for doc, slug, field in refusals:
        with OnlyTheRefusalRecorded(container):
            answer = client.post("/v1/events", json=doc, headers=POS)
            assert_problem(answer, 422, slug, field)
    # A refusal is final, like an acceptance: once the rule would allow it, the same event
    # is still refused the same way (a POS that wants another try sends a new event_id).
    client.post("/v1/admin/tick", json={"now": "2026-03-20T00:00:00Z"}, headers=ADMIN)
    with Unchanged(container):
        answer = client.post("/v1/events", json=redemption("x1", 1), headers=POS)
        assert_problem(answer, 422, "insufficient-points", "points")
    answer = client.post("/v1/events", json=redemption("x1-again", 1), headers=POS)
    assert answer.status_code == 201, answer.text


# ---- auth -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "status", "slug"),
    [
        ({}, 401, "unauthenticated"),
        ({"Authorization": "Bearer not-a-known-key-at-all"}, 401, "unauthenticated"),
        ({"Authorization": f"Basic {KEYS['pos']}"}, 401, "unauthenticated"),
        (auth("service"), 403, "forbidden"),
        (auth("auditor"), 403, "forbidden"),
    ],
)
def test_writing_events_needs_a_pos_key(
    headers: dict[str, str], status: int, slug: str, app: tuple[Container, TestClient]
) -> None:
    container, client = app
    with Unchanged(container):
        for path, body in (("/v1/events", purchase("p1")), ("/v1/events:batch", {"events": []})):
            answer = client.post(path, json=body, headers=headers)
            assert_problem(answer, status, slug)
            if status == 401:
                assert answer.headers["www-authenticate"] == "Bearer"


def test_admin_commands_need_an_admin_key(client: TestClient) -> None:
    for role in ("pos", "service", "auditor"):
        answer = client.post("/v1/admin/tick", json={}, headers=auth(role))
        assert_problem(answer, 403, "forbidden")
    assert_problem(client.post("/v1/admin/tick", json={}), 401, "unauthenticated")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/docs", "/openapi.json"])
def test_operations_answer_without_a_key(path: str, client: TestClient) -> None:
    answer = client.get(path)
    assert answer.status_code == 200
    if path == "/readyz":
        assert answer.json() == {"status": "ready", "position": 1}
    if path == "/openapi.json":
        assert "/v1/events" in answer.json()["paths"]


# ---- batches --------------------------------------------------------------------------------
def test_a_batch_answers_one_result_per_event_in_order(
    any_store_app: tuple[Container, TestClient],
) -> None:
    container, client = any_store_app
    stored = client.post("/v1/events", json=purchase("p0", value="10.00"), headers=POS).json()
    events: list[Any] = [
        purchase("p1", value="50.00"),
        purchase("p2", value="-1.00"),  # invalid
        purchase("p0", value="10.00"),  # duplicate of an earlier request
        redemption("x1", 1000),  # refused: nothing available yet
        "not an event",  # invalid
        purchase("p1", value="50.00"),  # duplicate within the batch
        purchase("p1", value="51.00"),  # same event_id, other content
        envelope("review", "r1", rating=10, touchpoint="sales"),
        refund("f1", "p1", "25.00"),
    ]
    answer = client.post("/v1/events:batch", json={"events": events}, headers=POS)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [(r["event_id"], r["status"]) for r in results] == [
        ("p1", "accepted"),
        ("p2", "rejected"),
        ("p0", "duplicate"),
        ("x1", "rejected"),
        (None, "rejected"),
        ("p1", "duplicate"),
        ("p1", "rejected"),
        ("r1", "accepted"),
        ("f1", "accepted"),
    ]
    problems = {i: r["problem"] for i, r in enumerate(results) if r["status"] == "rejected"}
    assert problems[1]["type"] == PROBLEM_BASE + "invalid-event"
    assert problems[1]["errors"][0]["field"] == "amount.value"
    assert problems[3]["type"] == PROBLEM_BASE + "insufficient-points"
    assert problems[4]["status"] == 422
    assert problems[6]["type"] == PROBLEM_BASE + "event-id-conflict"
    assert all(p["title"] and p["detail"] for p in problems.values())
    assert results[2]["position"] == stored["position"]
    assert results[5]["position"] == results[0]["position"]
    assert results[8]["effect"]["points_reversed"] == 25
    accepted = [results[i]["position"] for i in (0, 7, 8)]
    assert accepted == sorted(accepted) and accepted[-1] == container.ledger.position()
    # Each accepted event is stored once: sending the batch again only finds duplicates.
    with Unchanged(container):
        again = client.post("/v1/events:batch", json={"events": events}, headers=POS).json()
        assert [r["status"] for r in again["results"]] == [
            "duplicate", "rejected", "duplicate", "rejected", "rejected",
            "duplicate", "rejected", "duplicate", "duplicate",
        ]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        ({"events": [purchase(f"p{n}") for n in range(1001)]}, 422, "invalid-batch"),
        ({"events": []}, 422, "invalid-batch"),
        ({"items": [purchase("p1")]}, 422, "invalid-batch"),
        ([purchase("p1")], 422, "invalid-batch"),
        (b'{"events": [', 400, "malformed-json"),
    ],
    ids=["1001 events", "empty", "no events key", "bare array", "malformed"],
)
def test_a_batch_that_is_not_a_batch_is_refused_whole(
    body: Any, status: int, slug: str, app: tuple[Container, TestClient]
) -> None:
    container, client = app
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    with Unchanged(container):
        answer = client.post(
            "/v1/events:batch", content=content, headers={**POS, "Content-Type": "application/json"}
        )
        problem = assert_problem(answer, status, slug)
    if slug == "invalid-batch":
        assert problem["errors"] == [
            {"field": "events", "message": "expected an array of 1 to 1,000 events"}
        ]


def test_a_batch_of_1000_is_accepted(app: tuple[Container, TestClient]) -> None:
    container, client = app
    events = [purchase(f"p{n}", value="1.00") | {"customer_id": f"c{n % 97}"} for n in range(1000)]
    answer = client.post("/v1/events:batch", json={"events": events}, headers=POS)
    assert answer.status_code == 200
    assert {r["status"] for r in answer.json()["results"]} == {"accepted"}
    assert max(r["position"] for r in answer.json()["results"]) == container.ledger.position()


@pytest.mark.parametrize(
    ("error", "slug"),
    [(IntegrityError, "write-contention"), (OperationalError, "store-unavailable")],
)
def test_a_write_the_store_cannot_take_is_a_503_to_retry_and_stores_nothing(
    app: tuple[Container, TestClient],
    monkeypatch: pytest.MonkeyPatch,
    error: type[Exception],
    slug: str,
) -> None:
    """Losing every race to other writers (IntegrityError on each try), or a store that
    does not answer, was a 500; the POS must know it may send the same events again."""
    container, client = app
    ledger = container.ledger
    before = ledger.position()

    def refused(*_: Any, **__: Any) -> Any:
        raise error("the store refused the append")

    monkeypatch.setattr(events_module, "WRITE_PATIENCE_SECONDS", 0.0)
    monkeypatch.setattr(ledger_module, "RETRY_WAIT_MAX", 0.0)
    real_append = ledger._append
    monkeypatch.setattr(ledger, "_append", refused)
    batch = {"events": [purchase("w1"), purchase("w2", customer_id="cust-43")]}
    answer = client.post("/v1/events:batch", json=batch, headers=POS)
    assert_problem(answer, 503, slug)
    assert answer.headers["retry-after"] == "1"
    assert_problem(client.post("/v1/events", json=purchase("w3"), headers=POS), 503, slug)
    assert ledger.position() == before
    monkeypatch.setattr(ledger, "_append", real_append)
    again = client.post("/v1/events:batch", json=batch, headers=POS)
    assert [r["status"] for r in again.json()["results"]] == ["accepted", "accepted"]


# ---- admin: goodwill decisions, the sweep, manual adjustments ----------------------------
def test_goodwill_above_the_limit_waits_for_a_different_person_to_approve(
    app: tuple[Container, TestClient],
) -> None:
    container, client = app
    small = client.post("/v1/events", json=goodwill("g1", points=500), headers=POS).json()
    assert small["effect"]["status"] == "granted"
    big = goodwill("g2", issued_by="manager-2", amount={"value": "150.00", "currency": "EUR"})
    waiting = client.post("/v1/events", json=big, headers=POS)
    assert waiting.status_code == 201
    assert waiting.json()["effect"] == {
        "status": "awaiting_approval",
        "points": 15000,
        "waits_because": "above-small-money-limit",
    }
    path = "/v1/admin/goodwill/g2/approve"
    with Unchanged(container):
        same_person = client.post(path, json={"approved_by": "manager-2"}, headers=ADMIN)
        assert_problem(same_person, 403, "maker-checker", "approved_by")
        assert_problem(
            client.post(path, json={"approved_by": "sam"}, headers=POS), 403, "forbidden"
        )

    approved = client.post(path, json={"approved_by": "supervisor-sam"}, headers=ADMIN)
    assert approved.status_code == 200, approved.text
    decision = approved.json()
    assert decision["customer_id"] == "cust-42"
    assert decision["effect"]["status"] == "granted"
    assert decision["effect"]["approved_by"] == "supervisor-sam"
    assert decision["position"] == container.ledger.position()
    assert container.ledger.account("cust-42").available == 500 + 15000

    # Nothing is waiting any more: not for g2, not for the auto-granted g1 (decided: 409);
    # a purchase or an id never seen is no goodwill at all (404).
    client.post("/v1/events", json=purchase("p1"), headers=POS)
    for event_id, status, slug in (
        ("g2", 409, "not-pending"),
        ("g1", 409, "not-pending"),
        ("p1", 404, "unknown-approval"),
        ("nope", 404, "unknown-approval"),
    ):
        with Unchanged(container):
            for decision_path in ("approve", "reject"):
                answer = client.post(
                    f"/v1/admin/goodwill/{event_id}/{decision_path}",
                    json={"approved_by": "supervisor-sam"},
                    headers=ADMIN,
                )
                assert_problem(answer, status, slug)


def test_a_rejected_goodwill_grants_nothing(app: tuple[Container, TestClient]) -> None:
    container, client = app
    client.post("/v1/events", json=goodwill("g1", points=9000), headers=POS)
    answer = client.post(
        "/v1/admin/goodwill/g1/reject",
        json={"approved_by": "supervisor-sam", "note": "not our fault"},
        headers=ADMIN,
    )
    assert answer.status_code == 200
    assert answer.json()["effect"] == {"status": "rejected", "rejected_by": "supervisor-sam"}
    assert container.ledger.account("cust-42").available == 0
    with Unchanged(container):
        again = client.post(
            "/v1/admin/goodwill/g1/approve", json={"approved_by": "x"}, headers=ADMIN
        )
        assert_problem(again, 409, "not-pending")


def test_tick_twice_records_nothing_new(app: tuple[Container, TestClient]) -> None:
    container, client = app
    client.post("/v1/events", json=purchase("p1", value="10.00"), headers=POS)
    early = client.post("/v1/admin/tick", json={"now": "2026-03-10T00:00:00Z"}, headers=ADMIN)
    assert early.status_code == 200 and early.json()["recorded"] == []

    first = client.post("/v1/admin/tick", json={"now": "2026-03-20T00:00:00+00:00"}, headers=ADMIN)
    assert first.status_code == 200, first.text
    [matured] = first.json()["recorded"]
    assert matured["customer_id"] == "cust-42" and matured["action"] == "matured"
    assert first.json()["position"] == container.ledger.position()
    with Unchanged(container):
        second = client.post("/v1/admin/tick", json={"now": "2026-03-20T00:00:00Z"}, headers=ADMIN)
        assert second.json()["recorded"] == []
    assert_problem(
        client.post("/v1/admin/tick", json={"now": "2026-03-20T00:00:00"}, headers=ADMIN),
        422,
        "invalid-request",
        "now",
    )


def test_manual_adjustment_above_the_limit_needs_a_second_admin(
    app: tuple[Container, TestClient],
) -> None:
    container, client = app
    client.post("/v1/events", json=purchase("p1"), headers=POS)  # the customer exists

    def adjust(adjustment_id: str, points: int) -> httpx.Response:
        body = {
            "customer_id": "cust-42",
            "adjustment_id": adjustment_id,
            "points": points,
            "reason": "support ticket 4711",
            "requested_by": "admin-ann",
        }
        return client.post("/v1/admin/adjustments", json=body, headers=ADMIN)

    small = adjust("a1", 200)
    assert small.status_code == 201, small.text
    assert small.json()["effect"]["status"] == "applied"
    assert container.ledger.account("cust-42").available == 200

    big = adjust("a2", 5000)
    assert big.status_code == 201
    assert big.json()["effect"] == {"status": "awaiting_approval", "points": 5000}
    assert container.ledger.account("cust-42").available == 200
    with Unchanged(container):
        assert_problem(adjust("a2", 5000), 409, "event-id-conflict", "adjustment_id")
        own = client.post(
            "/v1/admin/adjustments/cust-42/a2/approve",
            json={"approved_by": "admin-ann"},
            headers=ADMIN,
        )
        assert_problem(own, 403, "maker-checker", "approved_by")
        # Another name typed with the requester's own key is still the same person.
        same_key = client.post(
            "/v1/admin/adjustments/cust-42/a2/approve",
            json={"approved_by": "admin-bob"},
            headers=ADMIN,
        )
        assert_problem(same_key, 403, "maker-checker")

    approved = client.post(
        "/v1/admin/adjustments/cust-42/a2/approve",
        json={"approved_by": "admin-bob"},
        headers=SECOND_ADMIN,
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["effect"]["approved_by"] == "admin-bob"
    assert container.ledger.account("cust-42").available == 5200

    adjust("a3", -2000)
    rejected = client.post(
        "/v1/admin/adjustments/cust-42/a3/reject", json={"approved_by": "admin-bob"}, headers=ADMIN
    )
    assert rejected.status_code == 200
    assert container.ledger.account("cust-42").available == 5200
    with Unchanged(container):
        late = client.post(
            "/v1/admin/adjustments/cust-42/a3/approve",
            json={"approved_by": "admin-bob"},
            headers=ADMIN,
        )
        assert_problem(late, 409, "not-pending")
        body = {
            "customer_id": "nobody",
            "adjustment_id": "a9",
            "points": 1,
            "reason": "x",
            "requested_by": "admin-ann",
        }
        unknown = client.post("/v1/admin/adjustments", json=body, headers=ADMIN)
        assert_problem(unknown, 404, "unknown-customer")
        invalid = client.post(
            "/v1/admin/adjustments", json={**body, "points": "lots"}, headers=ADMIN
        )
        assert_problem(invalid, 422, "invalid-request", "points")


def test_a_refused_event_id_keeps_its_verdict_and_nothing_leaks_between_requests(
    app: tuple[Container, TestClient],
) -> None:
    container, client = app
    doc = redemption("x1", 100)
    with OnlyTheRefusalRecorded(container):
        assert_problem(client.post("/v1/events", json=doc, headers=POS), 422, "insufficient-points")
    with Unchanged(container):
        assert_problem(client.post("/v1/events", json=doc, headers=POS), 422, "insufficient-points")
    changed = copy.deepcopy(doc)
    changed["points"] = 1
    # The refusal is recorded: other content under its event_id is a conflict.
    assert_problem(client.post("/v1/events", json=changed, headers=POS), 409, "event-id-conflict")
