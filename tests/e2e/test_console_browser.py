"""The console (SPEC §10) in a real browser: Debian's chromium, driven through its
chromedriver by Selenium, against a real `loyalty serve` on loopback (embedded SQLite
store, projections in-process) holding a simulated history posted over the API.

The walk: a support agent signs in and looks a customer up; an admin who asked for an
adjustment is refused its approval, a second admin approves it; an auditor verifies the
chain, runs a replay and downloads an export; a service key meets the 403 page; Swagger
UI works with no CDN. Every page is photographed at 1280 and 390 px wide: into
$LOYALTY_SCREENSHOTS (`make screenshots` sets docs/console), else into the test's tmp.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from services.console.formatting import words
from services.tools.simulation import generate_events
from tests.support.servers import start_serve, stop_serve

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
KEYS = {
    "pos": "pos-console-browser-key-0",
    "service": "service-console-browser-0",
    "auditor": "auditor-console-browser-0",
    "admin": "admin-console-browser-one",
    "admin2": "admin-console-browser-two",
}
# The simulated traffic (~100 events a day) is spread 20 times wider, so that 2,400 events
# cover about 16 months ending near today: months for the charts, expiries, live tiers.
STRETCH = 20
DAYS = 500
WIDTHS = (1280, 390)


@dataclass
class Service_:
    url: str
    customer: str  # the customer with the most events in the history
    position: int  # the store's position once the history is in
    db: Path  # the SQLite file `loyalty serve` writes

    def api(self, role: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {KEYS[role]}"}, timeout=30
        )


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service_]:
    tmp = tmp_path_factory.mktemp("console")
    pairs = [(r.rstrip("2"), k) for r, k in KEYS.items()]
    process, url = start_serve(f"sqlite:///{tmp / 'loyalty.db'}", tmp / "var", pairs)
    try:
        yield _load_history(url, tmp / "loyalty.db")
    finally:
        stop_serve(process)


def history() -> list[dict[str, Any]]:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=DAYS)
    events = list(generate_events(12, 60, 2400, start))
    for doc in events:
        moment = datetime.fromisoformat(doc["occurred_at"])
        doc["occurred_at"] = (start + (moment - start) * STRETCH).isoformat()
    return events


def _load_history(url: str, db: Path) -> Service_:
    events = history()
    found = Service_(url, "", 0, db)
    with found.api("pos") as pos, found.api("admin") as admin:
        for start in range(0, len(events), 200):
            batch = events[start : start + 200]
            # the sweep as the days pass (as `loyalty simulate --admin-key` runs it)
            admin.post("/v1/admin/tick", json={"now": batch[0]["occurred_at"]}).raise_for_status()
            answer = pos.post("/v1/events:batch", json={"events": batch})
            assert answer.status_code == 200, answer.text
            positions = [r.get("position") or 0 for r in answer.json()["results"]]
            found.position = max(found.position, *positions)
    counts: dict[str, int] = {}
    for doc in events:
        counts[doc["customer_id"]] = counts.get(doc["customer_id"], 0) + 1
    found.customer = max(counts, key=lambda c: counts[c])
    with found.api("admin") as admin:  # Maria asks, with the first admin key
        answer = admin.post(
            "/v1/admin/adjustments",
            json={
                "customer_id": found.customer,
                "adjustment_id": "adj-lost-card",
                "points": 5000,
                "reason": "points lost with a replaced card",
                "requested_by": "maria",
            },
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["effect"]["status"] == "awaiting_approval"
        found.position = answer.json()["position"]
    with found.api("service") as service:  # the projections hold the whole history
        answer = service.get(
            f"/v1/customers/{found.customer}/balance",
            params={"min_position": found.position},
        )
        assert answer.status_code == 200, answer.text
    return found


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("LOYALTY_SCREENSHOTS")
    folder = (ROOT / chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail(
            "the console's browser tests need Debian's chromium and chromium-driver: "
            "`make test` and .ci/run install them (apt-get install -y chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,900")
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(tmp_path), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


# ---- the browser's steps ---------------------------------------------------------------------
def wait(driver: WebDriver, seconds: float = 20) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, seconds)


def sign_in(driver: WebDriver, url: str, role: str, name: str) -> None:
    driver.get(f"{url}/console/sign-in")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "key").send_keys(KEYS[role])
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(driver).until(ready.presence_of_element_located((By.CSS_SELECTOR, "form.who")))


def sign_out(driver: WebDriver) -> None:
    driver.find_element(By.CSS_SELECTOR, "form.who button").click()
    wait(driver).until(ready.presence_of_element_located((By.ID, "key")))


def photograph(driver: WebDriver, folder: Path, name: str) -> None:
    """The whole page at each width (a phone's 390 px as a mobile viewport)."""
    for width in WIDTHS:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {
                "width": width,
                "height": min(int(height), 4000),
                "deviceScaleFactor": 1,
                "mobile": width < 600,
            },
        )
        driver.save_screenshot(str(folder / f"{name}-{width}.png"))
        if width < 600:  # a phone must not scroll sideways: nothing wider than the screen
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{name} is {overflow} px wider than a {width} px screen"
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def text_of(driver: WebDriver, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def flash(driver: WebDriver) -> str:
    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, ".flash"))


