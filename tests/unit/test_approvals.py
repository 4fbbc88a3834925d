"""Maker-checker (SPEC §3, §6): one rule for every request that waits for a second person.

A goodwill above the small-money limit and an adjustment above the approval limit wait as
the same `PendingApproval`, and both are decided by its one `check_second_person`: the
approver has another name and, where both keys are known, another key.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.ledger.domain import errors
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.approvals import PendingApproval
from services.ledger.domain.rules import ProgramRules

RULES = ProgramRules().with_version(1)
T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=1)


def waiting(requested_by: str = "ann", key: str | None = "key-ann") -> PendingApproval:
    return PendingApproval("adjustment", requested_by, key, 5000)


def test_the_requester_cannot_approve_under_their_own_name() -> None:
    with pytest.raises(errors.MakerChecker) as refused:
        waiting().check_second_person("ann", "key-bob")
    assert refused.value.field == "approved_by"


def test_the_requesters_key_cannot_approve_under_another_name() -> None:
    with pytest.raises(errors.MakerChecker, match="same API key"):
        waiting().check_second_person("bob", "key-ann")


@pytest.mark.parametrize(
    ("requester_key", "approver_key"),
    [("key-ann", "key-bob"), (None, "key-ann"), ("key-ann", None), (None, None)],
)
def test_another_name_approves_when_the_keys_differ_or_one_is_unknown(
    requester_key: str | None, approver_key: str | None
) -> None:
    waiting(key=requester_key).check_second_person("bob", approver_key)


def a_waiting_goodwill(account: CustomerAccount) -> str:
    account.record_goodwill(
        event_id="g1",
        occurred_at=T0,
        store_id="store-1",
        points=5000,
        amount=None,
        currency=None,
        reason_code="late-delivery",
        incident_id=None,
        issued_by="ann",
        rules=RULES,
    )
    return "g1"


def a_waiting_adjustment(account: CustomerAccount) -> str:
    account.adjust(
        adjustment_id="a1",
        occurred_at=T0,
        points=5000,
        reason="goodwill by hand",
        requested_by="ann",
        rules=RULES,
        requested_with_key="key-ann",
    )
    return "a1"


def approve(account: CustomerAccount, request_id: str, name: str, key: str | None) -> str:
    if request_id.startswith("g"):
        effect = account.approve_goodwill(
            event_id=request_id, approved_by=name, decided_at=LATER, rules=RULES, approver_key=key
        )
    else:
        effect = account.approve_adjustment(
            adjustment_id=request_id,
            approved_by=name,
            decided_at=LATER,
            rules=RULES,
            approver_key=key,
        )
    return str(effect["status"])


@pytest.mark.parametrize("make_request", [a_waiting_goodwill, a_waiting_adjustment])
def test_goodwill_and_adjustments_wait_as_the_same_kind_of_request(
    make_request: Callable[[CustomerAccount], str],
) -> None:
    account = CustomerAccount("alice")
    request_id = make_request(account)
    request = account.requests[request_id]
    assert isinstance(request, PendingApproval)
    assert (request.requested_by, request.points) == ("ann", 5000)

    with pytest.raises(errors.MakerChecker):
        approve(account, request_id, "ann", "key-bob")
    assert account.available == 0 and request_id in account.requests
    assert approve(account, request_id, "bob", "key-bob") in ("granted", "applied")
    assert account.available == 5000 and request_id not in account.requests


def test_an_adjustment_requested_with_a_key_needs_another_key() -> None:
    account = CustomerAccount("alice")
    a_waiting_adjustment(account)
    with pytest.raises(errors.MakerChecker, match="same API key"):
        approve(account, "a1", "bob", "key-ann")
    assert account.available == 0


def test_a_goodwill_is_requested_by_a_pos_whose_key_is_not_recorded() -> None:
    """The POS event names who issued it; the ledger does not record the POS key that sent
    it (over Kafka there is none), so only the names are compared."""
    account = CustomerAccount("alice")
    a_waiting_goodwill(account)
    assert account.requests["g1"].requested_with_key is None
    assert approve(account, "g1", "bob", "any-admin-key") == "granted"


def test_no_rule_of_the_domain_is_an_assert() -> None:
    """`python -O` drops asserts: a rule or invariant of the domain must raise a named error."""
    domain = Path(errors.__file__).parent
    found = [
        f"{path.relative_to(domain)}:{node.lineno}"
        for path in sorted(domain.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assert)
    ]
    assert found == []
