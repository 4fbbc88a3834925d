"""Erasure of a customer whose personal fields were stored before encryption (the golden
store of 2026-12-01, plaintext, class_version 1): the old events still load (through the
upcasters), read as themselves until the erasure, and as `erased` after it, in the
timeline and the audit history; the replay stays clean and the hash chain verifies, since
no stored byte was rewritten (docs/AUDIT.md, docs/PRIVACY.md: the plaintext stays in the
stored bytes of those old events)."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from services.api import create_app
from services.audit.replay import replay
from services.audit.verify import verify
from services.bootstrap import Container, build
from services.cli import app as cli
from services.http.auth import ApiKeys
from services.infrastructure.store import StoreURL, open_recorder
from services.ledger.application import erasure
from services.ledger.domain.clock import utcnow
from services.settings import Settings

GOLDEN = Path(__file__).parents[1] / "golden" / "history.sqlite.gz"
WHO = "sim7-c000010"  # reported an incident ("long queue") in the golden history
KEYS = "service:service-key-golden-00,auditor:auditor-key-golden-00,admin:admin-key-golden-00"


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {role}-key-golden-00"}


@pytest.fixture
def golden(tmp_path: Path) -> Iterator[tuple[str, Container, TestClient]]:
    with gzip.open(GOLDEN) as packed, open(tmp_path / "store.db", "wb") as db:
        shutil.copyfileobj(packed, db)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    settings = Settings(store=url, var_dir=tmp_path / "var", projections_in_process=True)
    container = build(settings, api_keys=ApiKeys.parse(KEYS))
    container.projections.runner.catch_up()
    with TestClient(create_app(container)) as client:
        yield url, container, client
    container.close()


def plaintext_report(env: dict[str, str]) -> dict[str, Any]:
    answer = CliRunner().invoke(cli, ["privacy", "report", "--json"], env=env)
    assert answer.exit_code == 0, answer.output
    return orjson.loads(answer.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def descriptions(client: TestClient) -> tuple[list[Any], list[Any]]:
    """The incident descriptions of the customer: in the timeline, in the audit history."""
    shown, audited, after = [], [], 0
    while after is not None:
        page = client.get(
            f"/v1/customers/{WHO}/timeline",
            params={"limit": 200, "after_position": after},
            headers=auth("service"),
        ).json()
        shown += [
            i["effect"]["description"] for i in page["items"] if i["type"] == "IncidentReported"
        ]
        after = page["next"]
    params: dict[str, Any] = {"customer_id": WHO, "limit": 200}
    while True:
        page = client.get("/v1/audit/events", params=params, headers=auth("auditor")).json()
        for item in page["items"]:
            fields = item["fields"]
            if item["type"] == "IncidentReported":
                audited.append(fields["description"])
            if item["type"] == "Accepted" and fields["type"] == "incident":
                audited.append(fields["document"]["description"])
        if page["next"] is None:
            return shown, audited
        params["from_position"] = page["next"]


def test_an_old_history_customer_is_erased_without_rewriting_a_stored_event(
    golden: tuple[str, Container, TestClient],
) -> None:
    url, container, client = golden
    env = {"LOYALTY_STORE": url, "COLUMNS": "200"}
    before = plaintext_report(env)
    assert before["plain"] > 300 and before["sealed"] == before["plain_of_erased_customers"] == 0
    shown, audited = descriptions(client)
    assert "long queue" in shown and "long queue" in audited and "erased" not in shown

    assert container.ledger.account(WHO).erased is False  # the v1 events load (upcast)
    erasure.request_erasure(
        container.ledger, WHO, requested_by="dpo-anna", reason="ticket 9", occurred_at=utcnow()
    )
    erasure.approve_erasure(container.ledger, WHO, approved_by="cfo-bert", decided_at=utcnow())
    container.projections.runner.catch_up()
    container.audit.follower.catch_up()

    shown_after, audited_after = descriptions(client)
    assert set(shown_after) == {"erased"} and len(shown_after) == len(shown)
    assert set(audited_after) == {"erased"} and len(audited_after) == len(audited)
    # What the bytes still hold, honestly: the old plain text of the erased customer.
    after = plaintext_report(env)
    assert after["erased_customers_with_plain"] == [WHO]
    assert after["plain_of_erased_customers"] >= 2 * len(shown)  # the event and its intake
    assert after["plain"] == before["plain"]
    recorder, factory = open_recorder(StoreURL.parse(url))
    try:
        assert replay(recorder, StoreURL.parse(url)).ok
        result = verify(recorder, container.audit.chain)
        assert result.ok and result.checked == container.ledger.position()
    finally:
        factory.close()
