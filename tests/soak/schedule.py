"""The fault schedule: which process is killed, when, and for how long, drawn from a seed.

The same seed, event count and rate give the same schedule (printed at the start of a
run); the processes' exact interleaving with it is the operating system's, so a failing
seed reproduces the faults, and with them, in practice, the failure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

CONSUMERS = ("consume-0", "consume-1")


@dataclass(frozen=True)
class Fault:
    at: float  # when message at x rate is sent (the traffic's clock, not the wall's)
    kind: str  # kill | kill-consumers | pause-broker | restart-postgres
    target: str  # a process name, "broker" or "postgres"
    down: float  # seconds before the process is started again (or the broker resumed)

    def line(self) -> str:
        return f"t+{self.at:7.2f}s {self.kind:<16} {self.target:<20} down {self.down:.2f}s"


def draw(seed: int, window: float) -> list[Fault]:
    """Faults over `window` seconds of traffic (the produce window plus a little), about
    one every few seconds, at least one of each kind."""
    rng = random.Random(f"soak-faults-{seed}")
    span = max(window, 10.0)
    counts = {
        "kill-consume": max(4, int(span / 8)),
        "kill-consumers": max(1, int(span / 45)),
        "kill-project": max(2, int(span / 20)),
        "kill-relay": max(2, int(span / 20)),
        "pause-broker": max(1, int(span / 45)),
        "restart-postgres": max(1, int(span / 45)),
    }
    faults = []
    for kind, count in counts.items():
        for _ in range(count):
            at = round(rng.uniform(2.0, span), 2)
            down = round(rng.uniform(0.2, 3.0), 2)
            if kind == "kill-consume":
                faults.append(Fault(at, "kill", rng.choice(CONSUMERS), down))
            elif kind == "kill-consumers":
                faults.append(Fault(at, "kill-consumers", "+".join(CONSUMERS), down))
            elif kind == "kill-project":
                faults.append(Fault(at, "kill", "project", down))
            elif kind == "kill-relay":
                faults.append(Fault(at, "kill", "relay", down))
            elif kind == "pause-broker":
                faults.append(Fault(at, "pause-broker", "broker", round(rng.uniform(1, 5), 2)))
            else:
                faults.append(Fault(at, "restart-postgres", "postgres", 0.0))
    return sorted(faults, key=lambda f: (f.at, f.kind, f.target))
