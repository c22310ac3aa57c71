"""Time ``wf run`` against ``make -j`` on the same DAG of ``true`` steps, in one run.

The DAG is random but seeded, so every run of this script builds the same graph. Each repeat runs
``make`` and then ``wf`` (interleaved, so drift in machine load hits both), and the medians are
compared. The number to look at is the ratio ``wf / make``: seconds depend on the machine, the
ratio much less so.

    python benchmarks/bench_dag.py [--steps 1000] [--shape layered|chain|wide] [--jobs N]
                                   [--repeat 3] [--seed 0] [--json] [--tmpdir DIR] [--keep]

Exit status: 0 when every run succeeded, 1 when ``make`` or ``wf`` failed (or the run did not end
SUCCEEDED), 2 on bad arguments. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from _workloads import (
    LAYERS,
    MAKE,
    SHAPES,
    BenchError,
    Dag,
    check_succeeded,
    count_batches,
    make_dag,
    timed,
    wf_command,
    write_makefile,
    write_workflow,
)

# Re-exported: these lived here before benchmarks/_workloads.py (bench_targets.py shares them).
__all__ = [
    "LAYERS",
    "MAKE",
    "SHAPES",
    "BenchError",
    "Dag",
    "Result",
    "bench",
    "check_succeeded",
    "count_batches",
    "main",
    "make_dag",
    "render",
    "timed",
    "wf_command",
    "write_makefile",
    "write_workflow",
]


@dataclass(frozen=True)
class Result:
    steps: int
    shape: str
    edges: int
    jobs: int
    repeat: int
    make_median_s: float
    wf_median_s: float
    ratio_wf_over_make: float
    #: wf/make of each repeat's pair of runs (which ran back to back): the spread shows the noise.
    pair_ratios: list[float]
    make_steps_per_s: float
    wf_steps_per_s: float
    batches_per_step: float | None
    make_times_s: list[float]
    wf_times_s: list[float]
    wf_batches: list[int]


def bench(n: int, shape: str, jobs: int, repeat: int, seed: int, workdir: Path) -> Result:
    dag = make_dag(n, shape, seed)
    workflow = workdir / "workflow.json"
    makefile = workdir / "Makefile"
    write_workflow(dag, jobs, workflow)
    write_makefile(dag, makefile)
    wf = wf_command()
    make_times: list[float] = []
    wf_times: list[float] = []
    batches: list[int] = []
    for i in range(repeat):
        make_times.append(timed([MAKE, "-j", str(jobs), "-f", str(makefile), "all"], workdir))
        home = workdir / f"home-{i}"  # a fresh store each time: no run list grows between repeats
        run_id = f"bench-{i}"
        argv = [*wf, "--home", str(home), "run", str(workflow), "--run-id", run_id]
        try:
            wf_times.append(timed([*argv, "--max-parallel", str(jobs)], workdir))
        except BenchError:
            check_succeeded(wf, home, run_id, n)  # says how the run ended, when it has a log
            raise
        check_succeeded(wf, home, run_id, n)
        batches.append(count_batches(home / "runs" / run_id / "events.jsonl"))
    make_s = statistics.median(make_times)
    wf_s = statistics.median(wf_times)
    return Result(
        steps=n,
        shape=shape,
        edges=dag.edges,
        jobs=jobs,
        repeat=repeat,
        make_median_s=make_s,
        wf_median_s=wf_s,
        ratio_wf_over_make=wf_s / make_s,
        pair_ratios=[w / m for w, m in zip(wf_times, make_times, strict=True)],
        make_steps_per_s=n / make_s,
        wf_steps_per_s=n / wf_s,
        batches_per_step=statistics.median(batches) / n if batches else None,
        make_times_s=make_times,
        wf_times_s=wf_times,
        wf_batches=batches,
    )


def render(r: Result) -> str:
    lo, hi = min(r.pair_ratios), max(r.pair_ratios)
    bps = "n/a" if r.batches_per_step is None else f"{r.batches_per_step:.2f}"
    rows = [
        ("steps", f"{r.steps} ({r.edges} edges)"),
        ("shape", r.shape),
        ("jobs", str(r.jobs)),
        ("repeat", str(r.repeat)),
        ("make median s", f"{r.make_median_s:.3f}"),
        ("wf median s", f"{r.wf_median_s:.3f}"),
        ("ratio wf/make", f"{r.ratio_wf_over_make:.1f}x (per repeat {lo:.1f}x-{hi:.1f}x)"),
        ("make steps/s", f"{r.make_steps_per_s:.0f}"),
        ("wf steps/s", f"{r.wf_steps_per_s:.0f}"),
        ("fsync batches/step", bps),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--steps", type=int, default=1000, help="steps in the DAG (default 1000)")
    p.add_argument("--shape", choices=SHAPES, default="layered", help="DAG shape")
    p.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="make -j / wf --max-parallel"
    )
    p.add_argument("--repeat", type=int, default=3, help="runs of each tool; medians compared")
    p.add_argument("--seed", type=int, default=0, help="seed of the layered DAG's edges")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.add_argument(
        "--tmpdir", help="parent of the temp folder (default: the system's; try /dev/shm)"
    )
    p.add_argument("--keep", action="store_true", help="keep the temp folder and print its path")
    args = p.parse_args(argv)
    for name in ("steps", "jobs", "repeat"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="wf-bench-", dir=args.tmpdir))
    try:
        result = bench(args.steps, args.shape, args.jobs, args.repeat, args.seed, workdir)
        print(json.dumps(asdict(result), indent=2) if args.json else render(result))
    except BenchError as exc:
        print(f"bench_dag: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"bench_dag: kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
