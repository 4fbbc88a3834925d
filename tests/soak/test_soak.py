"""The CI-sized fault soak (issue 15): 30,000 POS events through Kafka into PostgreSQL
while `consume` (two in one group, sometimes both at once), `project` and `relay` are
SIGKILLed, the broker paused and PostgreSQL restarted (`-m immediate`), at moments drawn
from a seed; every invariant of `tests/soak/checks.py` must hold. `make soak` runs the
big one. A failure prints the seed and the schedule: `make soak SEED=... EVENTS=...`."""

from __future__ import annotations

import os

import pytest

from tests.soak.run import Options, random_seed, run

pytestmark = [pytest.mark.soak, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(900)]

CI_EVENTS = 30_000
CI_RATE = 300.0  # messages a second: a 100 s window of faults on a shared 2-core machine


def test_a_seeded_fault_soak_keeps_every_invariant(capsys: pytest.CaptureFixture[str]) -> None:
    seed = int(os.environ.get("LOYALTY_SOAK_SEED") or random_seed())
    with capsys.disabled():
        result = run(Options(seed=seed, events=CI_EVENTS, rate=CI_RATE, drain_seconds=300))
    assert result.ok, result.summary()
