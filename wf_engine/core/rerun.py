"""Planning a rerun: which steps of a finished run are carried over, and which run again.

A finished run's log is never reopened. A rerun is a new run whose first batch states, for every
step, what the plan below decided: carried over from the origin (``PENDING -> SUCCEEDED``,
``reason=reused``), left out by ``--only`` (``PENDING -> SKIPPED``, ``reason=not_selected``), or
nothing (the step runs as in any run). The rules (docs/workflows.md, "Rerun"):

* A step is **dirty** when its definition differs from the origin's (every field after defaults,
  and the folder its ``cwd`` is resolved against), when it is new, when it is downstream of a
  dirty step, or when ``--from`` names it or something upstream of it.
* Without ``--only``: a step that SUCCEEDED in the origin and is not dirty is reused; every other
  step runs.
* With ``--only``: exactly the named steps run. Each one's dependencies must be named too or be
  reused, else the plan is refused, naming them. Every other step is reused when it may be, and
  otherwise left out (SKIPPED, ``not_selected``).

Pure: the origin's state and the new definition in, a plan out; ``carry_over`` turns the plan
into the opening's step events, and ``reuse_refusal`` is what ``replay --verify`` holds each
recorded reuse to when the origin's log is at hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from wf_engine.core.events import StepTransition
from wf_engine.core.fold import RunState
from wf_engine.core.model import Step, Workflow
from wf_engine.core.states import NOT_SELECTED, REUSED, StepState
from wf_engine.errors import UsageError


class Action(Enum):
    REUSE = "reuse"
    RUN = "run"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class StepPlan:
    action: Action
    #: Why, in a few words a user reads in ``wf rerun --dry-run``.
    why: str


@dataclass(frozen=True, slots=True)
class RerunPlan:
    origin_run_id: str
    #: Step id -> its plan, in the new workflow's definition order.
    steps: dict[str, StepPlan]

    def ids(self, action: Action) -> list[str]:
        return [step for step, plan in self.steps.items() if plan.action is action]

    def to_json(self) -> dict[str, Any]:
        """``wf rerun --dry-run --json``."""
        return {
            "origin": self.origin_run_id,
            "steps": {
                step: {"action": plan.action.value, "why": plan.why}
                for step, plan in self.steps.items()
            },
        }


class RerunRefused(UsageError):
    """The selection cannot be honoured (an unknown step, a dependency that will not succeed)."""


def plan_rerun(
    origin: RunState,
    workflow: Workflow,
    base_dir: str,
    from_steps: Sequence[str] = (),
    only_steps: Sequence[str] = (),
) -> RerunPlan:
    """The plan for rerunning ``origin`` with ``workflow`` (its own, or a changed one)."""
    _check_known(workflow, from_steps, "--from")
    _check_known(workflow, only_steps, "--only")
    dirty = _dirty(origin, workflow, base_dir, from_steps)
    reusable = {
        step.id
        for step in workflow.steps
        if step.id not in dirty and _origin_state(origin, step.id) is StepState.SUCCEEDED
    }
    if only_steps:
        return _plan_only(origin, workflow, dirty, reusable, set(only_steps))
    steps: dict[str, StepPlan] = {}
    for step in workflow.steps:
        if step.id in reusable:
            steps[step.id] = StepPlan(Action.REUSE, "succeeded in the origin")
        else:
            steps[step.id] = StepPlan(Action.RUN, dirty.get(step.id) or _outcome(origin, step.id))
    return RerunPlan(origin.run_id, steps)


def _plan_only(
    origin: RunState,
    workflow: Workflow,
    dirty: dict[str, str],
    reusable: set[str],
    only: set[str],
) -> RerunPlan:
    missing = [
        f"{step} needs {dependency}"
        for step in sorted(only)
        for dependency in workflow.step(step).depends_on
        if dependency not in only and dependency not in reusable
    ]
    if missing:
        raise RerunRefused(
            "--only: a dependency would not have succeeded: "
            + "; ".join(missing)
            + " (it did not succeed in the origin, or its definition changed; name it too)"
        )
    steps: dict[str, StepPlan] = {}
    for step in workflow.steps:
        if step.id in only:
            steps[step.id] = StepPlan(Action.RUN, "named by --only")
        elif step.id in reusable:
            steps[step.id] = StepPlan(Action.REUSE, "succeeded in the origin")
        else:
            why = dirty.get(step.id) or _outcome(origin, step.id)
            steps[step.id] = StepPlan(Action.SKIP, f"not named by --only ({why})")
    return RerunPlan(origin.run_id, steps)


def _dirty(
    origin: RunState, workflow: Workflow, base_dir: str, from_steps: Iterable[str]
) -> dict[str, str]:
    """Step id -> why it must run whatever the origin did."""
    moved = _moved(origin, base_dir)
    dirty: dict[str, str] = {}
    for step_id in from_steps:
        dirty.setdefault(step_id, "named by --from")
    for step in workflow.steps:
        if step.id not in dirty:
            changed = _changed(origin, step, moved)
            if changed is not None:
                dirty[step.id] = changed
    # Downstream of anything dirty, breadth first: O(steps + edges).
    dependents: dict[str, list[str]] = {}
    for step in workflow.steps:
        for dependency in step.depends_on:
            dependents.setdefault(dependency, []).append(step.id)
    frontier = list(dirty)
    while frontier:
        upstream = frontier.pop()
        for step_id in dependents.get(upstream, ()):
            if step_id not in dirty:
                dirty[step_id] = f"downstream of {upstream}"
                frontier.append(step_id)
    return dirty


def _moved(origin: RunState, base_dir: str) -> bool:
    return base_dir != origin.options.base_dir


def _changed(origin: RunState, step: Step, moved: bool) -> str | None:
    """Why ``step`` is not the origin's step of that id (None: it is the same)."""
    if not origin.workflow.has_step(step.id):
        return "new step"
    if moved:
        return "the workflow's folder changed"
    if origin.workflow.step(step.id).to_json() != step.to_json():
        return "definition changed"
    return None


