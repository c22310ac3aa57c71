"""Per-step overhead of the Dask executor against the local one, on the same 1000-step run.

    python benchmarks/bench_dask.py [--steps 1000] [--shape layered|chain|wide] [--jobs 4]
                                    [--workers 2] [--threads 8] [--repeat 3] [--seed 0]
                                    [--scheduler tcp://HOST:PORT] [--json] [--tmpdir DIR]

One workflow of ``--steps`` ``true`` steps (``_workloads.make_dag``), run to the end by a runner
process with the local executor and by one with the Dask executor, interleaved repeat by repeat
(``_workloads.alternate``). Both runners are built with the runtime API (``create_run(...,
executor=...)``), the way ``wf run --executor`` builds them; each prints how long
``runner.execute()`` took, which is what is compared: interpreter start-up, imports and
connecting to the cluster are not per-step costs and are reported apart (``connect``).

The cluster is a ``LocalCluster`` of ``--workers`` worker processes (``--threads`` each),
started once in a process of its own before the first repeat and shared by every Dask run, as a
user's cluster would be; ``--scheduler`` uses a running one instead. Every run is checked
(``wf status --json``: SUCCEEDED, every step SUCCEEDED) before its time counts.

    per-step overhead = (median Dask seconds - median local seconds) / steps

Exit status: 0 when every run succeeded, 1 when one failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from _workloads import (
    REPO,
    SHAPES,
    BenchError,
    alternate,
    check_succeeded,
    compare,
    make_dag,
    wf_command,
    workflow_dict,
)

#: A runner: ``HOME WORKFLOW RUN_ID local|SCHEDULER``; prints ``{"connect_s", "execute_s"}``.
_RUNNER = """
import functools, json, os, sys, time
started = time.perf_counter()
from wf_engine.plugins.manager import Plugins
from wf_engine.runtime.store import RunStore
from wf_engine.runtime.takeover import RunRequest, create_run
from wf_engine.runtime.workflow_file import load_workflow

home, path, run_id, where = sys.argv[1:]
if where == "local":
    from wf_engine.runtime.localexec import LocalExecutor as factory
else:
    from wf_engine.runtime.daskexec import DaskExecutor
    factory = functools.partial(DaskExecutor, scheduler=where)
request = RunRequest(load_workflow(path), os.path.dirname(path), run_id=run_id)
runner = create_run(RunStore(home), request, Plugins.load(entry_points=False), executor=factory)
ready = time.perf_counter()
state = runner.execute().value
done = time.perf_counter()
print(json.dumps({"state": state, "connect_s": ready - started, "execute_s": done - ready}))
"""

_CLUSTER = """
import logging, sys
from distributed import LocalCluster
cluster = LocalCluster(n_workers=int(sys.argv[1]), threads_per_worker=int(sys.argv[2]),
                       processes=True, host="127.0.0.1", dashboard_address=None,
                       silence_logs=logging.ERROR)
print(cluster.scheduler_address, flush=True)
sys.stdin.read()
cluster.close(timeout=30)
"""


@dataclass(frozen=True)
class Result:
    steps: int
    shape: str
    jobs: int
    workers: int | None
    threads: int | None
    repeat: int
    local_median_s: float
    dask_median_s: float
    local_ms_per_step: float
    dask_ms_per_step: float
    #: (median Dask - median local) / steps: what running a step on Dask adds.
    overhead_ms_per_step: float
    ratio_dask_over_local: float
    pair_ratios: list[float]
    local_times_s: list[float]
    dask_times_s: list[float]
    #: Start-up of a Dask runner (imports, connecting, registering): not a per-step cost.
    dask_connect_median_s: float
    local_connect_median_s: float


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO), *env.get("PYTHONPATH", "").split(os.pathsep)]
    env["PYTHONPATH"] = os.pathsep.join(p for p in dict.fromkeys(paths) if p)
    return env


def start_cluster(workers: int, threads: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A LocalCluster in a process of its own; returns it and its scheduler's address."""
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", _CLUSTER, str(workers), str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=_env(),
            start_new_session=True,
        )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 300)
    address = process.stdout.readline().decode().strip() if ready else ""
    if not address.startswith("tcp://"):
        process.kill()
        raise BenchError(f"the LocalCluster did not start:\n{log.read_text()[-2000:]}")
    return process, address


