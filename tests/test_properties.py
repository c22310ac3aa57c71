"""Properties over generated workflows (``pytest_wf.strategies``), through the real ``wf`` CLI.

* validation never crashes: broken documents exit 2 with a message naming the problem and no
  traceback; valid ones exit 0 (in-process with many examples, through the CLI with a few);
* replay equals live state: ``wf replay --json`` rebuilds what ``wf status --json`` shows, the
  same bytes every time, and ``--verify`` accepts the engine's own log;
* crash + resume converges: SIGKILL the engine at any record (before the write, before the
  fsync, after it), resume, and the run ends as the uncrashed run did, without running a step
  again after its success was durable.

Every CLI example is real processes, so example counts are small; a failing example shrinks to
a small workflow whose JSON is printed (``note``) ready to paste into a file.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from fault_injection.crash import crash_env
from pytest_wf import RunResult, TaskKit, WfHarness
from pytest_wf.strategies import (
    InvalidWorkflow,
    WorkflowPlan,
    crash_points,
    invalid_workflows,
    task_kit_commands,
    workflow_json,
    workflow_plans,
    workflows,
)
from wf_engine.core.validation import WorkflowInvalid, parse_workflow, workflow_from_data
from wf_engine.log.eventlog import Record, read_log
from wf_engine.runtime.store import RunStore

CLI = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
IN_PROCESS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: ``WF_PROPERTY_SCALE=20 pytest tests/test_properties.py`` for a longer hunt (default 1: the
#: whole file takes well under two minutes on two cores).
_SCALE = float(os.environ.get("WF_PROPERTY_SCALE", "1"))


def _examples(count: int) -> int:
    return max(1, round(count * _SCALE))


def _states(steps: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {step_id: entry["state"] for step_id, entry in steps.items()}


def _exit_code(run_state: str) -> int:
    return {"SUCCEEDED": 0, "FAILED": 1, "CANCELLED": 3}[run_state]


# ---------------------------------------------------------------------------------------------
# Validation, in process: many examples, any exception but WorkflowInvalid is a failure.


def _check_report(error: WorkflowInvalid) -> str:
    report = str(error)
    report.encode("utf-8")  # printable by the CLI (no lone surrogates)
    assert error.problems, "WorkflowInvalid without a problem"
    assert "Traceback" not in report
    return report


@settings(IN_PROCESS, max_examples=_examples(300))
@given(invalid=invalid_workflows())
def test_each_broken_rule_is_reported_alone_and_located(invalid: InvalidWorkflow) -> None:
    note(invalid.text)
    try:
        parse_workflow(invalid.text, "generated.json")
    except WorkflowInvalid as error:
        report = _check_report(error)
        assert invalid.expect in report, (invalid.rule, invalid.expect, report)
        assert len(error.problems) == 1, (invalid.rule, report)
    else:
        raise AssertionError(f"rule {invalid.rule!r} broken, yet the workflow was accepted")


@settings(IN_PROCESS, max_examples=_examples(150))
@given(workflow=workflows())
def test_generated_workflows_are_valid_and_round_trip(workflow: dict[str, Any]) -> None:
    note(workflow_json(workflow))
    parsed = parse_workflow(json.dumps(workflow), "generated.json")
    assert [step.id for step in parsed.steps] == [step["id"] for step in workflow["steps"]]
    # What run_created stores is accepted back unchanged.
    assert workflow_from_data(parsed.to_json()) == parsed


_ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()
    | _ANY_TEXT
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_ANY_TEXT, inner, max_size=3),
    max_leaves=12,
)
_FIELDS = (
    "id",
    "command",
    "depends_on",
    "retries",
    "timeout_sec",
    "env",
    "cwd",
    "retry_backoff_sec",
    "retry_backoff_max_sec",
    "kill_grace_sec",
    "workflow_id",
    "steps",
    "defaults",
    "max_parallel",
)


@st.composite
def _mutated(draw: st.DrawFn) -> object:
    """A valid workflow with a few values replaced by arbitrary JSON (or keys dropped)."""
    document: dict[str, Any] = draw(workflows(max_steps=4))
    for _ in range(draw(st.integers(1, 3))):
        steps = document.get("steps")
        in_step = isinstance(steps, list) and steps and draw(st.booleans())
        target: Any = draw(st.sampled_from(steps)) if in_step else document
        if not isinstance(target, dict):
            continue
        key = draw(st.sampled_from(_FIELDS) | _ANY_TEXT)
        if key in target and draw(st.booleans()):
            del target[key]
        else:
            target[key] = draw(_JSON_VALUES)
    return document


@settings(IN_PROCESS, max_examples=_examples(300))
@given(document=_mutated() | _JSON_VALUES)
def test_validation_never_crashes_on_arbitrary_values(document: object) -> None:
    try:
        workflow_from_data(document, "fuzz")
    except WorkflowInvalid as error:
        _check_report(error)
    try:
        text = json.dumps(document)
    except ValueError:  # circular or similar: not a document
        return
    try:
        parse_workflow(text, "fuzz")
    except WorkflowInvalid as error:
        _check_report(error)


@settings(IN_PROCESS, max_examples=_examples(200))
@given(text=st.text(st.characters(codec=None, exclude_categories=()), max_size=60))
def test_validation_never_crashes_on_arbitrary_text(text: str) -> None:
    try:
        parse_workflow(text, "fuzz")
    except WorkflowInvalid as error:
        _check_report(error)


# ---------------------------------------------------------------------------------------------
# Validation through the CLI: exit 2, the problem named, no traceback; valid files exit 0.


@settings(CLI, max_examples=_examples(20))
@given(invalid=invalid_workflows())
def test_wf_validate_rejects_every_broken_rule(wf: WfHarness, invalid: InvalidWorkflow) -> None:
    note(invalid.text)
    path = wf.workdir / f"invalid-{uuid.uuid4().hex[:8]}.json"
    path.write_text(invalid.text, encoding="utf-8")
    done = wf.cli("validate", str(path))
    assert done.returncode == 2, (invalid.rule, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert invalid.expect in done.stderr, (invalid.rule, invalid.expect, done.stderr)
    assert str(path) in done.stderr
    assert "nothing was run" in done.stderr


@settings(CLI, max_examples=_examples(6))
@given(workflow=workflows())
def test_wf_validate_accepts_generated_workflows(wf: WfHarness, workflow: dict[str, Any]) -> None:
    note(workflow_json(workflow))
    done = wf.cli("validate", wf.workflow_file(workflow))
    assert done.returncode == 0, done.stderr
    assert f"valid ({len(workflow['steps'])} steps)" in done.stdout


# ---------------------------------------------------------------------------------------------
# Replay equals live state.


@settings(CLI, max_examples=_examples(12))
@given(plan=workflow_plans(max_steps=6))
def test_replay_equals_live_state(wf: WfHarness, plan: WorkflowPlan) -> None:
    workflow = plan.render()
    note(workflow_json(workflow))
    result = wf.run(workflow)
    assert result.returncode == _exit_code(plan.expected_run_state()), result.stderr
    assert result.state == plan.expected_run_state()
    assert _states(result.steps) == plan.expected_states()
    run_id = str(result.run_id)

    first = wf.cli("replay", run_id, "--json")
    second = wf.cli("replay", run_id, "--json")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout, "replay is not deterministic"
    replayed = json.loads(first.stdout)
    assert replayed["state"] == result.state
    assert replayed["steps"] == result.steps
    assert [r["seq"] for r in replayed["timeline"]] == list(range(1, len(result.events) + 1))

    verify = wf.cli("replay", run_id, "--verify")
    assert verify.returncode == 0, verify.stderr


# ---------------------------------------------------------------------------------------------
# Crash at any record, resume: converges to the uncrashed outcome.


def _kit(tmp_path: Path, name: str) -> TaskKit:
    return TaskKit(tmp_path / f"{name}-{uuid.uuid4().hex[:12]}.jsonl")


def _committed(wf: WfHarness, run_id: str) -> list[Record]:
    path = RunStore(wf.home).paths(run_id).events
    if not os.path.exists(path):
        return []
    records, _ = read_log(path)
    return records


def _check_log(events: list[Record]) -> None:
    """Contiguous seqs; no step record for a step after its SUCCEEDED record."""
    assert [r["seq"] for r in events] == list(range(1, len(events) + 1))
    succeeded: set[str] = set()
    for record in events:
        if record["type"] != "step":
            continue
        assert record["step"] not in succeeded, f"{record} after the step SUCCEEDED"
        if record["to"] == "SUCCEEDED":
            succeeded.add(record["step"])


@settings(CLI, max_examples=_examples(24))
@given(plan=workflow_plans(max_steps=5, crash_safe=True), data=st.data())
def test_crash_at_any_record_then_resume_converges(
    wf: WfHarness, tmp_path: Path, plan: WorkflowPlan, data: st.DataObject
) -> None:
    note(workflow_json(plan))
    reference_kit = _kit(tmp_path, "reference")
    reference: RunResult = wf.run(plan.render(task_kit_commands(reference_kit)))
    assert reference.state == plan.expected_run_state(), reference.stderr
    assert _states(reference.steps) == plan.expected_states()
    reference_starts = Counter(
        str(r["label"]) for r in reference_kit.records() if r["event"] == "start"
    )

    seq, point = data.draw(crash_points(len(reference.events)), label="crash point")
    kit = _kit(tmp_path, "crashed")
    run_id = wf.new_run_id("crash")
    path = wf.workflow_file(plan.render(task_kit_commands(kit)))
    crashed = wf.cli("run", path, "--run-id", run_id, env=crash_env(seq, point))
    expected_code = _exit_code(str(reference.state))
    assert crashed.returncode in (-signal.SIGKILL, expected_code), crashed.stderr
    assert "Traceback" not in crashed.stderr
    event(f"crash {point}: {'killed' if crashed.returncode < 0 else 'run ended first'}")

    if not _committed(wf, run_id):
        # Killed before the first batch was durable: the run never existed, nothing ran.
        assert crashed.returncode == -signal.SIGKILL
        assert kit.records() == []
        event("crash before the run existed")
        return
    # Maybe crash the first resume too, somewhere in what it appends.
    again = data.draw(st.none() | crash_points(len(reference.events)), label="resume crash")
    resume_env = None
    if again is not None:
        resume_env = crash_env(len(_committed(wf, run_id)) + again[0], again[1])
    for _ in range(3):
        if wf.status(run_id)["state"] != "RUNNING":
            break
        resumed = wf.resume(run_id, env=resume_env)
        assert resumed.returncode in (-signal.SIGKILL, expected_code), resumed.stderr
        assert "Traceback" not in resumed.stderr, resumed.stderr
        resume_env = None
    final = wf.status(run_id)
    assert final["state"] == reference.state
    assert _states(final["steps"]) == _states(reference.steps)

    events = _committed(wf, run_id)
    _check_log(events)
    interrupted = Counter(r["step"] for r in events if r.get("reason") == "interrupted")
    event(f"interrupted steps: {min(sum(interrupted.values()), 2)}")
    running = Counter(r["step"] for r in events if r["type"] == "step" and r["to"] == "RUNNING")
    for step in plan.steps:
        starts = kit.starts(step.id)
        # Every execution follows a durable RUNNING record of its own.
        assert starts <= running[step.id], (step.id, starts, running[step.id])
        assert starts <= reference_starts[step.id] + interrupted[step.id], (
            step.id,
            starts,
            reference_starts[step.id],
            interrupted[step.id],
        )

    verify = wf.cli("replay", run_id, "--verify")
    assert verify.returncode == 0, verify.stderr
