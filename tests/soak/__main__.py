"""`python -m tests.soak [--seed N] [--events N] [--rate R]`: exit 0 when every
invariant held, 1 otherwise (the seed and the fault schedule are printed first)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.soak.run import Options, random_seed, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--seed", type=int, default=0, help="0: draw one (and print it)")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=0, help="0: events / 30")
    parser.add_argument("--rate", type=float, default=1000.0, help="messages per second")
    parser.add_argument("--drain-seconds", type=float, default=1800.0)
    parser.add_argument("--workdir", type=Path, help="keep logs and data here")
    args = parser.parse_args(argv)
    options = Options(
        seed=args.seed or random_seed(),
        events=args.events,
        customers=args.customers,
        rate=args.rate,
        drain_seconds=args.drain_seconds,
        workdir=args.workdir,
    )
    return 0 if run(options).ok else 1


if __name__ == "__main__":
    sys.exit(main())
