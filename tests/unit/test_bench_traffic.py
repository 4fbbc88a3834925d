"""The benchmarks' in-memory path (`bench.replay.MemoryAccounts`) keeps up with what the
account commands need of the ledger's `Accounts`: `make bench` is not run by CI, so a
command that asks for something new must fail here first."""

from __future__ import annotations

from bench.replay import Traffic
from bench.scaling import decide


def test_the_benchmarks_simulated_traffic_runs_through_the_account_commands() -> None:
    traffic = Traffic(customers=20)
    documents = [traffic.document(3600.0) for _ in range(400)]
    stored = decide(documents)
    assert len(stored) > len(documents)  # each accepted event: its own and its intake record
    assert {document["type"] for document in documents} >= {"purchase", "review", "refund"}
