"""Process-wide settings for the long-running `loyalty` processes.

The cyclic garbage collector's defaults (a young collection every 700 allocations, a
full one every 100 young ones) are made for small heaps. A ledger process keeps large,
long-lived ones (the write side's account cache, the projections' views), and each
event allocates dozens of short-lived objects (its dicts, the stored event, its rows), so
the collector ran ~30 times a second in `loyalty consume` and took about a quarter of its
CPU (bench/kafka_ingest.py), mostly re-scanning objects that live for hours. A young
generation of 50,000 allocations makes the collections rare; what startup created is
frozen out of them altogether. Reference counting still frees everything not in a cycle
at once: only cyclic garbage waits longer, a few MB at most.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
    """Call once, early, in a process that will run for long (the CLI does, for every
    command)."""
    gc.freeze()  # what the imports and start-up made: never collected, never scanned
    gc.set_threshold(*GC_THRESHOLDS)
