"""``python -m pytest_wf.simulation --seed N [--count K]``: explore seeds N .. N+K-1.

Prints one line per seed (steps, records of the run and of its rerun if any, crash states)
and, on the first failure, the report with its seed; exits 1 then.
"""

from __future__ import annotations

import argparse
import sys
import time

from .exploration import SimulationFailure, explore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_wf.simulation", description=__doc__)
    parser.add_argument("--seed", type=int, required=True, help="the first seed to explore")
    parser.add_argument("--count", type=int, default=1, help="how many seeds (default 1)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.seed < 0:
        parser.error("--seed must be >= 0 and --count >= 1")
    started, states = time.perf_counter(), 0
    for seed in range(args.seed, args.seed + args.count):
        try:
            found = explore(seed)
        except SimulationFailure as failure:
            print(failure, file=sys.stderr)
            return 1
        states += found.crash_states
        rerun = "" if found.rerun is None else f", then a rerun of {len(found.rerun.records)}"
        print(
            f"seed {seed}: {len(found.scenario.workflow.steps)} steps, "
            f"{len(found.reference.records)} records{rerun} in {found.batches} batches, "
            f"{found.crash_states} crash states: every property holds"
        )
    elapsed = time.perf_counter() - started
    print(f"{states} crash states in {elapsed:.2f}s ({states / elapsed * 60:,.0f} a minute)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
