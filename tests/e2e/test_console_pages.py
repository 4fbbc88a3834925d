"""The console's pages over HTTP (no browser): sessions, CSRF, roles, and that every page
shows what the read API answers. The browser walk is test_console_browser.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.api import create_app
from services.bootstrap import Container, build
from services.console.queries import points_by_month, waiting_requests
from services.http.auth import ApiKeys
from services.settings import Settings
from services.tools.simulation import generate_events

KEYS = {
    "pos": "pos-console-pages-key-00",
    "service": "service-console-pages-0",
    "auditor": "auditor-console-pages-0",
    "admin": "admin-console-pages-one",
    "admin2": "admin-console-pages-two",
}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Console:
    client: TestClient
    container: Container
    customer: str

    def api(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {KEYS[role]}"}

    def sign_in(self, role: str, name: str = "Olga") -> str:
        """Sign in; returns the session's CSRF token."""
        self.client.cookies.clear()
        page = self.client.get("/console/sign-in")
        answer = self.client.post(
            "/console/sign-in",
            data={"key": KEYS[role], "name": name, "csrf_token": token_of(page.text)},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        return token_of(self.client.get("/console/customers").text)

    def position(self) -> int:
        return int(self.container.ledger.position())

    def waiting(self) -> list[str]:
        return [r.request_id for r in waiting_requests(self.container.projections.queries)]


def token_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    tmp: Path = tmp_path_factory.mktemp("console-pages")
    settings = Settings(
        store=f"sqlite:///{tmp / 'loyalty.db'}",
        var_dir=tmp / "var",
        projections_in_process=True,
        read_wait_seconds=10.0,
    )
    pairs = ",".join(f"{r.rstrip('2')}:{k}" for r, k in KEYS.items())
    container = build(settings, api_keys=ApiKeys.parse(pairs))
    try:
        with TestClient(create_app(container)) as client:
            found = Console(client, container, "")
            events = list(generate_events(5, 20, 600, datetime(2026, 1, 5, tzinfo=UTC)))
            answer = client.post(
                "/v1/events:batch", json={"events": events}, headers=found.api("pos")
            )
            assert answer.status_code == 200
            ids = [doc["customer_id"] for doc in events]
            found.customer = max(set(ids), key=ids.count)  # the busiest: several pages
            answer = client.post(
                "/v1/admin/adjustments",
                json={
                    "customer_id": found.customer,
                    "adjustment_id": "adj-big",
                    "points": 4000,
                    "reason": "a lost receipt",
                    "requested_by": "maria",
                },
                headers=found.api("admin"),
            )
            assert answer.json()["effect"]["status"] == "awaiting_approval"
            client.get(
                f"/v1/customers/{found.customer}/balance",
                params={"min_position": answer.json()["position"]},
                headers=found.api("service"),
            ).raise_for_status()
            yield found
    finally:
        container.close()


# ---- sessions -------------------------------------------------------------------------------
def test_pages_without_a_session_send_to_sign_in_and_posts_get_401(console: Console) -> None:
    console.client.cookies.clear()
    for page in ("/console/", "/console/customers", "/console/approvals", "/console/audit"):
        answer = console.client.get(page, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/console/sign-in"
    answer = console.client.post("/console/audit/verify", data={"csrf_token": "x"})
    assert answer.status_code == 401


def test_the_session_cookie_is_httponly_strict_and_never_holds_the_key(console: Console) -> None:
    console.client.cookies.clear()
    page = console.client.get("/console/sign-in")
    anonymous = page.cookies["loyalty_console"]
    answer = console.client.post(
        "/console/sign-in",
        data={"key": KEYS["service"], "name": "Ivo", "csrf_token": token_of(page.text)},
        follow_redirects=False,
    )
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    signed_in = answer.cookies["loyalty_console"]
    assert signed_in != anonymous  # a new id at sign-in: no fixation
    assert KEYS["service"] not in cookie
    for path in (
        "/console/customers",
        f"/console/customers/{console.customer}",
        "/console/program",
    ):
        assert KEYS["service"] not in console.client.get(path).text
    console.client.cookies.set("loyalty_console", anonymous, path="/console")
    assert console.client.get("/console/customers", follow_redirects=False).status_code == 303


def test_an_unknown_key_or_a_pos_key_does_not_sign_in(console: Console) -> None:
    for key, status in (("not-a-key-of-this-service", 401), (KEYS["pos"], 403)):
        console.client.cookies.clear()
        page = console.client.get("/console/sign-in")
        answer = console.client.post(
            "/console/sign-in",
            data={"key": key, "name": "Eve", "csrf_token": token_of(page.text)},
            follow_redirects=False,
        )
        assert answer.status_code == status
        assert console.client.get("/console/customers", follow_redirects=False).status_code == 303


def test_sign_in_itself_needs_the_form_token(console: Console) -> None:
    console.client.cookies.clear()
    console.client.get("/console/sign-in")
    answer = console.client.post(
        "/console/sign-in", data={"key": KEYS["admin"], "name": "Eve"}, follow_redirects=False
    )
    assert answer.status_code == 403
    assert console.client.get("/console/approvals", follow_redirects=False).status_code == 303


def test_sign_out_ends_the_session_for_good(console: Console) -> None:
    csrf = console.sign_in("service")
    cookie = console.client.cookies["loyalty_console"]
    answer = console.client.post(
        "/console/sign-out", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert answer.status_code == 303
    console.client.cookies.set("loyalty_console", cookie, path="/console")  # replayed
    assert console.client.get("/console/customers", follow_redirects=False).status_code == 303


# ---- roles ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("role", "path"),
    [
        ("service", "/console/approvals"),
        ("auditor", "/console/approvals"),
        ("service", "/console/audit"),
        ("service", "/console/audit/export"),
    ],
)
def test_a_key_without_the_role_gets_403(console: Console, role: str, path: str) -> None:
    console.sign_in(role)
    answer = console.client.get(path)
    assert answer.status_code == 403
    assert "Not for this role" in answer.text


def test_a_service_key_cannot_decide_even_with_its_token(console: Console) -> None:
    csrf = console.sign_in("service")
    before = console.position()
    answer = console.client.post(
        f"/console/approvals/adjustments/{console.customer}/adj-big/approve",
        data={"csrf_token": csrf},
    )
    assert answer.status_code == 403
    assert console.position() == before and "adj-big" in console.waiting()


# ---- CSRF -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "form", [{}, {"csrf_token": ""}, {"csrf_token": "forged-token-from-another-site"}]
)
def test_a_forged_decision_is_refused_and_changes_nothing(
    console: Console, form: dict[str, str]
) -> None:
    console.sign_in("admin2", "Pavel")
    before = console.position()
    answer = console.client.post(
        f"/console/approvals/adjustments/{console.customer}/adj-big/approve", data=form
    )
    assert answer.status_code == 403 and "Form refused" in answer.text
    assert console.position() == before
    assert "adj-big" in console.waiting()


def test_another_sessions_token_is_refused(console: Console) -> None:
    other = console.sign_in("admin", "Olga")
    console.sign_in("admin2", "Pavel")
    before = console.position()
    answer = console.client.post("/console/audit/verify", data={"csrf_token": other})
    assert answer.status_code == 403
    answer = console.client.post(
        f"/console/approvals/adjustments/{console.customer}/adj-big/reject",
        data={"csrf_token": other},
    )
    assert answer.status_code == 403 and console.position() == before


# ---- decisions: the API's maker-checker rule -------------------------------------------------
def test_the_requesters_key_cannot_approve_a_second_admin_can(console: Console) -> None:
    csrf = console.sign_in("admin", "Olga")  # the key Maria asked with, another name
    answer = console.client.post(
        f"/console/approvals/adjustments/{console.customer}/adj-big/approve",
        data={"csrf_token": csrf},
    )
    assert "another admin&#39;s key" in answer.text or "another admin's key" in answer.text
    assert "adj-big" in console.waiting()

    csrf = console.sign_in("admin2", "maria")  # another key, but the requester's name
    answer = console.client.post(
        f"/console/approvals/adjustments/{console.customer}/adj-big/approve",
        data={"csrf_token": csrf},
    )
    assert "a different person must approve it" in answer.text
    assert "adj-big" in console.waiting()

    csrf = console.sign_in("admin2", "Pavel")
    answer = console.client.post(
        f"/console/approvals/adjustments/{console.customer}/adj-big/approve",
        data={"csrf_token": csrf},
    )
    assert answer.status_code == 200  # the queue again, after the redirect
    assert "approved by Pavel: applied" in answer.text
    assert "adj-big" not in console.waiting()
    timeline = console.client.get(
        f"/v1/customers/{console.customer}/timeline?limit=500", headers=console.api("service")
    ).json()["items"]
    assert [i["effect"]["points"] for i in timeline if i["type"] == "PointsAdjusted"] == [4000]


def test_goodwill_waiting_is_listed_with_who_asked_and_why(console: Console) -> None:
    waiting = waiting_requests(console.container.projections.queries)
    goodwill = [r for r in waiting if r.kind == "goodwill"]
    assert goodwill, "the simulated history has goodwill above the small-money limit"
    first = goodwill[0]
    assert first.requested_by.startswith("agent-") and first.waits_because
    console.sign_in("admin2", "Pavel")
    page = console.client.get("/console/approvals").text
    assert first.request_id in page and first.requested_by in page


# ---- what the pages show ---------------------------------------------------------------------
def test_the_customer_page_shows_the_apis_answers(console: Console) -> None:
    console.sign_in("service")
    page = console.client.get(f"/console/customers/{console.customer}").text
    balance = console.client.get(
        f"/v1/customers/{console.customer}/balance", headers=console.api("service")
    ).json()
    assert f'data-testid="available">{balance["available"]:,} ' in page
    assert console.client.get("/console/customers/nobody-at-all").status_code == 404
    answer = console.client.get(f"/console/customers/{console.customer}?as_of=31-01-2026")
    assert answer.status_code == 422 and "is not a date" in answer.text


def test_the_customer_page_as_of_a_day_is_the_apis_as_of_answer(console: Console) -> None:
    console.sign_in("service")
    then = console.client.get(
        f"/v1/customers/{console.customer}/balance",
        params={"as_of": "2026-01-06T23:59:59.999999+00:00"},
        headers=console.api("service"),
    ).json()
    page = console.client.get(f"/console/customers/{console.customer}?as_of=2026-01-06").text
    assert f'data-testid="available">{then["available"]:,} ' in page
    assert "Jan 2026" in page and "7 Jan 2026" not in page.split("Timeline")[1]


def test_the_liability_per_month_adds_up_to_the_liability_answer(console: Console) -> None:
    queries = console.container.projections.queries
    months = points_by_month(queries)
    assert months[-1].liability == queries.liability()["outstanding_points"]
    issued = sum(m.issued for m in months)
    assert issued > 0 and sum(m.redeemed for m in months) >= 0


def test_the_export_download_is_the_apis_export(console: Console) -> None:
    console.sign_in("auditor")
    download = console.client.get("/console/audit/export?from_position=1&to_position=50")
    assert download.headers["content-disposition"].startswith("attachment;")
    api = console.client.get(
        "/v1/audit/export?from_position=1&to_position=50", headers=console.api("auditor")
    )
    assert download.content == api.content and len(download.content.splitlines()) == 50
    empty_end = console.client.get("/console/audit/export?from_position=0&to_position=")
    assert empty_end.status_code == 200


# ---- docs offline ----------------------------------------------------------------------------
def test_docs_and_redoc_use_only_this_services_assets(console: Console) -> None:
    for page in ("/docs", "/redoc"):
        html = console.client.get(page).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets and all(a.startswith("/docs-static/") for a in assets), assets
        for asset in assets:
            assert console.client.get(asset).status_code == 200
    scheme = console.client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert scheme["bearerAuth"]["type"] == "http"
    assert scheme["bearerAuth"]["scheme"] == "bearer"


def test_the_bearer_scheme_changes_no_answer(console: Console) -> None:
    path = f"/v1/customers/{console.customer}/balance"
    missing = console.client.get(path)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert console.client.get(path, headers={"Authorization": "Basic abc"}).status_code == 401
    assert console.client.get(path, headers=console.api("pos")).status_code == 403


# ---- the timeline, newest first, page by page -------------------------------------------------
def _shown(console: Console, query: str) -> list[int]:
    """Every position the customer page lists, following its "Older events" links."""
    shown: list[int] = []
    url = f"/console/customers/{console.customer}{query}"
    while url:
        page = console.client.get(url).text
        shown += [int(p) for p in re.findall(r'data-position="(\d+)"', page)]
        older = re.search(r'href="(\?[^"]*before=\d+)"', page)
        url = f"/console/customers/{console.customer}{older.group(1)}" if older else ""
        url = url.replace("&amp;", "&")
    return shown


@pytest.mark.parametrize("as_of", ["", "2026-01-06"])
def test_the_timeline_lists_every_event_newest_first_page_by_page(
    console: Console, as_of: str
) -> None:
    console.sign_in("service")
    items = console.client.get(
        f"/v1/customers/{console.customer}/timeline?limit=500", headers=console.api("service")
    ).json()["items"]
    cut = f"{as_of}T23:59:59.999999+00:00" if as_of else None
    expected = [
        i["position"]
        for i in reversed(items)
        if cut is None or (i["occurred_at"] or i["recorded_at"]) <= cut
    ]
    assert len(expected) > 50 or as_of  # more than one page without a date
    assert _shown(console, f"?as_of={as_of}" if as_of else "") == expected


# ---- an adjustment asked for on the customer page --------------------------------------------
def _adjust_form(console: Console) -> dict[str, str]:
    page = console.client.get(f"/console/customers/{console.customer}").text
    found = re.search(r'name="adjustment_id" value="([^"]+)"', page)
    assert found, "an admin sees the adjustment form"
    return {"csrf_token": token_of(page), "adjustment_id": found.group(1)}


def test_an_adjustment_asked_on_the_page_waits_for_another_admin(console: Console) -> None:
    console.sign_in("admin", "Olga")
    form = {**_adjust_form(console), "points": "3000", "reason": "a till error"}
    page = console.client.post(f"/console/customers/{console.customer}/adjustments", data=form)
    assert "waits for a second admin" in page.text
    waiting = {r.request_id: r for r in waiting_requests(console.container.projections.queries)}
    asked = waiting[form["adjustment_id"]]
    assert asked.requested_by == "Olga" and asked.points == 3000
    again = console.client.post(f"/console/customers/{console.customer}/adjustments", data=form)
    assert "already exists" in again.text  # the same form sent twice: recorded once

    approve = f"/console/approvals/adjustments/{console.customer}/{form['adjustment_id']}/approve"
    csrf = token_of(console.client.get("/console/approvals").text)
    refused = console.client.post(approve, data={"csrf_token": csrf})
    assert "refused" in refused.text  # the same person and key
    csrf = console.sign_in("admin2", "Pavel")
    assert "applied" in console.client.post(approve, data={"csrf_token": csrf}).text


def test_adjusting_needs_an_admin_a_token_and_sane_points(console: Console) -> None:
    csrf = console.sign_in("service")
    assert (
        'name="adjustment_id"'
        not in console.client.get(f"/console/customers/{console.customer}").text
    )
    path = f"/console/customers/{console.customer}/adjustments"
    before = console.position()
    fields = {"adjustment_id": "adj-x", "points": "10", "reason": "r"}
    assert console.client.post(path, data={**fields, "csrf_token": csrf}).status_code == 403
    console.sign_in("admin2", "Pavel")
    assert console.client.post(path, data=fields).status_code == 403  # no token
    form = _adjust_form(console)
    for points in ("", "0", "ten", "20000000"):
        page = console.client.post(path, data={**form, "points": points, "reason": "r"}).text
        assert "needs whole points" in page
    assert console.position() == before


# ---- erasure (SPEC §11) ---------------------------------------------------------------------
def test_an_erasure_waits_in_the_queue_and_the_page_shows_erased_after(console: Console) -> None:
    queries = console.container.projections.queries
    with queries.db.reading() as cur:
        (who,) = cur.execute(
            f"SELECT customer_id FROM {queries.tables.name('timeline')} "
            "WHERE type = 'IncidentReported' AND customer_id != ? ORDER BY position LIMIT 1",
            (console.customer,),
        ).fetchone() or ("",)
    assert who, "the simulated history has incidents"
    console.sign_in("service")
    before = console.client.get(f"/console/customers/{who}").text
    asked = console.client.post(
        f"/v1/admin/customers/{who}/erase",
        json={"requested_by": "maria", "reason": "ticket 7"},
        headers=console.api("admin"),
    )
    assert asked.status_code == 202, asked.text
    queries.wait_for(asked.json()["position"])
    csrf = console.sign_in("admin", "Pavel")  # the requester's key: refused
    page = console.client.get("/console/approvals").text
    assert asked.json()["effect"]["request_id"] in page and "Erasure of personal data" in page
    answer = console.client.post(
        f"/console/approvals/erasure/{who}/approve", data={"csrf_token": csrf}
    )
    assert "another admin" in answer.text
    csrf = console.sign_in("admin2", "Pavel")
    answer = console.client.post(
        f"/console/approvals/erasure/{who}/approve", data={"csrf_token": csrf}
    )
    assert f"Erasure of {who} approved by Pavel: erased" in answer.text
    console.sign_in("service")
    after = console.client.get(f"/console/customers/{who}").text
    assert "incident (" in before and "): erased" not in before
    assert "): erased" in after
    assert before.split('data-testid="available">')[1][:20] in after  # the points stay


def test_the_audit_page_lists_the_parked_follow_ups(console: Console) -> None:
    """SPEC §8: a refund that came before its purchase is listed until the purchase comes."""
    from datetime import timedelta

    from services.ledger.domain.clock import iso, utcnow

    refund = {
        "event_id": "console-early-refund",
        "type": "refund",
        "customer_id": console.customer,
        "occurred_at": iso(utcnow().replace(microsecond=0) - timedelta(hours=1)),
        "schema_version": 1,
        "original_event_id": "console-late-purchase",
        "amount": {"value": "1.00", "currency": "EUR"},
    }
    answer = console.client.post("/v1/events", json=refund, headers=console.api("pos"))
    assert answer.status_code == 202, answer.text
    console.sign_in("auditor")
    page = console.client.get("/console/audit").text
    assert 'data-testid="parked"' in page
    assert "console-early-refund" in page and "console-late-purchase" in page
