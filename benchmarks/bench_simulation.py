"""Crash states the simulation tier explores per minute (docs/pytest-plugin.md, "Simulation tier").

    python benchmarks/bench_simulation.py [--seconds 30] [--jobs N] [--first-seed 0] [--json]

Runs ``pytest_wf.simulation.explore`` on consecutive seeds for ``--seconds`` in ``--jobs``
processes (default: one per core), each taking every ``jobs``-th seed, and counts the crash
states checked: each is a crashed history resumed to its end, its log read back, folded and
verified, and compared with the uncrashed run. Prints the figure per minute of wall time, and
per minute of one core's CPU time (what a loaded machine does not change much).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_wf.simulation import explore


def _worker(first: int, step: int, seconds: float) -> tuple[int, int, float]:
    """Explore seeds ``first, first + step, ...`` until ``seconds`` passed: (states, seeds, cpu)."""
    deadline = time.perf_counter() + seconds
    cpu = time.process_time()
    states = seeds = 0
    seed = first
    while time.perf_counter() < deadline:
        states += explore(seed).crash_states
        seeds += 1
        seed += step
    return states, seeds, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [
            pool.submit(_worker, args.first_seed + k, args.jobs, args.seconds)
            for k in range(args.jobs)
        ]
        results = [future.result() for future in futures]
    wall = time.perf_counter() - started
    states = sum(r[0] for r in results)
    cpu = sum(r[2] for r in results)
    figures = {
        "jobs": args.jobs,
        "seeds": sum(r[1] for r in results),
        "crash_states": states,
        "wall_sec": round(wall, 2),
        "per_minute": round(states / wall * 60),
        "per_cpu_minute": round(states / cpu * 60),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(
            f"{figures['crash_states']} crash states of {figures['seeds']} seeds in "
            f"{figures['wall_sec']}s with {args.jobs} process(es): "
            f"{figures['per_minute']:,} a minute ({figures['per_cpu_minute']:,} per CPU minute)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