def stop_cluster(process: subprocess.Popen[bytes]) -> None:
    assert process.stdin is not None
    process.stdin.close()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def one_run(workdir: Path, workflow: Path, where: str, n: int, index: int) -> dict[str, float]:
    """One run in a fresh home; its timings, once it is checked to have done all its work."""
    kind = "local" if where == "local" else "dask"
    home = workdir / f"{kind}-{index}"
    run_id = f"{kind}-{index}"
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(home), str(workflow), run_id, where],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=workdir,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"{kind} runner exited {done.returncode}\n{done.stderr[-2000:]}")
    timings: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    check_succeeded(wf_command(), home, run_id, n)
    return timings


def bench(args: argparse.Namespace, workdir: Path) -> Result:
    dag = make_dag(args.steps, args.shape, args.seed)
    workflow = workdir / "workflow.json"
    workflow.write_text(json.dumps(workflow_dict(dag, args.jobs, workflow_id="bench_dask")))
    cluster = None
    address = args.scheduler
    if address is None:
        cluster, address = start_cluster(args.workers, args.threads, workdir / "cluster.log")
    connect: dict[str, list[float]] = {"local": [], "dask": []}

    def contender(where: str, kind: str) -> Callable[[int], float]:
        def run(index: int) -> float:
            timings = one_run(workdir, workflow, where, args.steps, index)
            connect[kind].append(timings["connect_s"])
            return timings["execute_s"]

        return run

    try:
        one_run(workdir, workflow, address, args.steps, -1)  # warm the workers up, untimed
        times = alternate(
            {"local": contender("local", "local"), "dask": contender(address, "dask")},
            args.repeat,
        )
    finally:
        if cluster is not None:
            stop_cluster(cluster)
    ratio = compare(times, "dask", "local")
    n = args.steps
    return Result(
        steps=n,
        shape=args.shape,
        jobs=args.jobs,
        workers=None if args.scheduler else args.workers,
        threads=None if args.scheduler else args.threads,
        repeat=args.repeat,
        local_median_s=ratio.baseline_median_s,
        dask_median_s=ratio.subject_median_s,
        local_ms_per_step=1000 * ratio.baseline_median_s / n,
        dask_ms_per_step=1000 * ratio.subject_median_s / n,
        overhead_ms_per_step=1000 * (ratio.subject_median_s - ratio.baseline_median_s) / n,
        ratio_dask_over_local=ratio.ratio,
        pair_ratios=ratio.pair_ratios,
        local_times_s=times["local"],
        dask_times_s=times["dask"],
        dask_connect_median_s=statistics.median(connect["dask"]),
        local_connect_median_s=statistics.median(connect["local"]),
    )


def render(result: Result) -> str:
    where = (
        f"LocalCluster of {result.workers} worker processes x {result.threads} threads"
        if result.workers
        else "an existing cluster"
    )
    spread = ", ".join(f"{r:.1f}" for r in result.pair_ratios)
    return "\n".join(
        [
            f"{result.steps} `true` steps ({result.shape}), max_parallel {result.jobs}, "
            f"{result.repeat} repeats, Dask on {where}",
            "",
            "| executor | median execute s | ms per step |",
            "|---|---|---|",
            f"| local | {result.local_median_s:.2f} | {result.local_ms_per_step:.2f} |",
            f"| dask | {result.dask_median_s:.2f} | {result.dask_ms_per_step:.2f} |",
            "",
            f"Dask adds {result.overhead_ms_per_step:.1f} ms per step "
            f"(dask/local {result.ratio_dask_over_local:.1f}x; per repeat: {spread}); "
            f"a Dask runner's start-up (imports, connect): {result.dask_connect_median_s:.2f} s, "
            f"a local one's {result.local_connect_median_s:.2f} s",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--shape", choices=SHAPES, default="layered")
    parser.add_argument("--jobs", type=int, default=4, help="max_parallel of the workflow")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scheduler", help="use this running scheduler instead")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--tmpdir", help="parent of the temp folder (default: the system's)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.jobs < 1 or args.repeat < 1 or args.workers < 1:
        parser.error("--steps, --jobs, --repeat and --workers must be at least 1")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-dask-", dir=args.tmpdir) as tmp:
            result = bench(args, Path(tmp))
    except BenchError as exc:
        print(f"bench_dask: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(result), indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
