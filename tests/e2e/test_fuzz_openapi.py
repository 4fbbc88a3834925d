"""Schemathesis over the service's own OpenAPI document (issue 15, "Must show" 3; issue 13.2).

Every operation, with each role's key and with none, positive and negative cases: no 5xx,
no response outside its declared schema, no undeclared status code, content type or
header. `LOYALTY_FUZZ_EXAMPLES` sets the examples per operation and mode (default 4, for
`make test`; `make soak`-sized runs use hundreds). The figures go to docs/RELIABILITY.md.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.api import create_app
from services.bootstrap import build
from services.http.auth import ApiKeys
from services.settings import Settings
from tests.e2e.test_read_api import HISTORY

EXAMPLES = int(os.environ.get("LOYALTY_FUZZ_EXAMPLES", "4"))
# Only the operations whose path contains this (e.g. `campaigns`), to fuzz new routes hard.
ONLY = os.environ.get("LOYALTY_FUZZ_ONLY", "")
KEYS = {
    "pos": "pos-key-fuzz-00000000",
    "service": "service-key-fuzz-0000",
    "auditor": "auditor-key-fuzz-0000",
    "admin": "admin-key-fuzz-000000",
}
HEADERS: dict[str, dict[str, str]] = {
    "none": {},
    **{role: {"Authorization": f"Bearer {key}"} for role, key in KEYS.items()},
}


@schemathesis.check
def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """Like schemathesis's `not_a_server_error`, except the declared 503s: a read waiting for
    a position the projections do not reach in time, and `/readyz` while the store is down
    (`status_code_conformance` checks that the operation declares it)."""
    if response.status_code >= 500 and response.status_code != 503:
        raise AssertionError(f"server error {response.status_code}: {response.text[:300]}")
    return None


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def app(sqlite_url: str, tmp_path: Path) -> Iterator[FastAPI]:
    container = build(
        Settings(
            store=sqlite_url,
            var_dir=tmp_path / "var",
            projections_in_process=True,
            read_wait_seconds=0.05,
        ),
        api_keys=ApiKeys.parse(",".join(f"{r}:{k}" for r, k in KEYS.items())),
    )
    try:
        app = create_app(container)
        with TestClient(app) as client:  # the lifespan: projections and chain in-process
            answer = client.post(
                "/v1/events:batch", json={"events": HISTORY}, headers=HEADERS["pos"]
            )
            assert answer.status_code == 200, answer.text
            yield app
    finally:
        container.close()


def fuzz(operation: Any, mode: GenerationMode, cases: Counter[str], failures: list[str]) -> None:
    """EXAMPLES cases of `operation` in `mode`, each sent with every key and none."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        for who, headers in HEADERS.items():
            cases[operation.label] += 1
            try:
                response = case.call(headers=headers)
                case.validate_response(response, checks=CHECKS, headers=headers)
            except (Exception, BaseExceptionGroup) as failure:  # reported together below
                failures.append(
                    f"{operation.label} [{mode.value}, key {who}]: "
                    f"{type(failure).__name__}: {str(failure)[:600]}"
                )

    try:
        run()
    except Unsatisfiable:
        # No negative case exists for an operation that takes nothing (GET /healthz).
        assert mode is GenerationMode.NEGATIVE, operation.label


def test_fuzzing_finds_no_server_error_and_nothing_undeclared(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app
    cases: Counter[str] = Counter()
    failures: list[str] = []

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(
        [op for ops in app.openapi()["paths"].values() for op in ops.values()]
    )
    for operation in operations:
        if ONLY not in operation.path:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation, mode, cases, failures)

    total = sum(cases.values())
    print(f"\nfuzzing: {len(operations)} operations, {total} requests, {len(failures)} failures")
    assert not failures, "\n\n".join(failures[:20])
