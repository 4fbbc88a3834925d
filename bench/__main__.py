"""`python -m bench` (`make bench`): run every benchmark in `BENCHES`, in turn.

Each entry is a module with a `main()` that prints its numbers and writes its markdown
table to `bench/out/`. `python -m bench bench.kafka_ingest` runs only the ones named.
"""

from __future__ import annotations

import importlib
import sys
import time

BENCHES = [
    "bench.http_batch",
    "bench.kafka_ingest",
    "bench.replay",
    "bench.console",
    "bench.account_history",
    "bench.scaling",
    "bench.campaign_simulate",
    "bench.reads_under_load",
    "bench.memory",
]


def main(argv: list[str]) -> None:
    chosen = argv or BENCHES
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        sys.exit(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    for name in chosen:
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        importlib.import_module(name).main()
        print(f"=== {name}: {time.perf_counter() - started:.0f} s ===", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
