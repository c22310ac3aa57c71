"""Hypothesis strategies for wf: random valid workflows, broken ones, and crash points.

Three kinds of test data, each built so that a failing example shrinks to something small a
person can read (and paste into a file, then ``wf run`` by hand):

``workflows()`` / ``workflow_plans()``
    Valid workflow dicts. The DAG is drawn by *ordered edges* (step ``i`` may only depend on
    steps ``0..i-1``), so it is acyclic by construction and shrinks towards fewer steps and fewer
    edges. A step's command comes from a symbolic *behaviour* (``{"kind": "ok"}``,
    ``{"kind": "fail"}``, ``{"kind": "fail-first", "k": 1}``, ``{"kind": "sleep", "sec": 0.05}``)
    turned into a command by a ``task_command`` callable: plain ``/bin/sh`` commands by default,
    or task-kit commands (:func:`task_kit_commands`) so that a test can count executions.
    A :class:`WorkflowPlan` keeps the behaviours, so one plan can be rendered twice (for two runs
    that must not share a record file) and knows its expected outcome
    (:meth:`WorkflowPlan.expected_states`).
``invalid_workflows()``
    Workflow documents (text) that break exactly one rule of docs/workflows.md, each derived from
    a generated valid workflow, together with the rule's name and a piece of text the validator's
    report must contain (usually the JSON path of the problem).
``crash_points(max_seq)``
    ``(seq, point)`` pairs for :func:`fault_injection.crash.crash_env`.

Use :func:`workflow_json` with ``hypothesis.note`` so a failing example prints the workflow::

    from hypothesis import HealthCheck, given, note, settings

    from pytest_wf import WfHarness
    from pytest_wf.strategies import workflow_json, workflows

    @settings(max_examples=10, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(workflow=workflows(max_steps=4))
    def test_every_run_finishes(wf: WfHarness, workflow: dict) -> None:
        note(workflow_json(workflow))
        result = wf.run(workflow)
        assert result.state in ("SUCCEEDED", "FAILED")

Broken documents and crash points go the same way::

    from pytest_wf.strategies import InvalidWorkflow, invalid_workflows

    @settings(max_examples=10, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(invalid=invalid_workflows())
    def test_broken_workflows_exit_2(wf: WfHarness, invalid: InvalidWorkflow) -> None:
        note(invalid.text)
        path = wf.workdir / "broken.json"
        path.write_text(invalid.text)
        done = wf.cli("validate", str(path))
        assert done.returncode == 2 and invalid.expect in done.stderr

    # in a test drawing with st.data(), after an uncrashed run of N records:
    #     seq, point = data.draw(crash_points(N))
    #     wf.run(workflow, env=fault_injection.crash.crash_env(seq, point))

Every example is real processes: keep ``max_examples`` low for properties that run workflows.

The valid workflows and crash points live in ``pytest_wf.strategies.valid``, the broken documents
in ``pytest_wf.strategies.invalid``; every public name of both is importable from here.
"""

from __future__ import annotations

from pytest_wf.strategies.invalid import RULES, InvalidWorkflow, invalid_workflows
from pytest_wf.strategies.valid import (
    BEHAVIOURS,
    GENEROUS_TIMEOUT_SEC,
    TIGHT_SLEEP_SEC,
    TIGHT_TIMEOUT_SEC,
    Behaviour,
    StepPlan,
    TaskCommand,
    WorkflowPlan,
    crash_points,
    ids,
    shell_command,
    task_kit_commands,
    workflow_json,
    workflow_plans,
    workflows,
)

__all__ = [
    "BEHAVIOURS",
    "GENEROUS_TIMEOUT_SEC",
    "RULES",
    "TIGHT_SLEEP_SEC",
    "TIGHT_TIMEOUT_SEC",
    "Behaviour",
    "InvalidWorkflow",
    "StepPlan",
    "TaskCommand",
    "WorkflowPlan",
    "crash_points",
    "ids",
    "invalid_workflows",
    "shell_command",
    "task_kit_commands",
    "workflow_json",
    "workflow_plans",
    "workflows",
]
