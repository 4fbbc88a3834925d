"""Every answer the e2e tests get from the app is recorded (method, path, status, media
type) against the app's own OpenAPI document; `test_openapi.py` checks, last of all, that
each one was declared for its operation (issue 13.2's contract test)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient


@dataclass(frozen=True)
class Answer:
    method: str
    template: str
    status: int
    media_type: str
    declared_statuses: frozenset[str]
    declared_media_types: frozenset[str]


ANSWERS: list[Answer] = []
_TEMPLATES: dict[int, list[tuple[re.Pattern[str], str, dict[str, Any]]]] = {}


def _templates(app: Any) -> list[tuple[re.Pattern[str], str, dict[str, Any]]]:
    found = _TEMPLATES.get(id(app))
    if found is None:
        paths = app.openapi()["paths"]
        found = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(t)) + "$"), t, item)
            for t, item in sorted(paths.items(), key=lambda kv: "{" in kv[0])
        ]
        _TEMPLATES[id(app)] = found
    return found


def record(app: Any, method: str, url: str, status: int, content_type: str) -> None:
    if not hasattr(app, "openapi"):
        return
    path = urlsplit(url).path
    for pattern, template, item in _templates(app):
        operation = item.get(method.lower())
        if operation is not None and pattern.match(path):
            responses = operation.get("responses", {})
            declared = responses.get(str(status), {})
            ANSWERS.append(
                Answer(
                    method=method.upper(),
                    template=template,
                    status=status,
                    media_type=content_type.split(";")[0].strip(),
                    declared_statuses=frozenset(responses),
                    declared_media_types=frozenset(declared.get("content", {})),
                )
            )
            return


@pytest.fixture(autouse=True, scope="session")
def _record_answers() -> Iterator[None]:
    original = TestClient.request

    def request(self: TestClient, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        response = original(self, method, url, *args, **kwargs)
        record(
            self.app,
            method,
            str(response.request.url),
            response.status_code,
            response.headers.get("content-type", ""),
        )
        return response

    TestClient.request = request  # type: ignore[method-assign]
    yield
    TestClient.request = original  # type: ignore[method-assign]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The contract test runs after every other test, so it sees all their answers."""
    last = [item for item in items if item.name == "test_every_answer_the_tests_got_was_declared"]
    for item in last:
        items.remove(item)
        items.append(item)