# ---- the walks ------------------------------------------------------------------------------
def test_support_agent_signs_in_and_looks_a_customer_up(
    service: Service_, browser: WebDriver, shots: Path
) -> None:
    browser.get(f"{service.url}/console/")
    assert browser.current_url.endswith("/console/sign-in")  # no session: sign in first
    photograph(browser, shots, "sign-in")
    sign_in(browser, service.url, "service", "Ivo")
    assert browser.get_cookie("loyalty_console")["httpOnly"] is True
    assert KEYS["service"] not in browser.page_source  # the key is in no page

    box = browser.find_element(By.ID, "q")
    box.send_keys(service.customer[:-2])
    box.submit()
    wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, "table.list")))
    photograph(browser, shots, "customers")
    browser.find_element(By.LINK_TEXT, service.customer).click()
    wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, "[data-testid]")))

    with service.api("service") as api:
        balance = api.get(f"/v1/customers/{service.customer}/balance").json()
        tier = api.get(f"/v1/customers/{service.customer}/tier").json()
        timeline = api.get(f"/v1/customers/{service.customer}/timeline?limit=500").json()
    assert text_of(browser, "[data-testid=available]").split()[0] == f"{balance['available']:,}"
    assert tier["tier"] in text_of(browser, "#h-tier + p")
    if tier["missing_spend"] is not None:
        assert text_of(browser, "[data-testid=missing]") == f"€{float(tier['missing_spend']):,.2f}"
    newest = timeline["items"][-1]
    assert browser.find_elements(By.CSS_SELECTOR, ".ev .why")[0].text == (
        words(newest["effect"]["summary"])  # the API's words, its times written for people
    )
    photograph(browser, shots, "customer")

    # as of a day: the API's as-of answer for the end of that day
    day = (datetime.now(UTC) - timedelta(days=DAYS // 2)).date()
    browser.find_element(By.ID, "as_of").send_keys(f"{day:%m/%d/%Y}")  # as Chromium types
    browser.find_element(By.CSS_SELECTOR, "form.asof button").click()
    wait(browser).until(lambda d: f"as_of={day}" in d.current_url)
    with service.api("service") as api:
        then = api.get(
            f"/v1/customers/{service.customer}/balance",
            params={"as_of": f"{day}T23:59:59.999999+00:00"},
        ).json()
    assert then["lifetime_earned"] < balance["lifetime_earned"]
    assert text_of(browser, "[data-testid=available]").split()[0] == f"{then['available']:,}"
    assert f"As of the end of {day}" in browser.page_source

    browser.get(f"{service.url}/console/approvals")  # not for a service key
    assert "Not for this role" in browser.page_source
    photograph(browser, shots, "forbidden")
    sign_out(browser)
    browser.get(f"{service.url}/console/customers")
    assert browser.current_url.endswith("/console/sign-in")  # the session is over


def test_an_adjustment_is_approved_by_a_second_person_not_by_the_one_who_asked(
    service: Service_, browser: WebDriver, shots: Path
) -> None:
    sign_in(browser, service.url, "admin", "Olga")  # the key Maria's request was made with
    card = "article[data-request='adj-lost-card']"
    wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, card)))
    request = browser.find_element(By.CSS_SELECTOR, card)
    assert "maria" in request.text and "points lost with a replaced card" in request.text
    photograph(browser, shots, "approvals")
    request.find_element(By.CSS_SELECTOR, "button.ok").click()
    wait(browser).until(lambda d: "refused" in flash(d))
    assert "another admin's key" in flash(browser)
    assert browser.find_elements(By.CSS_SELECTOR, card)  # still waiting
    sign_out(browser)

    sign_in(browser, service.url, "admin2", "Pavel")
    browser.find_element(By.CSS_SELECTOR, f"{card} button.ok").click()
    wait(browser).until(lambda d: "approved by Pavel" in flash(d))
    assert "refused" not in flash(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, card)  # decided: out of the queue
    photograph(browser, shots, "approvals-decided")

    browser.get(f"{service.url}/console/customers/{service.customer}")
    browser.find_element(By.CSS_SELECTOR, "details.adjust summary").click()  # an admin's form
    newest = browser.find_elements(By.CSS_SELECTOR, ".ev .why")[0].text
    assert newest.startswith("adjustment +5000 points (points lost with a replaced card)")
    photograph(browser, shots, "customer-admin")

    with service.api("service") as api:
        items = api.get(f"/v1/customers/{service.customer}/timeline?limit=500").json()["items"]
    adjusted = [i for i in items if i["type"] == "PointsAdjusted"]
    assert adjusted and adjusted[-1]["effect"]["points"] == 5000
    assert adjusted[-1]["event_id"] == "adj-lost-card"


