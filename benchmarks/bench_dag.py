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
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SHAPES = ("layered", "chain", "wide")
LAYERS = 20
MAKE = shutil.which("make") or "/usr/bin/make"


@dataclass(frozen=True)
class Dag:
    """Step ids in definition (topological) order and each step's dependencies."""

    steps: list[str]
    deps: dict[str, list[str]]

    @property
    def edges(self) -> int:
        return sum(len(d) for d in self.deps.values())


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


class BenchError(Exception):
    """A benchmarked command failed: the numbers would be meaningless."""


def make_dag(n: int, shape: str, seed: int) -> Dag:
    """A deterministic DAG of ``n`` steps; ``seed`` fixes the random edges of ``layered``."""
    width = max(1, len(str(n - 1)))
    steps = [f"s{i:0{width}d}" for i in range(n)]
    deps: dict[str, list[str]] = {s: [] for s in steps}
    if shape == "chain":
        for prev, cur in itertools.pairwise(steps):
            deps[cur] = [prev]
    elif shape == "layered":
        rng = random.Random(seed)
        layers = min(LAYERS, n)
        # Layer k holds steps [bounds[k], bounds[k + 1]): sizes differ by at most one.
        bounds = [n * k // layers for k in range(layers + 1)]
        for k in range(1, layers):
            earlier = steps[: bounds[k]]
            for step in steps[bounds[k] : bounds[k + 1]]:
                count = min(rng.randint(1, 3), len(earlier))
                deps[step] = sorted(rng.sample(earlier, count))
    elif shape != "wide":
        raise ValueError(f"unknown shape {shape!r}")
    return Dag(steps, deps)


def write_workflow(dag: Dag, jobs: int, path: Path) -> None:
    workflow = {
        "workflow_id": "bench_dag",
        "max_parallel": jobs,
        "steps": [{"id": s, "command": "true", "depends_on": dag.deps[s]} for s in dag.steps],
    }
    path.write_text(json.dumps(workflow, indent=1) + "\n")


def write_makefile(dag: Dag, path: Path) -> None:
    lines = [".PHONY: all", "all: " + " ".join(dag.steps), ""]
    for step in dag.steps:
        lines.append(f".PHONY: {step}")
        lines.append(f"{step}: {' '.join(dag.deps[step])}".rstrip())
        lines.append("\t@true")
    path.write_text("\n".join(lines) + "\n")


def wf_command() -> list[str]:
    """The installed ``wf`` script (what users run), else the module from this interpreter."""
    exe = shutil.which("wf")
    return [exe] if exe else [sys.executable, "-m", "wf_engine"]


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-2000:]
        raise BenchError(f"{' '.join(argv)} exited {done.returncode}\n{tail}")
    return elapsed


def check_succeeded(wf: list[str], home: Path, run_id: str, n: int) -> None:
    done = subprocess.run(
        [*wf, "--home", str(home), "status", run_id, "--json"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BenchError(f"wf status {run_id} exited {done.returncode}\n{done.stderr[-2000:]}")
    status = json.loads(done.stdout)
    if status.get("state") != "SUCCEEDED":
        raise BenchError(f"run {run_id} ended {status.get('state')}, not SUCCEEDED")
    succeeded = sum(1 for s in status["steps"].values() if s["state"] == "SUCCEEDED")
    if succeeded != n:
        raise BenchError(f"run {run_id}: {succeeded} of {n} steps SUCCEEDED")


def count_batches(events: Path) -> int:
    """Commit batches in a run's log: one write + one fsync each."""
    with events.open(encoding="utf-8") as f:
        return len({json.loads(line)["batch"] for line in f if line.strip()})


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
