"""The consumer's inner loop on its own, for comparing two versions of the code.

Parses each line of a JSONL file of POS documents and records them with
`Ledger.record_batch` in batches of 2,000 (what `loyalty consume` does between Kafka
and the store), on a store you give it, and prints events/s, CPU per event, the verdicts
and the number of stored events. It imports `services` from the current directory, so
the same file measures any checkout with that checkout's venv:

    cd ../before && .venv/bin/python ../main/bench/intake_loop.py DOCS.jsonl postgresql://...
    cd ../main   && .venv/bin/python bench/intake_loop.py DOCS.jsonl postgresql://...

Make DOCS with the OLDER checkout's simulator, so both versions know every event type:

    .venv/bin/python -c "import orjson, sys; from datetime import datetime, UTC; \\
      from services.projections.simulation import generate_events; \\
      [sys.stdout.buffer.write(orjson.dumps(d) + b'\\n') \\
       for d in generate_events(7, 20000, 50000, datetime(2025, 1, 1, tzinfo=UTC))]" > DOCS.jsonl

(`services.tools.simulation` from 2026-12-02 on.) Use a fresh, empty store for each run.
Not part of `make bench`: it compares checkouts rather than paths of one (docs/BENCHMARKS.md,
"Before and after this round").
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path


def main(docs: str, store: str) -> None:
    try:
        from services.infrastructure.store import StoreURL
    except ImportError:  # code before 2026-12-02
        from services.ledger.adapters.store import StoreURL  # type: ignore[no-redef]
    from services.ledger.adapters.contract import load_contract, parse_event
    from services.ledger.application.ledger import Ledger
    from services.ledger.domain.rules import load_rules_file
    from services.runtime import tune_gc

    tune_gc()
    values = Path(docs).read_bytes().splitlines()
    ledger = Ledger(env=StoreURL.parse(store).eventsourcing_env(), rules=load_rules_file())
    load_contract()
    verdicts: Counter[str] = Counter()
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, len(values), 2000):
        batch = [parse_event(value) for value in values[start : start + 2000]]
        verdicts.update(outcome.status for outcome in ledger.record_batch(batch))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"{len(values):,} events: {len(values) / wall:,.0f}/s, "
        f"{cpu / len(values) * 1e6:.0f} µs CPU per event; {dict(verdicts)}; "
        f"{ledger.recorder.max_notification_id():,} stored events"
    )
    ledger.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: intake_loop.py DOCS.jsonl STORE_URL")
    main(sys.argv[1], sys.argv[2])
