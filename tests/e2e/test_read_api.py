"""The read side's HTTP contract (SPEC §6), end to end: a scripted history posted over
HTTP, then every `/v1/customers/...` and `/v1/programs/...` answer checked field by
field, with the refusals (401, 403, 404, 422, 503) as problem documents.

The history (times UTC, March 2026), for `anna` unless said otherwise:
  p1 purchase 600.00 (riga-1), p2 purchase 500.00 (riga-2), r1 review 10 on sales,
  i1 incident, g1 goodwill 200 points for i1 three hours later, x1 redemption 100 points,
  p3 purchase 100.00 (silver by then: x1.25), bob's review 3 on service (riga-2),
  f1 refund 100.00 of p2.
Reads evaluate the time-dependent standings at a clock pinned to 2026-03-31.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.api import create_app
from services.bootstrap import build
from services.http.auth import ApiKeys
from services.ledger.domain.errors import PROBLEM_BASE
from services.settings import Settings

KEYS = {
    "pos": "pos-key-read-api-0000",
    "service": "service-key-read-api-00",
    "auditor": "auditor-key-read-api-00",
    "admin": "admin-key-read-api-0000",
}
NOW = datetime(2026, 3, 31, tzinfo=UTC)
PROBLEM_JSON = "application/problem+json"


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}"}


SERVICE, AUDITOR = auth("service"), auth("auditor")


def event(
    kind: str,
    event_id: str,
    when: str,
    customer: str = "anna",
    store: str = "riga-1",
    **fields: Any,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": kind,
        "customer_id": customer,
        "occurred_at": f"2026-03-{when}+00:00",
        "store_id": store,
        "schema_version": 1,
        **fields,
    }


def eur(value: str) -> dict[str, str]:
    return {"value": value, "currency": "EUR"}


HISTORY = [
    event("purchase", "p1", "01T10:00:00", receipt_id="rc-1", amount=eur("600.00")),
    event("purchase", "p2", "05T10:00:00", store="riga-2", receipt_id="rc-2", amount=eur("500.00")),
    event("review", "r1", "06T10:00:00", rating=10, touchpoint="sales"),
    event("incident", "i1", "07T09:00:00", severity="medium", description="scratched door"),
    event(
        "goodwill",
        "g1",
        "07T12:00:00",
        points=200,
        reason_code="damaged_item",
        incident_id="i1",
        issued_by="clerk-7",
    ),
    event("redemption", "x1", "08T10:00:00", points=100, reward_id="car-wash"),
    event("purchase", "p3", "10T10:00:00", receipt_id="rc-3", amount=eur("100.00")),
    event(
        "review",
        "r2",
        "10T11:00:00",
        customer="bob",
        store="riga-2",
        rating=3,
        touchpoint="service",
    ),
    event("refund", "f1", "12T10:00:00", original_event_id="p2", amount=eur("100.00")),
]


class Api:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.positions: dict[str, int] = {}
        self.queries: Any = None  # the read side's queries, for their clock

    def post(self, *events: dict[str, Any]) -> int:
        answer = self.client.post(
            "/v1/events:batch", json={"events": list(events)}, headers=auth("pos")
        )
        assert answer.status_code == 200, answer.text
        for result in answer.json()["results"]:
            assert result["status"] == "accepted", result
            self.positions[result["event_id"]] = result["position"]
        return max(self.positions.values())

    @property
    def last(self) -> int:
        return max(self.positions.values())

    def get(self, path: str, headers: dict[str, str] = SERVICE, **query: Any) -> httpx.Response:
        return self.client.get(path, params=query, headers=headers)

    def read(self, path: str, headers: dict[str, str] = SERVICE, **query: Any) -> dict[str, Any]:
        answer = self.get(path, headers, min_position=self.last, **query)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]


@pytest.fixture
def api(store_url: str, tmp_path: Path) -> Iterator[Api]:
    settings = Settings(
        store=store_url,
        var_dir=tmp_path / "var",
        projections_in_process=True,
        read_wait_seconds=5.0,
    )
    container = build(
        settings, api_keys=ApiKeys.parse(",".join(f"{r}:{k}" for r, k in KEYS.items()))
    )
    container.projections.queries.clock = lambda: NOW
    try:
        with TestClient(create_app(container)) as client:
            found = Api(client)
            found.queries = container.projections.queries
            found.post(HISTORY[0])  # alone: its position covers p1 and nothing else
            found.post(*HISTORY[1:])
            yield found
    finally:
        container.close()


def assert_problem(answer: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = answer.json()
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status and body["title"] and body["detail"]
    return body


# ---- customers -------------------------------------------------------------------------------
def test_balance_with_its_lots(api: Api) -> None:
    assert api.read("/v1/customers/anna/balance") == {
        "customer_id": "anna",
        "available": 150,
        "pending": 1125,
        "debt": 0,
        "held": 0,
        "lifetime_earned": 1375,
        "redeemed": 100,
        "expired": 0,
        "holds": [],
        "lots": [
            lot("p1", "purchase", "pending", 600, 600, "01T10:00:00", "2027-03-01T10:00:00", 15),
            lot("p2", "purchase", "pending", 500, 400, "05T10:00:00", "2027-03-05T10:00:00", 19),
            lot("g1", "goodwill", "available", 200, 150, "07T12:00:00", "2027-03-07T12:00:00"),
            lot("p3", "purchase", "pending", 125, 125, "10T10:00:00", "2027-03-10T10:00:00", 24),
        ],
        "lots_count": 4,
        "expiring_next": {"expires_at": "2027-03-07T12:00:00+00:00", "points": 150},
        "next_lots": None,
        "position": api.last,
    }


@pytest.mark.parametrize("as_of", [{}, {"as_of": "2026-03-31T00:00:00Z"}])
def test_the_lots_come_a_page_at_a_time(api: Api, as_of: dict[str, str]) -> None:
    """A customer with thousands of lots gets a bounded answer: one page, the count of all,
    and the cursor to the next page; live and as-of answers page alike."""
    path = "/v1/customers/anna/balance"
    first = api.read(path, lots_limit=2, **as_of)
    assert [lot["lot_id"] for lot in first["lots"]] == ["p1", "p2"]
    assert (first["lots_count"], first["next_lots"]) == (4, "p2")
    assert first["available"] == 150  # the totals never depend on the page
    rest = api.read(path, lots_limit=2, lots_after=first["next_lots"], **as_of)
    assert [lot["lot_id"] for lot in rest["lots"]] == ["g1", "p3"]
    assert rest["next_lots"] is None
    totals = api.read(path, lots_limit=0, **as_of)
    assert (totals["lots"], totals["lots_count"], totals["next_lots"]) == ([], 4, None)
    assert totals["expiring_next"] == {"expires_at": "2027-03-07T12:00:00+00:00", "points": 150}
    body = assert_problem(api.get(path, lots_after="nope", **as_of), 422, "invalid-request")
    assert body["errors"][0]["field"] == "lots_after"
    assert_problem(api.get(path, lots_limit=1001), 422, "invalid-request")


def lot(
    lot_id: str,
    source: str,
    status: str,
    points: int,
    remaining: int,
    earned: str,
    expires: str,
    matures_day: int | None = None,
) -> dict[str, Any]:
    matures = None
    if matures_day is not None:
        matures = f"2026-03-{matures_day}T10:00:00+00:00"
    return {
        "lot_id": lot_id,
        "source": source,
        "status": status,
        "points": points,
        "remaining": remaining,
        "earned_at": f"2026-03-{earned}+00:00",
        "matures_at": matures,
        "expires_at": f"{expires}+00:00",
        "rule_version": 1,
    }


def test_tier_says_why_and_what_is_missing(api: Api) -> None:
    assert api.read("/v1/customers/anna/tier") == {
        "tier": "silver",
        "multiplier": "1.25",
        "rolling_spend": "1100.00",
        "next_tier": "gold",
        "missing_spend": "3900.00",
        "why": "silver (x1.25): rolling spend 1100.00 EUR over the 365 days up to "
        "2026-03-31T00:00:00+00:00 reaches the silver threshold 1000.00 EUR; 3900.00 EUR "
        "more for gold (5000.00 EUR, x1.5)",
        "position": api.last,
    }


def test_a_tier_held_by_grace_is_read_live_from_purchases_older_than_the_window(
    api: Api,
) -> None:
    """A year on, anna's purchases have left the rolling window, but within the grace
    period the window that ended 30 days earlier still held them: silver stays. The live
    tier reads only the purchases the window and the grace period can see."""
    later = datetime(2027, 3, 10, tzinfo=UTC)
    api.queries.clock = lambda: later
    live = api.read("/v1/customers/anna/tier")
    assert (live["tier"], live["rolling_spend"]) == ("silver", "100.00")
    assert "grace period" in live["why"]
    as_of = api.read("/v1/customers/anna/tier", as_of=later.isoformat())
    assert as_of == {**live, "position": as_of["position"]}
    api.queries.clock = lambda: datetime(2027, 4, 30, tzinfo=UTC)  # the grace is over
    assert api.read("/v1/customers/anna/tier")["tier"] == "bronze"


def test_segment_on_the_buyer_ladder(api: Api) -> None:
    assert api.read("/v1/customers/anna/segment") == {
        "segment": "advocate",
        "why": "advocate: 3 purchases in the 12 months up to 2026-03-31T00:00:00+00:00 (a "
        "client makes 3), and gave a 9-10 review on 2026-03-06T10:00:00+00:00",
        "position": api.last,
    }
    assert api.read("/v1/customers/bob/segment")["segment"] == "visitor"


def test_trust_deposit_counts_jobs_mistakes_and_the_resolved_incident(api: Api) -> None:
    # 3 purchases + 1 promoter review = +4; the incident -10; its goodwill within 48 h +5.
    assert api.read("/v1/customers/anna/trust") == {
        "deposit": -1,
        "status": "at_risk",
        "good_jobs": 4,
        "mistakes": 1,
        "flagged": False,
        "position": api.last,
    }
    assert api.read("/v1/customers/bob/trust")["status"] == "at_risk"


def test_lifetime_value(api: Api) -> None:
    assert api.read("/v1/customers/anna/ltv") == {
        "ltv": "5500.00",
        "realised": "1100.00",
        "m": "366.67",
        "a": 3,
        "t": 5,
        "currency": "EUR",
        "position": api.last,
    }


def test_the_timeline_pages_with_both_timestamps_and_each_effect(api: Api) -> None:
    first = api.read("/v1/customers/anna/timeline", limit=3)
    assert [item["type"] for item in first["items"]] == [
        "PurchaseRecorded",
        "PurchaseRecorded",
        "ReviewRecorded",
    ]
    assert first["next"] == first["items"][-1]["position"]
    assert first["position"] == api.last
    p1 = first["items"][0]
    assert p1["event_id"] == "p1"
    assert p1["occurred_at"] == "2026-03-01T10:00:00+00:00"
    assert p1["recorded_at"] > "2026-03-31"  # the ledger clock: when the test ran
    assert p1["effect"]["points"] == 600 and p1["effect"]["balance"] == {"pending": 600}
    assert p1["effect"]["trust"] == 1
    assert p1["effect"]["summary"].startswith("purchase of 600.00 EUR: 600 points pending")
    rest = api.read("/v1/customers/anna/timeline", after_position=first["next"], limit=500)
    assert [item["event_id"] for item in rest["items"]] == ["i1", "g1", "x1", "p3", "f1"]
    assert rest["next"] is None
    goodwill = rest["items"][1]["effect"]
    assert (goodwill["trust"], goodwill["incident_id"]) == (5, "i1")
    assert rest["items"][4]["effect"]["balance"] == {"pending": -100}


def test_as_of_a_time_folds_the_events_that_had_occurred(api: Api) -> None:
    balance = api.read("/v1/customers/anna/balance", as_of="2026-03-06T00:00:00Z")
    assert (balance["pending"], balance["available"], balance["lifetime_earned"]) == (1100, 0, 1100)
    assert [lot["lot_id"] for lot in balance["lots"]] == ["p1", "p2"]
    tier = api.read("/v1/customers/anna/tier", as_of="2026-03-06T00:00:00+00:00")
    assert (tier["tier"], tier["rolling_spend"]) == ("silver", "1100.00")
    assert "up to 2026-03-06T00:00:00+00:00" in tier["why"]
    trust = api.read("/v1/customers/anna/trust", as_of="2026-03-07T10:00:00Z")
    assert (trust["deposit"], trust["status"]) == (-7, "at_risk")  # before the goodwill
    segment = api.read("/v1/customers/anna/segment", as_of="2026-03-02T00:00:00Z")
    assert segment["segment"] == "buyer"
    assert_problem(
        api.get("/v1/customers/anna/ltv", as_of="2026-02-01T00:00:00Z"), 404, "unknown-customer"
    )


def test_as_of_a_position_folds_the_events_up_to_it(api: Api) -> None:
    at_p1 = api.positions["p1"]
    balance = api.read("/v1/customers/anna/balance", as_of_position=at_p1)
    assert (balance["pending"], balance["available"], balance["position"]) == (600, 0, at_p1)
    ltv = api.read("/v1/customers/anna/ltv", as_of_position=at_p1)
    assert (ltv["realised"], ltv["a"], ltv["ltv"]) == ("600.00", 1, "3000.00")
    everything = api.read("/v1/customers/anna/balance", as_of_position=api.last)
    assert everything == api.read("/v1/customers/anna/balance")


# ---- programs -----------------------------------------------------------------------------------
def test_nps_overall_per_store_per_touchpoint_and_over_a_window(api: Api) -> None:
    overall = {"nps": 0.0, "promoters": 1, "passives": 0, "detractors": 1, "responses": 2}
    assert api.read("/v1/programs/default/nps") == {**overall, "position": api.last}
    assert api.read("/v1/programs/default/nps", store_id="riga-1")["nps"] == 100.0
    assert api.read("/v1/programs/default/nps", touchpoint="service")["nps"] == -100.0
    window = api.read("/v1/programs/default/nps", **{"from": "2026-03-07T00:00:00Z"})
    assert (window["nps"], window["responses"]) == (-100.0, 1)
    before = api.read("/v1/programs/default/nps", to="2026-03-07T00:00:00Z", store_id="riga-1")
    assert (before["nps"], before["promoters"]) == (100.0, 1)
    nobody = api.read("/v1/programs/default/nps", store_id="tallinn")
    assert (nobody["nps"], nobody["responses"]) == (None, 0)


def test_liability_for_auditors_now_and_as_of(api: Api) -> None:
    assert api.read("/v1/programs/default/liability", AUDITOR) == {
        "outstanding_points": 1275,
        "pending": 1125,
        "available": 150,
        "debt": 0,
        "held": 0,
        "goodwill_points_by_month": {"2026-03": 200},
        "donated_points_by_charity": {},
        "position": api.last,
    }
    then = api.read("/v1/programs/default/liability", AUDITOR, as_of="2026-03-07T00:00:00Z")
    assert (then["outstanding_points"], then["pending"], then["available"]) == (1150, 1100, 50)
    assert then["goodwill_points_by_month"] == {}


def test_a_tick_is_read_back_with_min_position(api: Api) -> None:
    tick = api.client.post(
        "/v1/admin/tick", json={"now": "2026-03-20T00:00:00Z"}, headers=auth("admin")
    )
    assert tick.status_code == 200, tick.text
    position = tick.json()["position"]
    balance = api.get("/v1/customers/anna/balance", min_position=position).json()
    assert (balance["available"], balance["pending"], balance["position"]) == (1150, 125, position)


# ---- refusals -----------------------------------------------------------------------------------
def test_a_missing_or_unknown_key_is_401_and_a_wrong_role_403(api: Api) -> None:
    assert_problem(api.client.get("/v1/customers/anna/balance"), 401, "unauthenticated")
    wrong = {"Authorization": "Bearer not-a-key-at-all-000"}
    assert_problem(api.get("/v1/customers/anna/tier", wrong), 401, "unauthenticated")
    assert_problem(api.get("/v1/customers/anna/balance", auth("pos")), 403, "forbidden")
    assert_problem(api.get("/v1/programs/default/liability", SERVICE), 403, "forbidden")
    assert api.read("/v1/customers/anna/balance", AUDITOR)["customer_id"] == "anna"
    assert api.read("/v1/programs/default/liability", auth("admin"))["pending"] == 1125


@pytest.mark.parametrize("resource", ["balance", "tier", "segment", "trust", "ltv", "timeline"])
def test_a_customer_the_ledger_never_saw_is_404(api: Api, resource: str) -> None:
    body = assert_problem(api.get(f"/v1/customers/zed/{resource}"), 404, "unknown-customer")
    assert "zed" in body["detail"]


def test_another_program_is_404(api: Api) -> None:
    assert_problem(api.get("/v1/programs/other/nps"), 404, "not-found")


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/v1/customers/anna/balance", {"as_of": "yesterday"}, "as_of"),
        ("/v1/customers/anna/tier", {"as_of": "2026-03-06T00:00:00"}, "as_of"),
        ("/v1/customers/anna/trust", {"as_of_position": -1}, "as_of_position"),
        ("/v1/customers/anna/ltv", {"min_position": "soon"}, "min_position"),
        (
            "/v1/customers/anna/segment",
            {"as_of": "2026-03-06T00:00:00Z", "as_of_position": 3},
            "as_of_position",
        ),
        ("/v1/customers/anna/timeline", {"limit": 0}, "limit"),
        ("/v1/customers/anna/timeline", {"limit": 501}, "limit"),
        ("/v1/customers/anna/timeline", {"after_position": -3}, "after_position"),
        ("/v1/customers/an na/balance", {}, "customer_id"),
        (
            "/v1/programs/default/nps",
            {"from": "2026-03-08T00:00:00Z", "to": "2026-03-07T00:00:00Z"},
            "to",
        ),
        ("/v1/programs/default/nps", {"touchpoint": "Sales!"}, "touchpoint"),
    ],
)
def test_bad_query_parameters_are_422_problems_naming_the_field(
    api: Api, path: str, query: dict[str, Any], field: str
) -> None:
    headers = AUDITOR if "liability" in path else SERVICE
    body = assert_problem(api.get(path, headers, **query), 422, "invalid-request")
    assert field in [error["field"] for error in body["errors"]]


def test_a_position_the_projection_does_not_reach_in_time_is_503_with_retry_after(api: Api) -> None:
    api.read("/v1/customers/anna/balance")  # the projection has reached the last write
    api.client.app.state.container.projections.queries.read_wait_seconds = 0.2  # type: ignore[attr-defined]
    answer = api.get("/v1/customers/anna/balance", min_position=api.last + 1000)
    body = assert_problem(answer, 503, "projection-behind")
    assert answer.headers["retry-after"] == "1"
    assert (body["position"], body["min_position"]) == (api.last, api.last + 1000)
