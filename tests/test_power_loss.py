"""Power loss while steps run: resume never runs a step twice at once, nor a durable success again.

The ``power_loss`` crash point SIGKILLs the engine before it fsyncs a batch, leaves the steps it
started running, and drops everything the engine never fsynced (``fault_injection.powerloss``):
the unsynced log tail, the pids in the attempt lock files, whole ``steps/`` folders. Task-kit
steps record an ``overlap`` whenever an execution starts while another of the same step runs.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from pytest_wf import RunResult, TaskKit, WfHarness, dag, step
from pytest_wf.equivalence import ResumeOutcome, assert_resume_equivalent
from pytest_wf.strategies import Behaviour, workflow_json, workflows

REPO = Path(__file__).resolve().parent.parent
PIPELINE = REPO / "examples" / "image_pipeline" / "workflow.json"
#: Longer than the harness and a resuming engine take to start again (on a loaded machine), so
#: an execution the power cut left running outlives the resume's decision to run it again.
SLOW_SEC = 1.5


def kit_command(behaviour: str, *args: str) -> str:
    """A task-kit step command recording into ``tasks-<run id>.jsonl`` in the steps' folder.

    One record file per run (not per test) keeps the workflow the same in every test of a
    matrix, so its uncrashed reference run is made once, and keeps runs from counting each
    other's executions (``fail-first``) or holding each other's overlap locks.
    """
    task = shlex.join([sys.executable, "-m", "fault_injection.task", "--record"])
    return f'exec {task} "tasks-$WF_RUN_ID.jsonl" {shlex.join([behaviour, *args])}'


def run_kit(wf: WfHarness, run: RunResult) -> TaskKit:
    """The records of one run's task-kit steps (see ``kit_command``)."""
    return TaskKit(wf.workdir / f"tasks-{run.run_id}.jsonl")


DIAMOND = dag(
    "diamond",
    [
        step("fetch", kit_command("ok")),
        step("slow", kit_command("sleep", str(SLOW_SEC)), ["fetch"]),
        step("flaky", kit_command("fail-first", "1"), ["fetch"], retries=1, retry_backoff_sec=0.05),
        step("check", kit_command("sleep", str(SLOW_SEC)), ["fetch"]),
        step("join", kit_command("ok"), ["slow", "flaky", "check"]),
        step("ship", kit_command("ok"), ["join"]),
    ],
    max_parallel=3,  # slow, flaky and check start together: one `spawned` batch, two slow locks
)


def check_resumed(wf: WfHarness, outcome: ResumeOutcome) -> RunResult | None:
    """The resumed run SUCCEEDED and ``wf replay --verify`` accepts its whole log.

    Only ``--verify`` of ``assert_replay_equivalent``: a resumed run has no live state to compare,
    and its other checks (replay printing the same bytes twice) are four more CLI calls per
    crash point that a power cut cannot affect. None if the cut left no run at all.
    """
    resumed = outcome.resumed
    if resumed.status is None:  # the power cut took the run's first batch: nothing to resume
        return None
    assert resumed.state == "SUCCEEDED", resumed.stderr
    verify = wf.cli("replay", str(resumed.run_id), "--verify")
    assert verify.returncode == 0, verify.stderr
    return resumed


@pytest.fixture(scope="module", autouse=True)
def _clean_pipeline_output() -> Iterator[None]:
    """The pipeline writes ``out/<run id>``: remove this module's runs, not other tests'."""
    yield
    out = PIPELINE.parent / "out"
    for folder in out.glob(f"run-{os.getpid()}-*"):
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.wf_crash_matrix(points=("power_loss",), depth=23)
def test_power_loss_at_every_record_of_the_example_pipeline(
    wf: WfHarness,
    wf_resume_equivalent: Callable[..., ResumeOutcome],
    wf_crash_point: tuple[int, str],
) -> None:
    outcome = wf_resume_equivalent(PIPELINE, wf_crash_point, "--max-parallel", "2")
    check_resumed(wf, outcome)


@pytest.mark.wf_crash_matrix(points=("power_loss",), depth=31)
def test_power_loss_at_every_record_of_a_task_kit_diamond(
    wf: WfHarness,
    wf_resume_equivalent: Callable[..., ResumeOutcome],
    wf_crash_point: tuple[int, str],
) -> None:
    outcome = wf_resume_equivalent(DIAMOND, wf_crash_point)
    resumed = check_resumed(wf, outcome)
    if resumed is not None:
        run_kit(wf, resumed).assert_no_overlap()


def _kit_task(behaviour: Behaviour) -> str:
    """``pytest_wf.strategies`` behaviours as run-scoped task-kit commands; sleeps made slow."""
    kind = behaviour["kind"]
    if kind == "fail-first":
        return kit_command(kind, str(int(behaviour["k"])))
    if kind == "sleep":
        return kit_command(kind, f"{float(behaviour['sec']) + SLOW_SEC:g}")
    return kit_command(kind)


@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    workflow=workflows(max_steps=4, task_command=_kit_task, crash_safe=True, timeouts=False),
    data=st.data(),
)
def test_power_loss_in_generated_workflows(
    wf: WfHarness, workflow: dict[str, Any], data: st.DataObject
) -> None:
    note(workflow_json(workflow))
    reference = wf.run(workflow)
    seq = data.draw(st.integers(1, len(reference.events)), label="power loss at seq")
    outcome = assert_resume_equivalent(wf, workflow, (seq, "power_loss"), reference=reference)
    resumed = outcome.resumed
    if resumed.status is not None:
        assert resumed.state == reference.state, resumed.stderr
        run_kit(wf, resumed).assert_no_overlap()
