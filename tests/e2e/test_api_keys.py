"""Named API keys, several per role, revocation, and the key behind an admin decision
(issue 15.6). Keys are stored as hashes only; a key's name is what the ledger records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from services.api import create_app
from services.bootstrap import Container, build
from services.cli import app as cli
from services.http import auth
from services.http.auth import ApiKeys
from services.settings import Settings

ALICE, BOB, LEGACY = "alice-admin-key-0000", "bob-admin-key-000000", "legacy-pos-key-00000"
POS = "pos-key-for-api-keys-0"
SPEC = f"admin:alice={ALICE},admin:bob={BOB},pos:{LEGACY},pos:till-1={POS}"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def serving(tmp_path: Path, **settings: Any) -> Iterator[tuple[Container, TestClient]]:
    container = build(
        Settings(store=f"sqlite:///{tmp_path / 'l.db'}", var_dir=tmp_path / "var", **settings),
        with_projections=False,
    )
    try:
        with TestClient(create_app(container)) as client:
            yield container, client
    finally:
        container.close()


def test_several_named_keys_per_role_and_unnamed_keys_named_by_their_hash() -> None:
    keys = ApiKeys.parse(SPEC)
    alice, bob = keys.authenticate(ALICE), keys.authenticate(BOB)
    assert alice is not None and (alice.role, alice.key_id) == ("admin", "alice")
    assert bob is not None and (bob.role, bob.key_id) == ("admin", "bob")
    legacy = keys.authenticate(LEGACY)
    assert legacy is not None and legacy.role == "pos"
    assert legacy.key_id == auth._hash(LEGACY)[:12]  # what the ledger recorded before names
    assert keys.authenticate("not-a-key-at-all-000") is None
    # a key containing '=' without a name before it stays a key
    padded = ApiKeys.parse("pos:c2VjcmV0LWtleS1iYXNlNjQ=")
    assert padded.authenticate("c2VjcmV0LWtleS1iYXNlNjQ=") is not None


def test_a_name_used_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="alice"):
        ApiKeys.parse(f"admin:alice={ALICE},pos:alice={POS}")


def test_a_revoked_key_is_401_and_the_others_still_work(tmp_path: Path) -> None:
    with serving(tmp_path, api_keys=SPEC, api_keys_revoked="bob") as (_, client):
        assert client.get("/v1/admin/rules", headers=bearer(BOB)).status_code == 401
        assert client.get("/v1/admin/rules", headers=bearer(ALICE)).status_code == 200


def test_the_ledger_records_which_key_asked_and_a_second_key_must_approve(
    tmp_path: Path,
) -> None:
    keys = SPEC + ",auditor:audit=auditor-key-000000000"
    with serving(tmp_path, api_keys=keys) as (_, client):
        purchase = orjson.loads(Path("schemas/examples/purchase.json").read_bytes())
        assert client.post("/v1/events", json=purchase, headers=bearer(POS)).status_code == 201
        customer = purchase["customer_id"]
        request = {
            "customer_id": customer,
            "adjustment_id": "adj-big",
            "points": 5000,
            "reason": "migration",
            "requested_by": "Alice",
        }
        asked = client.post("/v1/admin/adjustments", json=request, headers=bearer(ALICE))
        assert asked.status_code == 201, asked.text
        same_key = client.post(
            f"/v1/admin/adjustments/{customer}/adj-big/approve",
            json={"approved_by": "Someone Else"},
            headers=bearer(ALICE),
        )
        assert same_key.status_code == 403, same_key.text
        approved = client.post(
            f"/v1/admin/adjustments/{customer}/adj-big/approve",
            json={"approved_by": "Bob"},
            headers=bearer(BOB),
        )
        assert approved.status_code == 200, approved.text
        history = client.get(
            "/v1/audit/events",
            params={"customer_id": customer},
            headers=bearer("auditor-key-000000000"),
        ).json()["items"]
        [requested] = [e for e in history if e["type"] == "AdjustmentRequested"]
        assert requested["fields"]["requested_with_key"] == "alice"
        assert ALICE not in orjson.dumps(history).decode()


def test_loyalty_keys_adds_lists_and_revokes_in_the_keys_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "RELOAD_SECONDS", 0.0)
    env = {"LOYALTY_VAR_DIR": str(tmp_path / "var"), "COLUMNS": "200"}
    keys_path = tmp_path / "var" / "api-keys.json"
    with serving(tmp_path) as (container, client):
        assert container.created_keys and keys_path.exists()
        added = CliRunner().invoke(cli, ["keys", "add", "admin", "carol"], env=env)
        assert added.exit_code == 0, added.output
        carol = added.output.strip().rsplit(" ", 1)[-1]
        assert carol not in keys_path.read_text()  # only its hash is stored
        assert client.get("/v1/admin/rules", headers=bearer(carol)).status_code == 200

        listed = CliRunner().invoke(cli, ["keys", "list"], env=env)
        assert "carol" in listed.output and carol not in listed.output

        revoked = CliRunner().invoke(cli, ["keys", "revoke", "carol"], env=env)
        assert revoked.exit_code == 0, revoked.output
        assert client.get("/v1/admin/rules", headers=bearer(carol)).status_code == 401
        admin = container.created_keys["admin"]
        assert client.get("/v1/admin/rules", headers=bearer(admin)).status_code == 200

    unknown = CliRunner().invoke(cli, ["keys", "revoke", "nobody"], env=env)
    assert unknown.exit_code == 2 and "nobody" in unknown.output


def test_a_keys_file_of_the_first_form_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.json"
    path.write_text(orjson.dumps({"keys": {auth._hash(ALICE): "admin"}}).decode())
    keys = ApiKeys.read(path)
    found = keys.authenticate(ALICE)
    assert found is not None and found.key_id == auth._hash(ALICE)[:12]


def test_every_admin_decision_records_the_name_of_the_key_that_made_it(tmp_path: Path) -> None:
    """Beside the typed `approved_by`/`rejected_by`, each decision's stored event names
    the authenticated key (its name, never the secret): goodwill approved and rejected,
    an adjustment applied at once, approved and rejected, rules changed, a rule change
    rejected."""
    with serving(tmp_path, api_keys=SPEC) as (container, client):
        purchase = orjson.loads(Path("schemas/examples/purchase.json").read_bytes())
        assert client.post("/v1/events", json=purchase, headers=bearer(POS)).status_code == 201
        customer = purchase["customer_id"]
        large = orjson.loads(Path("schemas/examples/goodwill-large-amount.json").read_bytes())
        for n in (1, 2):
            doc = {**large, "event_id": f"gw-{n}", "customer_id": customer}
            assert client.post("/v1/events", json=doc, headers=bearer(POS)).status_code == 201
        decide = {"approved_by": "Bob"}
        for path in ("goodwill/gw-1/approve", "goodwill/gw-2/reject"):
            answer = client.post(f"/v1/admin/{path}", json=decide, headers=bearer(BOB))
            assert answer.status_code == 200, answer.text
        for adjustment_id, points in (("adj-small", 10), ("adj-big-1", 5000), ("adj-big-2", 5000)):
            request = {
                "customer_id": customer,
                "adjustment_id": adjustment_id,
                "points": points,
                "reason": "migration",
                "requested_by": "Alice",
            }
            asked = client.post("/v1/admin/adjustments", json=request, headers=bearer(ALICE))
            assert asked.status_code == 201, asked.text
        for path in ("adj-big-1/approve", "adj-big-2/reject"):
            answer = client.post(
                f"/v1/admin/adjustments/{customer}/{path}", json=decide, headers=bearer(BOB)
            )
            assert answer.status_code == 200, answer.text
        rules = client.get("/v1/admin/rules", headers=bearer(ALICE)).json()["rules"]
        for changes in ({"earn_rate": "2"}, {"adjustment_approval_limit": 10_000_000}):
            changed = client.put(
                "/v1/admin/rules",
                json={"rules": {**rules, **changes}, "changed_by": "Alice", "reason": "test"},
                headers=bearer(ALICE),
            )
            assert changed.status_code in (200, 202), changed.text
        [waiting] = client.get("/v1/admin/rules/requests", headers=bearer(BOB)).json()["requests"]
        rejected = client.post(
            f"/v1/admin/rules/requests/{waiting}/reject",
            json=decide,
            headers=bearer(BOB),
        )
        assert rejected.status_code == 204, rejected.text

        ledger = container.ledger
        events = [
            ledger.mapper.to_domain_event(n)
            for n in ledger.recorder.select_notifications(start=1, limit=10_000)
        ]

        def keys_of(kind: str, *fields: str) -> list[tuple[Any, ...]]:
            return [
                tuple(getattr(e, f) for f in fields) for e in events if type(e).__name__ == kind
            ]

        assert keys_of("GoodwillGranted", "event_id", "approver_key") == [("gw-1", "bob")]
        assert keys_of("GoodwillRejected", "event_id", "rejected_with_key") == [("gw-2", "bob")]
        assert sorted(
            keys_of("PointsAdjusted", "adjustment_id", "requested_with_key", "approver_key")
        ) == [("adj-big-1", "alice", "bob"), ("adj-small", "alice", None)]
        assert keys_of("AdjustmentRejected", "adjustment_id", "rejected_with_key") == [
            ("adj-big-2", "bob")
        ]
        assert ("alice",) in keys_of("RulesScheduled", "changed_with_key")
        assert keys_of("RuleChangeRejected", "rejected_with_key") == [("bob",)]
        stored = b"".join(
            n.state for n in ledger.recorder.select_notifications(start=1, limit=10_000)
        )
        assert ALICE.encode() not in stored and BOB.encode() not in stored