def test_program_page_draws_its_charts(service: Service_, browser: WebDriver, shots: Path) -> None:
    sign_in(browser, service.url, "auditor", "Aino")
    browser.get(f"{service.url}/console/program")
    charts = browser.find_elements(By.CSS_SELECTOR, ".chart svg.pygal-chart")
    assert len(charts) == 5
    with service.api("auditor") as api:
        liability = api.get("/v1/programs/default/liability").json()
    assert text_of(browser, "[data-testid=outstanding]") == f"{liability['outstanding_points']:,}"
    photograph(browser, shots, "program")


def test_auditor_verifies_the_chain_replays_and_downloads_an_export(
    service: Service_, browser: WebDriver, shots: Path, tmp_path: Path
) -> None:
    sign_in(browser, service.url, "auditor", "Aino")
    assert browser.current_url.endswith("/console/audit")
    browser.find_element(By.ID, "run-verify").click()
    verdict = wait(browser).until(
        ready.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=verify-result]"))
    )
    with service.api("auditor") as api:
        checked = api.post("/v1/audit/verify").json()
    assert verdict.text.startswith("Intact")
    assert int(re.sub(r"\D", "", verdict.text.split("events")[0])) <= checked["checked"]

    browser.find_element(By.ID, "run-replay").click()
    report = wait(browser, 120).until(
        ready.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=replay-result]"))
    )
    assert report.text.startswith("No difference")
    photograph(browser, shots, "audit")

    to = browser.find_element(By.NAME, "to_position")
    to.send_keys("100")
    browser.find_element(By.ID, "download").click()
    target = tmp_path / "loyalty-events-0-100.jsonl"
    wait(browser, 30).until(lambda _: target.exists() and target.stat().st_size > 0)
    lines = target.read_text().splitlines()
    assert len(lines) == 100
    assert [int(re.search(r'"position":(\d+)', line).group(1)) for line in lines[:2]] == [1, 2]

    # someone with write access to the database edits one stored purchase
    with sqlite3.connect(service.db) as conn:
        target, state = conn.execute(
            "SELECT rowid, state FROM stored_events WHERE topic LIKE '%PurchaseRecorded' "
            "ORDER BY rowid LIMIT 1 OFFSET 5"
        ).fetchone()
        edited = bytes(state).replace(b'"points":', b'"points":9', 1)
        conn.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (edited, target))
    browser.find_element(By.ID, "run-verify").click()
    wait(browser).until(lambda d: "Broken" in text_of(d, "[data-testid=verify-result]"))
    verdict = text_of(browser, "[data-testid=verify-result]")
    assert verdict.startswith(f"Broken at position {target:,}"), verdict
    photograph(browser, shots, "audit-broken")


def test_swagger_ui_works_offline_with_an_authorize_button(
    service: Service_, browser: WebDriver, shots: Path
) -> None:
    browser.get(f"{service.url}/docs")
    wait(browser).until(
        ready.presence_of_element_located((By.CSS_SELECTOR, ".swagger-ui .btn.authorize"))
    )
    loaded: list[Any] = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert loaded and all(name.startswith(service.url) for name in loaded), loaded
    photograph(browser, shots, "swagger-ui")


def test_redoc_works_offline(service: Service_, browser: WebDriver) -> None:
    """ReDoc renders the whole API from this service alone. Its bundle links a logo on a
    CDN (the "API docs by Redocly" credit): the page's Content-Security-Policy stops the
    browser before it asks (nothing transferred, no response), so nothing leaves."""
    browser.get(f"{service.url}/redoc")
    wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, ".api-content, h1")))
    assert browser.find_elements(By.CSS_SELECTOR, ".api-content"), browser.page_source[-600:]
    assert browser.find_elements(
        By.XPATH, "//*[contains(text(), 'post_event') or contains(text(), '/v1/events')]"
    )
    entries: list[dict[str, Any]] = browser.execute_script(
        "return performance.getEntriesByType('resource').map("
        "e => ({name: e.name, size: e.transferSize, status: e.responseStatus}))"
    )
    ours = [e for e in entries if e["name"].startswith(service.url)]
    assert {e["name"].removeprefix(service.url) for e in ours} >= {"/openapi.json"}
    elsewhere = [e for e in entries if not e["name"].startswith(service.url)]
    assert all(e["size"] == 0 and e["status"] == 0 for e in elsewhere), elsewhere
    policy = httpx.get(f"{service.url}/redoc").headers["content-security-policy"]
    assert "default-src 'self'" in policy and "http" not in policy
