"""Numbers and times as the console writes them for people, and its session store."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from services.console.formatting import MINUS, day, money, month, number, signed, when, words
from services.console.sessions import Session, csrf_ok


def test_numbers_have_thousands_separators() -> None:
    assert number(1234567) == "1,234,567"
    assert number(0) == "0"
    assert number(None) == "—"
    assert signed(1500) == "+1,500" and signed(-1500) == f"{MINUS}1,500" and signed(0) == ""


def test_money_carries_its_currency() -> None:
    assert money("1234.5", "EUR") == "€1,234.50"
    assert money(Decimal("-20"), "EUR") == f"{MINUS}€20.00"
    assert money("1000000.00", "SEK") == "1,000,000.00 SEK"
    assert money(None) == "—"


def test_times_are_shown_in_the_program_time_zone() -> None:
    assert when("2026-03-01T10:05:00+00:00") == "1 Mar 2026, 10:05"
    assert when("2026-03-01T01:05:00+02:00") == "28 Feb 2026, 23:05"  # UTC, as stored
    assert when(datetime(2026, 12, 24, 18, 0, tzinfo=UTC)) == "24 Dec 2026, 18:00"
    assert day("2026-03-01T10:05:00.123456+00:00") == "1 Mar 2026"
    assert month("2026-03") == "Mar 2026"


def test_explanations_have_their_timestamps_written_for_people() -> None:
    why = "rolling spend 10.00 EUR over the 365 days up to 2026-12-01T22:43:39.984336+00:00"
    assert words(why) == "rolling spend 10.00 EUR over the 365 days up to 1 Dec 2026, 22:43"
    assert words(None) == ""


def test_a_csrf_token_must_be_this_sessions_own() -> None:
    mine, other = Session(), Session()
    assert csrf_ok(mine, mine.csrf)
    assert not csrf_ok(mine, other.csrf)
    assert not csrf_ok(mine, "")
    assert not csrf_ok(None, mine.csrf)


def test_sign_in_pages_never_push_out_a_signed_in_session() -> None:
    from fastapi.responses import Response
    from starlette.requests import Request

    from services.console.sessions import COOKIE, Sessions
    from services.http.auth import Principal

    def request(cookie: str = "") -> Request:
        headers = [(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie else []
        return Request({"type": "http", "headers": headers, "scheme": "http", "path": "/"})

    def started(session: Session) -> str:
        response = Response()
        sessions.start(response, request(), session)
        return response.headers["set-cookie"].split(";")[0].split("=", 1)[1]

    sessions = Sessions(limit=3)
    signed = started(Session(principal=Principal("admin", "abc")))
    anonymous = [started(Session()) for _ in range(10)]
    assert sessions.get(request(signed)) is not None
    assert sessions.get(request(anonymous[0])) is None  # the oldest anonymous went
    assert sessions.get(request(anonymous[-1])) is not None
