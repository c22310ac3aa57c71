"""The rerun plan (``wf_engine.core.rerun``): which steps are carried over and which run again."""

from __future__ import annotations

from typing import Any

import pytest

from wf_engine.core.events import RunCreated, RunOptions
from wf_engine.core.fold import RunState, start
from wf_engine.core.rerun import Action, RerunRefused, plan_rerun
from wf_engine.core.states import StepState
from wf_engine.core.validation import workflow_from_data

BASE = "/work/project"

#   a -> b -> d
#   a -> c -> d      e (independent)
STEPS: list[dict[str, Any]] = [
    {"id": "a", "command": "make a"},
    {"id": "b", "command": "make b", "depends_on": ["a"]},
    {"id": "c", "command": "make c", "depends_on": ["a"]},
    {"id": "d", "command": "make d", "depends_on": ["b", "c"]},
    {"id": "e", "command": "make e"},
]


def origin(states: dict[str, StepState], steps: list[dict[str, Any]] = STEPS) -> RunState:
    workflow = {"workflow_id": "w", "steps": steps}
    state = start(RunCreated("origin-1", workflow, RunOptions(2, False, BASE)))
    for step_id, step_state in states.items():
        state.steps[state.workflow.index_of(step_id)].state = step_state
    return state


def workflow(steps: list[dict[str, Any]] = STEPS) -> Any:
    return workflow_from_data({"workflow_id": "w", "steps": steps}, source="test")


S, F, K, C, P = (
    StepState.SUCCEEDED,
    StepState.FAILED,
    StepState.SKIPPED,
    StepState.CANCELLED,
    StepState.PENDING,
)
FAILED_C = {"a": S, "b": S, "c": F, "d": K, "e": S}


def actions(plan: Any) -> dict[str, str]:
    return {step: entry.action.value for step, entry in plan.steps.items()}


def test_successes_are_reused_and_everything_else_runs() -> None:
    plan = plan_rerun(origin(FAILED_C), workflow(), BASE)

    assert actions(plan) == {"a": "reuse", "b": "reuse", "c": "run", "d": "run", "e": "reuse"}
    assert plan.steps["c"].why == "failed in the origin"
    assert plan.steps["d"].why == "skipped in the origin"


def test_a_cancelled_run_reruns_what_did_not_finish() -> None:
    plan = plan_rerun(origin({"a": S, "b": C, "c": C, "d": P, "e": S}), workflow(), BASE)

    assert plan.ids(Action.RUN) == ["b", "c", "d"]
    assert plan.steps["d"].why == "never started in the origin"


def test_a_succeeded_run_reruns_nothing() -> None:
    everything = dict.fromkeys("abcde", S)
    assert plan_rerun(origin(everything), workflow(), BASE).ids(Action.RUN) == []


def test_from_reruns_the_step_and_everything_downstream() -> None:
    everything = dict.fromkeys("abcde", S)
    plan = plan_rerun(origin(everything), workflow(), BASE, from_steps=["b"])

    assert plan.ids(Action.RUN) == ["b", "d"]
    assert plan.steps["b"].why == "named by --from"
    assert plan.steps["d"].why == "downstream of b"


def test_a_changed_definition_reruns_the_step_and_its_dependents() -> None:
    changed = [dict(step) for step in STEPS]
    changed[2] = {**changed[2], "command": "make c --fixed"}
    plan = plan_rerun(origin(dict.fromkeys("abcde", S)), workflow(changed), BASE)

    assert plan.ids(Action.RUN) == ["c", "d"]
    assert plan.steps["c"].why == "definition changed"


def test_a_default_spelled_out_is_no_change() -> None:
    spelled = [dict(step) for step in STEPS]
    spelled[0] = {**spelled[0], "retries": 0}
    assert (
        plan_rerun(origin(dict.fromkeys("abcde", S)), workflow(spelled), BASE).ids(Action.RUN) == []
    )


def test_added_steps_run_and_removed_steps_are_dropped() -> None:
    steps = [*STEPS[:4], {"id": "f", "command": "make f", "depends_on": ["a"]}]
    plan = plan_rerun(origin(dict.fromkeys("abcde", S)), workflow(steps), BASE)

    assert actions(plan) == {"a": "reuse", "b": "reuse", "c": "reuse", "d": "reuse", "f": "run"}
    assert plan.steps["f"].why == "new step"


def test_a_moved_workflow_reruns_everything() -> None:
    plan = plan_rerun(origin(dict.fromkeys("abcde", S)), workflow(), "/elsewhere")
    assert plan.ids(Action.REUSE) == []


def test_only_runs_exactly_the_named_steps() -> None:
    plan = plan_rerun(origin(FAILED_C), workflow(), BASE, only_steps=["c"])

    assert actions(plan) == {"a": "reuse", "b": "reuse", "c": "run", "d": "skip", "e": "reuse"}
    assert plan.steps["d"].why == "not named by --only (skipped in the origin)"


def test_only_refuses_a_step_whose_dependency_will_not_have_succeeded() -> None:
    with pytest.raises(RerunRefused, match="d needs c"):
        plan_rerun(origin(FAILED_C), workflow(), BASE, only_steps=["d"])
    assert plan_rerun(origin(FAILED_C), workflow(), BASE, only_steps=["c", "d"]).ids(
        Action.RUN
    ) == ["c", "d"]


@pytest.mark.parametrize("option", ["from_steps", "only_steps"])
def test_unknown_steps_are_named(option: str) -> None:
    with pytest.raises(RerunRefused, match="no such step: zz"):
        plan_rerun(origin(FAILED_C), workflow(), BASE, **{option: ["zz"]})


def test_the_dry_run_json_names_origin_action_and_why() -> None:
    plan = plan_rerun(origin(FAILED_C), workflow(), BASE)
    assert plan.to_json()["origin"] == "origin-1"
    assert plan.to_json()["steps"]["c"] == {"action": "run", "why": "failed in the origin"}
