"""Recovery costs: how long a resume takes to own a big run again, and how fast a cancel lands.

    python benchmarks/bench_recovery.py [--steps 10000] [--cancels 5] [--json]

* resume: a run of N ``true`` steps is SIGKILLed two thirds of the way through (crash plugin);
  then ``resume_run`` (read + fold the whole log, cut a torn tail, record ownership) is timed in
  process, and ``wf status`` on the same log is timed as a command. Reported next to the time
  the crashed run itself took, so the figure reads as a fraction of the work it protects.
* cancel: a running ``sleep 600`` step (it respects SIGTERM); time from starting ``wf cancel``
  to the step's process being gone, median over several runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fault_injection.crash import crash_env  # noqa: E402
from pytest_wf.harness import process_alive  # noqa: E402
from wf_engine.log.eventlog import read_log  # noqa: E402
from wf_engine.plugins.manager import Plugins  # noqa: E402
from wf_engine.runtime.store import RunStore  # noqa: E402
from wf_engine.runtime.takeover import resume_run  # noqa: E402


def _wf(
    home: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wf_engine", "--home", home, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def measure_resume(workdir: Path, steps: int) -> dict[str, Any]:
    home = str(workdir / "home")
    workflow = {
        "workflow_id": "big",
        "steps": [
            {"id": f"s{i}", "command": "true", "depends_on": [f"s{i - 1}"] if i % 10 else []}
            for i in range(steps)
        ],
    }
    path = workdir / "big.json"
    path.write_text(json.dumps(workflow))
    crash_at = steps * 4 // 2  # about four records a step: crash near half way
    started = time.perf_counter()
    crashed = _wf(
        home, "run", str(path), "--run-id", "big", "--max-parallel", "2", env=crash_env(crash_at)
    )
    run_sec = time.perf_counter() - started
    assert crashed.returncode == -9, crashed.stderr
    events = RunStore(home).paths("big").events
    records = len(read_log(events)[0])
    started = time.perf_counter()
    status = _wf(home, "status", "big", "--json")
    status_sec = time.perf_counter() - started
    assert status.returncode == 0, status.stderr
    started = time.perf_counter()
    runner = resume_run(RunStore(home), "big", Plugins.load(entry_points=False), lambda _: None)
    resume_sec = time.perf_counter() - started
    assert runner is not None
    runner.release()
    return {
        "steps": steps,
        "records_in_log": records,
        "log_bytes": os.path.getsize(events),
        "crashed_run_sec": round(run_sec, 3),
        "resume_take_over_sec": round(resume_sec, 3),
        "status_command_sec": round(status_sec, 3),
    }


def measure_cancel(workdir: Path, repeats: int) -> dict[str, Any]:
    home = str(workdir / "cancel-home")
    path = workdir / "sleepy.json"
    path.write_text(
        json.dumps(
            {
                "workflow_id": "sleepy",
                "steps": [{"id": "sleep", "command": ["sleep", "600"], "kill_grace_sec": 5}],
            }
        )
    )
    latencies = []
    for attempt in range(repeats):
        run_id = f"sleepy-{attempt}"
        runner = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wf_engine",
                "--home",
                home,
                "run",
                str(path),
                "--run-id",
                run_id,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        events = RunStore(home).paths(run_id).events
        pid = _wait_for_spawn(events)
        started = time.perf_counter()
        cancel = _wf(home, "cancel", run_id)
        while process_alive(pid):
            time.sleep(0.001)
        latencies.append(time.perf_counter() - started)
        assert cancel.returncode == 0, cancel.stderr
        runner.wait()
    return {
        "cancel_latency_median_sec": round(statistics.median(latencies), 3),
        "cancel_latency_max_sec": round(max(latencies), 3),
        "repeats": repeats,
    }


def _wait_for_spawn(events: str) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if os.path.exists(events):
            for record in read_log(events)[0]:
                if record["type"] == "spawned":
                    return int(record["pid"])
        time.sleep(0.005)
    raise TimeoutError("step never spawned")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--cancels", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wf-bench-") as tmp:
        results = {
            **measure_resume(Path(tmp), options.steps),
            **measure_cancel(Path(tmp), options.cancels),
        }
    if options.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key:28} {value}")


if __name__ == "__main__":
    main()
