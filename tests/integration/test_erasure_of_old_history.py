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

import pytest
from fastapi.testclient import TestClient

from services.api import create_app
from services.audit.replay import replay
from services.audit.verify import verify
from services.bootstrap import Container, build
from services.ledger.adapters.store import StoreURL, open_recorder
from services.ledger.api.auth import ApiKeys
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
    recorder, factory = open_recorder(StoreURL.parse(url))
    try:
        assert replay(recorder, StoreURL.parse(url)).ok
        result = verify(recorder, container.audit.chain)
        assert result.ok and result.checked == container.ledger.position()
    finally:
        factory.close()
