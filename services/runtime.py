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

The middle generation is collected only every 200 young collections (the default: 10).
A batch's own objects live until the batch ends, so they survive young collections and
reach it; with the running state of the accounts (issue 14: two sorted indexes per
account) each of its collections took ~40 ms, and 18 of them ~0.7-1.1 s of CPU for 50,000
POS events in the consumer's loop; with 200, ~0.02 s (measured with `gc.callbacks`).
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (50_000, 200, 20)


def tune_gc() -> None:
    """Call once, early, in a process that will run for long (the CLI does, for every
    command)."""
    gc.freeze()  # what the imports and start-up made: never collected, never scanned
    gc.set_threshold(*GC_THRESHOLDS)