def carry_over(plan: RerunPlan) -> list[StepTransition]:
    """The opening's step events: each reused step SUCCEEDED, each one left out SKIPPED."""
    reasons = {
        Action.REUSE: (StepState.SUCCEEDED, REUSED),
        Action.SKIP: (StepState.SKIPPED, NOT_SELECTED),
    }
    events = []
    for step_id, step_plan in plan.steps.items():
        carried = reasons.get(step_plan.action)
        if carried is not None:
            events.append(StepTransition(step_id, StepState.PENDING, carried[0], 0, carried[1]))
    return events


def reuse_refusal(rerun: RunState, origin: RunState, step_id: str) -> str | None:
    """Why ``rerun`` could not carry ``step_id`` over from ``origin`` (None: it could).

    The origin must be the run ``rerun`` names, the step must have SUCCEEDED there (itself or
    carried over from an earlier origin), with the same definition in the same folder.
    """
    if rerun.origin_run_id != origin.run_id:
        return f"the rerun names {rerun.origin_run_id!r} as its origin, not {origin.run_id!r}"
    changed = _changed(origin, rerun.workflow.step(step_id), _moved(origin, rerun.options.base_dir))
    if changed is not None:
        return f"{changed} since the origin"
    state = _origin_state(origin, step_id)
    if state is not StepState.SUCCEEDED:
        return f"it did not succeed in the origin ({_outcome(origin, step_id)})"
    return None


def _origin_state(origin: RunState, step_id: str) -> StepState | None:
    if not origin.workflow.has_step(step_id):
        return None
    return origin.steps[origin.workflow.index_of(step_id)].state


def _outcome(origin: RunState, step_id: str) -> str:
    """How the step ended in the origin, as a reason to run it again."""
    state = _origin_state(origin, step_id)
    if state is None:
        return "new step"
    if state is StepState.PENDING or state is StepState.READY:
        return "never started in the origin"
    return f"{state.value.lower()} in the origin"


def _check_known(workflow: Workflow, steps: Sequence[str], option: str) -> None:
    unknown = [step for step in steps if not workflow.has_step(step)]
    if unknown:
        raise RerunRefused(f"{option}: no such step: {', '.join(unknown)}")
