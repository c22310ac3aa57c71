"""The rest of the CLI: --detach, the workflow.py shim, list, logs, graph, status text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pytest_wf import TaskKit, WfHarness, dag, step, wait_until

REPO = Path(__file__).resolve().parent.parent


def test_detach_hands_the_run_to_a_background_runner(wf: WfHarness, wf_tasks: TaskKit) -> None:
    path = wf.workflow_file(
        dag("bg", [step("a", wf_tasks("sleep", "0.3")), step("b", ["true"], ["a"])])
    )
    done = wf.cli("run", path, "--detach")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    wait_until(lambda: wf.status(run_id)["state"] == "SUCCEEDED", 60, "detached run to finish")
    assert wf_tasks.starts("a") == 1
    assert wf.cli("replay", run_id, "--verify").returncode == 0


def test_workflow_py_shim_runs_from_a_checkout(wf: WfHarness) -> None:
    path = wf.workflow_file(dag("shim", [step("a", "echo shim")]))
    shim = [sys.executable, str(REPO / "workflow.py"), "--home", wf.home]
    run = subprocess.run(
        [*shim, "run", path, "--run-id", "shim-1"], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    for command in (
        ["status", "shim-1"],
        ["replay", "shim-1"],
        ["cancel", "shim-1"],
        ["resume", "shim-1"],
    ):
        done = subprocess.run([*shim, *command], capture_output=True, text=True, check=False)
        assert "Traceback" not in done.stderr
    status = subprocess.run(
        [*shim, "status", "shim-1", "--json"], capture_output=True, text=True, check=True
    )
    assert json.loads(status.stdout)["state"] == "SUCCEEDED"


def test_list_logs_graph_and_status_text(wf: WfHarness) -> None:
    workflow = dag(
        "misc",
        [
            step("first", "echo out; echo err >&2"),
            step(
                "second",
                "echo attempt $WF_ATTEMPT; test $WF_ATTEMPT -ge 2",
                ["first"],
                retries=1,
                retry_backoff_sec=0.01,
            ),
        ],
    )
    result = wf.run(workflow)
    run_id = str(result.run_id)
    listing = json.loads(wf.cli("list", "--json").stdout)
    assert [row["run_id"] for row in listing] == [run_id]
    assert listing[0]["state"] == "SUCCEEDED"
    logs = wf.cli("logs", run_id, "first")
    assert (logs.stdout, logs.stderr) == ("out\n", "err\n")
    assert wf.cli("logs", run_id, "second", "--attempt", "1").stdout == "attempt 1\n"
    assert wf.cli("logs", run_id, "second").stdout == "attempt 2\n"
    assert wf.cli("logs", run_id, "second", "--attempt", "3").returncode == 2
    assert wf.cli("logs", run_id, "nope").returncode == 2
    text = wf.cli("status", run_id).stdout
    assert "SUCCEEDED" in text and "second" in text and "ATTEMPTS" in text
    assert "second [SUCCEEDED] <- first" in wf.cli("graph", run_id).stdout
    path = wf.workflow_file(workflow)
    assert "s0 --> s1" in wf.cli("graph", path, "--format", "mermaid").stdout
    assert '"first" -> "second";' in wf.cli("graph", path, "--format", "dot").stdout


def test_python_dash_m_and_version(wf: WfHarness) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wf_engine", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "version" in done.stdout
