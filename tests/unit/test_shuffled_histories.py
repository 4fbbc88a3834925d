"""Out of order (SPEC §8), as a property: random histories of purchases, refunds, reviews,
goodwill and incidents, delivered in random order (within the park window), in random
batches, with random repeats, end where the same history delivered in `occurred_at`
order ends: every refund applied exactly once to its purchase, none left parked, the
same balances and lots per customer, and postings that sum to zero.

What the histories leave out on purpose, because a credit is decided when it is
recorded: tier thresholds (the spend stays under the first one, so a purchase earns the
same whenever it arrives), a review's reward (counted against the purchases recorded so
far: the program here rewards none, and the test checks that no review was refused), and
the trust-tester flag (at most three goodwill grants per customer). The in-memory store,
as tests/unit/test_ledger_properties.py.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.ledger.adapters.contract import validate_event
from services.ledger.application.ledger import Ledger
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.clock import iso, utcnow
from services.ledger.domain.intake import IntakeRecord
from services.ledger.domain.rules import ProgramRules

CUSTOMERS = ("ana", "ben", "cem")
START = utcnow().replace(microsecond=0) - timedelta(days=4)  # well within park_days (7)
RULES = ProgramRules(review_reward_points=0)


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A history in occurred_at order: each refund after its purchase and within it."""
    docs: list[dict[str, Any]] = []
    purchases: list[tuple[str, str, Decimal, int]] = []  # id, customer, amount, minute
    refunded: Counter[str] = Counter()
    goodwill: Counter[str] = Counter()
    minute = 0
    for n in range(draw(st.integers(min_value=3, max_value=25))):
        minute += draw(st.integers(min_value=1, max_value=120))
        kind = draw(
            st.sampled_from(["purchase"] * 4 + ["refund"] * 3 + ["review", "goodwill", "incident"])
        )
        customer = draw(st.sampled_from(CUSTOMERS))
        base = {
            "event_id": f"e{n}",
            "customer_id": customer,
            "occurred_at": iso(START + timedelta(minutes=minute)),
            "store_id": "s1",
            "schema_version": 1,
        }
        if kind == "refund" and purchases:
            event_id, owner, amount, _ = draw(st.sampled_from(purchases))
            left = amount - Decimal(refunded[event_id]) / 100
            if left <= 0:
                continue
            cents = draw(st.integers(min_value=1, max_value=int(left * 100)))
            refunded[event_id] += cents
            docs.append(
                {
                    **base,
                    "type": "refund",
                    "customer_id": owner,
                    "original_event_id": event_id,
                    "amount": {"value": str(Decimal(cents) / 100), "currency": "EUR"},
                }
            )
        elif kind in ("purchase", "refund"):
            # Under 1,000 in all per customer (at most 9 purchases of under 100): no tier.
            if sum(1 for p in purchases if p[1] == customer) >= 9:
                continue
            amount = Decimal(draw(st.integers(min_value=1, max_value=9_999))) / 100
            purchases.append((f"e{n}", customer, amount, minute))
            docs.append(
                {
                    **base,
                    "type": "purchase",
                    "receipt_id": f"r{n}",
                    "amount": {"value": str(amount), "currency": "EUR"},
                }
            )
        elif kind == "review":
            rating = draw(st.integers(min_value=0, max_value=10))
            docs.append({**base, "type": "review", "rating": rating, "touchpoint": "sales"})
        elif kind == "goodwill":
            if goodwill[customer] >= 3:
                continue
            goodwill[customer] += 1
            points = draw(st.integers(min_value=1, max_value=500))
            docs.append(
                {
                    **base,
                    "type": "goodwill",
                    "points": points,
                    "reason_code": "late-delivery",
                    "issued_by": "clerk",
                }
            )
        else:
            docs.append(
                {**base, "type": "incident", "severity": "low", "description": "cold coffee"}
            )
    for doc in docs:
        validate_event(doc)  # every history is one the POS contract admits
    return docs


@st.composite
def deliveries(draw: st.DrawFn, docs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The history shuffled, with repeats of random events, cut into random batches."""
    sent = draw(st.permutations(docs))
    repeats = draw(st.lists(st.sampled_from(docs), max_size=len(docs))) if docs else []
    for doc in repeats:
        sent.insert(draw(st.integers(min_value=0, max_value=len(sent))), doc)
    batches: list[list[dict[str, Any]]] = []
    while sent:
        size = draw(st.integers(min_value=1, max_value=5))
        batches.append(sent[:size])
        sent = sent[size:]
    return batches


def record(batches: list[list[dict[str, Any]]]) -> Ledger:
    ledger = Ledger({"PERSISTENCE_MODULE": "eventsourcing.popo"}, rules=RULES)
    for batch in batches:
        for outcome in ledger.record_batch(batch):
            assert outcome.status in ("accepted", "duplicate", "parked"), outcome
    return ledger


def books(ledger: Ledger) -> dict[str, Any]:
    found = {}
    for customer in CUSTOMERS:
        account = ledger.find_account(customer)
        if account is None:
            continue
        lots = {
            lot_id: (lot.points, lot.reversed, lot.remaining, lot.pending)
            for lot_id, lot in account.lots.items()
        }
        refunds = {p.event_id: p.refunded for p in account.purchases.values()}
        found[customer] = (account.available, account.pending, account.debt, lots, refunds)
        assert account.parked == {}, account.parked
    return found


def stored(ledger: Ledger) -> list[Any]:
    page = ledger.recorder.select_notifications(start=1, limit=100_000)
    return [ledger.mapper.to_domain_event(n) for n in page]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_shuffled_history_ends_as_the_history_in_order(data: st.DataObject) -> None:
    docs = data.draw(histories())
    in_order = record([[doc] for doc in docs])
    shuffled = record(data.draw(deliveries(docs)))

    assert books(shuffled) == books(in_order)
    events = stored(shuffled)
    parked = sum(isinstance(e, IntakeRecord.Parked) for e in events)
    event(f"refunds parked: {'none' if not parked else 'some'}")
    # Exactly once: every event judged once; every refund applied once, to its purchase.
    applied = Counter(e.event_id for e in events if isinstance(e, CustomerAccount.RefundRecorded))
    assert applied == Counter(d["event_id"] for d in docs if d["type"] == "refund")
    for doc in docs:
        record_ = shuffled.repository.get(IntakeRecord.create_id(doc["event_id"]))
        assert record_.refusal is None and not record_.parked, (doc, record_.refusal)
    # Double entry: the postings of every stored event sum to zero.
    assert sum(delta for e in events for _, delta in getattr(e, "postings", None) or ()) == 0
    in_order.close()
    shuffled.close()
