"""Invariants of campaigns over random histories (SPEC §9): however the purchases are cut
into batches, no campaign's budget and no customer's cap is ever exceeded, every point a
budget gave is on an account's lot, the same history grants the same points, and the dry
run of a campaign over a history tells exactly what it granted live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.application.ledger import Ledger
from services.ledger.domain.campaigns.campaign import Terms
from services.ledger.domain.clock import iso
from services.ledger.domain.rules import ProgramRules

START = datetime(2026, 2, 2, tzinfo=UTC)
CUSTOMERS = ("anna", "ben", "cleo")
EFFECTS = (
    {"kind": "bonus", "points": 30},
    {"kind": "multiplier", "factor": "1.5"},
    {"kind": "category_multiplier", "category": "coffee", "factor": "4"},
    {"kind": "stamp", "stamps_needed": 2, "reward_points": 45},
)

campaigns = st.lists(
    st.tuples(
        st.sampled_from(range(len(EFFECTS))),
        st.one_of(st.none(), st.integers(1, 400)),
        st.one_of(st.none(), st.integers(1, 150)),
        st.sampled_from(["true", "amount >= 20", 'customer.segment != "visitor"']),
    ),
    min_size=1,
    max_size=3,
)
purchases = st.lists(
    st.tuples(st.sampled_from(CUSTOMERS), st.integers(1, 90), st.booleans()),
    min_size=1,
    max_size=25,
)


def ledger_with(specs: list[tuple[int, int | None, int | None, str]]) -> Ledger:
    ledger = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, rules=ProgramRules())
    for n, (effect, budget, cap, condition) in enumerate(specs):
        terms = Terms(
            f"c{n}", f"c{n}", condition, EFFECTS[effect], START, START + timedelta(days=30),
            budget, cap, True,
        )  # fmt: skip
        ledger.create_campaign(terms, created_by="m", created_with_key=None, now=START)
        ledger.approve_campaign(f"c{n}", approved_by="o", approver_key=None, now=START)
    return ledger


def documents(history: list[tuple[str, int, bool]]) -> list[dict[str, Any]]:
    docs = []
    for n, (customer, euros, coffee) in enumerate(history):
        item = {"sku": "s", "qty": 1, "unit_price": {"value": f"{euros}.00", "currency": "EUR"}}
        if coffee:
            item["category"] = "coffee"
        docs.append(
            {
                "event_id": f"p-{n}",
                "type": "purchase",
                "customer_id": customer,
                "occurred_at": iso(START + timedelta(hours=n + 1)),
                "schema_version": 1,
                "receipt_id": f"r-{n}",
                "amount": {"value": f"{euros}.00", "currency": "EUR"},
                "items": [item],
            }
        )
    return docs


@settings(max_examples=60, deadline=None)
@given(campaigns, purchases, st.integers(1, 25))
def test_no_budget_or_cap_is_ever_exceeded(
    specs: list[tuple[int, int | None, int | None, str]],
    history: list[tuple[str, int, bool]],
    batch: int,
) -> None:
    docs = documents(history)
    granted: list[dict[str, int]] = []
    for size in (len(docs), batch):  # one batch, then the same history cut otherwise
        ledger = ledger_with(specs)
        for i in range(0, len(docs), size):
            for outcome in ledger.record_batch(docs[i : i + size]):
                assert outcome.status == "accepted"
        used = {c.campaign_id: c.used for c in ledger.load_campaigns()}
        on_accounts = {cid: 0 for cid in used}
        for customer in {d["customer_id"] for d in docs}:
            account = ledger.account(customer)
            for cid, points in account.campaign_use().points.items():
                on_accounts[cid] += points
                cap = specs[int(cid[1:])][2]
                assert cap is None or points <= cap
            # Campaign points are part of the purchases' lots: the lots hold them all.
            assert account.pending == sum(lot.remaining for lot in account.lots.values())
        for cid, points in used.items():
            budget = specs[int(cid[1:])][1]
            assert budget is None or points <= budget
        assert on_accounts == used
        granted.append(used)
        ledger.close()
    assert granted[0] == granted[1]  # batching changes nothing

    # The dry run over the same history, recorded without any campaign, tells each
    # campaign's points exactly (each campaign's budget, caps and cards are its own).
    plain = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, rules=ProgramRules())
    plain.record_batch(docs)
    for n, (effect, budget, cap, condition) in enumerate(specs):
        terms = Terms(
            f"c{n}", f"c{n}", condition, EFFECTS[effect], START, START + timedelta(days=30),
            budget, cap, True,
        )  # fmt: skip
        dry = plain.simulate_campaign(terms, START, START + timedelta(days=30))
        assert dry.points == granted[0][f"c{n}"], (n, dry)
    plain.close()
