"""CI tests for the sales_report pipeline (../workflow.json), written with the pytest_wf plugin.

Every test runs the real ``wf`` CLI in a private home folder (the ``wf`` fixture), so what passes
here is what happens when someone types ``wf run workflow.json``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings

from pytest_wf import RunResult, TaskKit, WfHarness, dag, step
from pytest_wf.equivalence import ResumeOutcome
from pytest_wf.strategies import workflow_json, workflows

PIPELINE = Path(__file__).resolve().parent.parent / "workflow.json"
STEPS = ("fetch", "transform", "check_schema", "check_totals", "report")

ReplayCheck = Callable[[RunResult], None]
ResumeCheck = Callable[..., ResumeOutcome]


def states(run: RunResult) -> dict[str, str]:
    return {name: entry["state"] for name, entry in run.steps.items()}


# -- run a workflow, assert on its states, check that replay agrees ---------------------------


def test_pipeline_succeeds_and_replays(wf: WfHarness, wf_replay_equivalent: ReplayCheck) -> None:
    run = wf.run(PIPELINE)
    assert run.returncode == 0, run.stderr
    assert states(run) == dict.fromkeys(STEPS, "SUCCEEDED")
    report = Path(run.paths.root, "artifacts", "report.md").read_text()
    assert "| north | 162.75 |" in report
    wf_replay_equivalent(run)


def test_bad_data_fails_a_check_and_skips_the_report(
    wf: WfHarness, wf_replay_equivalent: ReplayCheck, tmp_path: Path
) -> None:
    source = tmp_path / "orders.csv"
    source.write_text("order_id,region,amount\n1,north,10.00\n2,south,-5.00\n")
    run = wf.run(PIPELINE, env={"CI_SUITE_SOURCE": str(source)})
    assert run.returncode == 1  # the run FAILED
    assert states(run) == {
        "fetch": "SUCCEEDED",
        "transform": "SUCCEEDED",
        "check_schema": "FAILED",
        "check_totals": "SUCCEEDED",  # an independent branch keeps running
        "report": "SKIPPED",
    }
    logs = wf.cli("logs", str(run.run_id), "check_schema")
    assert "order 2: negative amount -5.0" in logs.stderr
    wf_replay_equivalent(run)


# -- task kit: steps that misbehave on purpose, and count how often they ran ------------------


def test_a_flaky_step_is_retried(wf: WfHarness, wf_tasks: TaskKit) -> None:
    workflow = dag(
        "deploy",
        [
            step("upload", wf_tasks("fail-first", "1"), retries=1, retry_backoff_sec=0.05),
            step("notify", wf_tasks("ok"), ["upload"]),
        ],
    )
    run = wf.run(workflow)
    assert run.state == "SUCCEEDED"
    assert run.steps["upload"]["attempts"] == 2
    assert wf_tasks.starts("upload") == 2 and wf_tasks.starts("notify") == 1


# -- crash the engine at every record, resume, compare with an uncrashed run ------------------


@pytest.mark.wf_crash_matrix(points=("after_sync",))  # depth: --wf-crash-depth (pytest.ini)
def test_crash_anywhere_then_resume(
    wf_resume_equivalent: ResumeCheck, wf_crash_point: tuple[int, str]
) -> None:
    outcome = wf_resume_equivalent(PIPELINE, wf_crash_point)
    # state None: killed before the run's first record was durable (nothing to resume).
    assert outcome.resumed.state in ("SUCCEEDED", None)


# -- cancel a running workflow ----------------------------------------------------------------


def test_cancel_a_running_pipeline(wf: WfHarness) -> None:
    running = wf.start(PIPELINE, env={"CI_SUITE_FETCH_DELAY_SEC": "60"})
    running.wait_for_step("fetch", "RUNNING")
    cancel = wf.cancel(running.run_id, "--grace", "2")
    assert cancel.returncode == 0, cancel.stderr
    result = running.wait()
    assert result.returncode == 3  # wf run: the run was CANCELLED
    assert states(result) == dict.fromkeys(STEPS, "CANCELLED")


# -- damaged logs: a torn tail is cut on resume, damage further back is refused ---------------


def test_torn_log_tail_is_cut_on_resume(wf: WfHarness, wf_damage: ModuleType) -> None:
    crashed = wf.crash(PIPELINE, 10)  # SIGKILL right after record 10 is durable
    assert crashed.returncode == -9
    log = crashed.paths.events
    wf_damage.tear(log, os.path.getsize(log) - 20)  # the last record, half written
    resumed = wf.resume(str(crashed.run_id))
    assert resumed.returncode == 0, resumed.stderr
    assert "torn tail" in resumed.stderr
    assert states(resumed) == dict.fromkeys(STEPS, "SUCCEEDED")


def test_damage_before_the_tail_is_refused(wf: WfHarness, wf_damage: ModuleType) -> None:
    run = wf.run(PIPELINE)
    wf_damage.flip_byte(run.paths.events, 30)  # inside record 1
    status = wf.cli("status", str(run.run_id))
    assert status.returncode == 4  # corrupt run store
    assert "line 1" in status.stderr


# -- properties over random workflows (Hypothesis) --------------------------------------------


@settings(
    max_examples=3,  # every example is real processes: keep it small in CI
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(workflow=workflows(max_steps=3))
def test_any_workflow_finishes_and_replays(
    wf: WfHarness, wf_replay_equivalent: ReplayCheck, workflow: dict[str, Any]
) -> None:
    note(workflow_json(workflow))  # a failing example prints the workflow, ready to paste
    run = wf.run(workflow)
    assert run.state in ("SUCCEEDED", "FAILED"), run.stderr
    wf_replay_equivalent(run)
