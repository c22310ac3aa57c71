"""What reading a big log costs: ``wf status`` against a bare ``json.loads`` of every line.

    python benchmarks/bench_readers.py [--steps 10000] [--repeat 5] [--json] [--profile]
                                       [--tmpdir DIR] [--keep] [--home DIR]

The log is a real one: ``wf run`` of a layered DAG of ``--steps`` ``true`` steps
(``_workloads.make_dag``, two at a time), four records a step and three a run, so 10,000 steps
give 40,003 records (about 9 MB). Building it takes a minute; ``--home DIR`` keeps the run store
there and reuses it on the next call.

Then, interleaved repeat by repeat (``_workloads.alternate``), two commands are timed, each a
fresh process, so interpreter start-up is in both:

* ``wf status RUN`` (the installed script, output to ``/dev/null``): read, check and fold the
  whole log, then render the table of steps;
* ``python -c`` reading the log line by line with ``json.loads`` of each: the floor for any
  reader of a JSON Lines log in Python, which checks nothing and builds nothing.

The ratio of their medians is the number to compare (the target is at most 2x). Both run with
their byte-code cached (``PYTHONPYCACHEPREFIX`` in the temp folder, after two warm-up runs), as
an installed ``wf`` has it, even where ``PYTHONDONTWRITEBYTECODE`` is set: otherwise ``wf`` would
compile its own sources on every call and the ratio would measure that.

In process, for profiling: the median seconds of ``LogScan`` alone (read, checksums, JSON,
envelope, batches) and of ``fold_records`` over it (also every record decoded and checked, and
folded), which is what ``status``, ``replay`` and ``list`` share; ``--profile`` prints where the
time of ``read_run`` goes (cProfile, by own time).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _workloads import (
    REPO,
    BenchError,
    alternate,
    compare,
    make_dag,
    run_timed,
    wf_command,
    write_workflow,
)

sys.path.insert(0, str(REPO))

from wf_engine.core.fold import fold_records
from wf_engine.log.eventlog import LogScan
from wf_engine.runtime.runview import read_run
from wf_engine.runtime.store import RunStore

RUN_ID = "readers"
#: The baseline: every line through ``json.loads``, nothing else.
BARE_JSON = (
    "import json, sys\n"
    "with open(sys.argv[1], 'rb') as log:\n"
    "    for line in log:\n"
    "        json.loads(line)\n"
)


def build_log(home: Path, steps: int) -> Path:
    """``wf run`` a layered DAG of ``steps`` ``true`` steps into ``home``, unless it is there."""
    events = Path(RunStore(str(home)).paths(RUN_ID).events)
    if events.is_file():
        return events
    home.mkdir(parents=True, exist_ok=True)
    workflow = home / "readers.json"
    write_workflow(make_dag(steps, "layered", 0), 2, workflow, workflow_id="readers")
    run = [*wf_command(), "--home", str(home), "run", str(workflow), "--run-id", RUN_ID]
    done = subprocess.run(run, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"wf run exited {done.returncode}\n{done.stderr[-2000:]}")
    return events


def check_status(home: Path, steps: int, env: dict[str, str]) -> None:
    """The run read back SUCCEEDED with every step SUCCEEDED: no number from a failed read."""
    argv = [*wf_command(), "--home", str(home), "status", RUN_ID, "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise BenchError(f"wf status exited {done.returncode}\n{done.stderr[-2000:]}")
    summary = json.loads(done.stdout)
    succeeded = sum(step["state"] == "SUCCEEDED" for step in summary["steps"].values())
    if summary["state"] != "SUCCEEDED" or succeeded != steps:
        raise BenchError(f"run {RUN_ID}: {summary['state']}, {succeeded} of {steps} steps")


def cached_env(workdir: Path) -> dict[str, str]:
    """This environment, with byte-code written to (and read from) a folder of ``workdir``."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


def measure_commands(home: Path, events: Path, repeat: int, env: dict[str, str]) -> dict[str, Any]:
    """``wf status RUN`` against the bare ``json.loads`` loop: medians, ratio, per-repeat ratios."""
    status = [*wf_command(), "--home", str(home), "status", RUN_ID]
    bare = [sys.executable, "-c", BARE_JSON, str(events)]
    for _ in range(2):  # the page cache and the byte-code cache, for both
        run_timed(status, home, env)
        run_timed(bare, home, env)
    times = alternate(
        {
            "wf_status": lambda _: run_timed(status, home, env).seconds,
            "json_loads": lambda _: run_timed(bare, home, env).seconds,
        },
        repeat,
    )
    result = compare(times, "wf_status", "json_loads")
    return {
        "ratio": round(result.ratio, 3),
        "pair_ratios": [round(ratio, 3) for ratio in result.pair_ratios],
        "wf_status_median_s": round(result.subject_median_s, 4),
        "json_loads_median_s": round(result.baseline_median_s, 4),
    }


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return round(statistics.median(seconds), 4)


def measure_in_process(events: Path, repeat: int) -> dict[str, float]:
    """What the shared read path costs without start-up or rendering."""
    path = str(events)
    return {
        "scan_median_s": median_seconds(lambda: sum(1 for _ in LogScan(path)), repeat),
        "fold_median_s": median_seconds(lambda: fold_records(LogScan(path), source=path), repeat),
    }


def profile(home: Path, top: int = 25) -> str:
    """cProfile of ``read_run`` (scan, decode, check, fold, timings), by own time."""
    paths = RunStore(str(home)).paths(RUN_ID)
    profiler = cProfile.Profile()
    profiler.runcall(read_run, paths)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


@contextmanager
def workspace(parent: str | None, keep: bool) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="wf-bench-readers-", dir=parent))
    try:
        yield folder
    finally:
        if keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of read_run")
    parser.add_argument("--tmpdir", help="where the temp folder goes")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--home", help="run store to build the log in, or reuse it from")
    options = parser.parse_args(argv)
    with workspace(options.tmpdir, options.keep) as workdir:
        home = Path(options.home).resolve() if options.home else workdir / "home"
        try:
            events = build_log(home, options.steps)
            env = cached_env(workdir)
            check_status(home, options.steps, env)
            status = measure_commands(home, events, options.repeat, env)
        except BenchError as error:
            print(error, file=sys.stderr)
            return 1
        with events.open("rb") as log:
            records = sum(1 for _ in log)
        doc = {
            "records": records,
            "log_bytes": events.stat().st_size,
            "repeat": options.repeat,
            "status": status,
            "in_process": measure_in_process(events, options.repeat),
        }
        report = profile(home) if options.profile else None
    if options.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"log: {records} records, {doc['log_bytes'] / 1e6:.1f} MB")
        print(
            f"wf status RUN  {status['wf_status_median_s']:.3f} s   "
            f"json.loads of every line  {status['json_loads_median_s']:.3f} s   "
            f"ratio {status['ratio']:.2f}x "
            f"({min(status['pair_ratios']):.2f}x-{max(status['pair_ratios']):.2f}x)"
        )
        cost = doc["in_process"]
        print(
            f"in process: LogScan {cost['scan_median_s']:.3f} s, "
            f"fold_records over it {cost['fold_median_s']:.3f} s"
        )
    if report is not None:
        print(report, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
