"""Valid workflows and crash points: ``workflows()``, ``workflow_plans()``, ``crash_points()``.

The DAG is drawn by ordered edges, so it is acyclic by construction; see the package docstring
(``pytest_wf.strategies``) for how to use these, and docs/pytest-plugin.md.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy

from fault_injection.crash import POINTS
from pytest_wf.harness import TaskKit

__all__ = [
    "BEHAVIOURS",
    "GENEROUS_TIMEOUT_SEC",
    "TIGHT_SLEEP_SEC",
    "TIGHT_TIMEOUT_SEC",
    "Behaviour",
    "StepPlan",
    "TaskCommand",
    "WorkflowPlan",
    "crash_points",
    "ids",
    "shell_command",
    "task_kit_commands",
    "workflow_json",
    "workflow_plans",
    "workflows",
]

#: A symbolic step behaviour: ``{"kind": "ok" | "fail" | "fail-first" | "sleep", ...}`` with
#: ``k`` (failing executions) for ``fail-first`` and ``sec`` for ``sleep``.
Behaviour = Mapping[str, Any]
#: Turns a behaviour into a step command (a ``/bin/sh -c`` string or an argv list).
TaskCommand = Callable[[Behaviour], "str | list[str]"]

#: Every behaviour kind the strategies know.
BEHAVIOURS: Final = ("ok", "fail", "fail-first", "sleep")

#: A timeout that never fires in a test (every generated step ends long before it).
GENEROUS_TIMEOUT_SEC: Final = 60.0
#: A timeout far shorter than :data:`TIGHT_SLEEP_SEC`, so such a step always times out.
TIGHT_TIMEOUT_SEC: Final = 0.1
TIGHT_SLEEP_SEC: Final = 2.0

_SLEEPS: Final = (0.01, 0.05, 0.1)
_BACKOFFS: Final = (0.01, 0.02, 0.05)
_ID_FIRST: Final = string.ascii_lowercase + string.digits + "_" + string.ascii_uppercase
_ID_REST: Final = _ID_FIRST + ".-"


# ---------------------------------------------------------------------------------------------
# Commands


def shell_command(behaviour: Behaviour) -> str | list[str]:
    """The default ``task_command``: plain commands, no Python, no record file.

    ``fail-first K`` fails while ``$WF_ATTEMPT <= K``, so it counts attempts (an interrupted
    attempt counts too) where the task kit counts executions.
    """
    kind = behaviour["kind"]
    if kind == "ok":
        return "true"
    if kind == "fail":
        return "false"
    if kind == "fail-first":
        return f'test "${{WF_ATTEMPT:-1}}" -gt {int(behaviour["k"])}'
    if kind == "sleep":
        return ["sleep", _seconds(behaviour["sec"])]
    raise ValueError(f"unknown behaviour {behaviour!r}")


def task_kit_commands(kit: TaskKit) -> TaskCommand:
    """A ``task_command`` running ``fault_injection.task`` through ``kit``.

    Every execution is recorded in the kit's file with the step id as label
    (``kit.starts(step_id)`` counts them); ``fail-first K`` counts executions of the label in that
    file, so two runs that must not influence each other need two kits.
    """

    def command(behaviour: Behaviour) -> list[str]:
        kind = behaviour["kind"]
        if kind in ("ok", "fail"):
            return kit(kind)
        if kind == "fail-first":
            return kit("fail-first", str(int(behaviour["k"])))
        if kind == "sleep":
            return kit("sleep", _seconds(behaviour["sec"]))
        raise ValueError(f"unknown behaviour {behaviour!r}")

    return command


def _unique(names: Sequence[str]) -> list[str]:
    """``names`` with repeats made distinct by a numeric suffix (``a``, ``a-1``, ...).

    Cheaper than drawing with ``unique=True``, which rejects many small examples.
    """
    taken: set[str] = set()
    result: list[str] = []
    for name in names:
        candidate, n = name, 0
        while candidate in taken:
            n += 1
            candidate = f"{name[:120]}-{n}"
        taken.add(candidate)
        result.append(candidate)
    return result


def _seconds(value: Any) -> str:
    return f"{float(value):g}"


# ---------------------------------------------------------------------------------------------
# Plans: a workflow with symbolic behaviours


@dataclass(frozen=True, repr=False)
class StepPlan:
    """One generated step; ``None`` fields are left out of the rendered step."""

    id: str
    behaviour: Behaviour
    depends_on: tuple[str, ...] = ()
    retries: int | None = None
    retry_backoff_sec: float | None = None
    timeout_sec: float | None = None
    env: Mapping[str, str] | None = None

    def render(self, task_command: TaskCommand) -> dict[str, Any]:
        step: dict[str, Any] = {
            "id": self.id,
            "command": task_command(self.behaviour),
            "depends_on": list(self.depends_on),
        }
        optional = {
            "retries": self.retries,
            "retry_backoff_sec": self.retry_backoff_sec,
            "timeout_sec": self.timeout_sec,
            "env": dict(self.env) if self.env is not None else None,
        }
        step.update((key, value) for key, value in optional.items() if value is not None)
        return step

    def succeeds(self) -> bool:
        """Whether this step ends SUCCEEDED once it runs (attempts are not interrupted)."""
        kind = self.behaviour["kind"]
        timeout = self.timeout_sec
        if kind == "sleep" and timeout is not None and float(self.behaviour["sec"]) >= timeout:
            return False
        if kind == "fail":
            return False
        if kind == "fail-first":
            return int(self.behaviour["k"]) <= (self.retries or 0)
        return True

    def __repr__(self) -> str:
        """Only the fields that are set, so a falsifying example stays short."""
        parts = [repr(self.id), repr(dict(self.behaviour))]
        for name in ("depends_on", "retries", "retry_backoff_sec", "timeout_sec", "env"):
            value = getattr(self, name)
            if value not in (None, ()):
                parts.append(f"{name}={value!r}")
        return f"StepPlan({', '.join(parts)})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@dataclass(frozen=True, repr=False)
class WorkflowPlan:
    """A generated workflow before its behaviours became commands."""

    workflow_id: str
    steps: tuple[StepPlan, ...]
    max_parallel: int | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def render(self, task_command: TaskCommand | None = None) -> dict[str, Any]:
        """The workflow dict, commands from ``task_command`` (default :func:`shell_command`)."""
        command = task_command or shell_command
        workflow: dict[str, Any] = {"workflow_id": self.workflow_id}
        if self.defaults:
            workflow["defaults"] = dict(self.defaults)
        if self.max_parallel is not None:
            workflow["max_parallel"] = self.max_parallel
        workflow["steps"] = [step.render(command) for step in self.steps]
        return workflow

    def expected_states(self) -> dict[str, str]:
        """The final state of every step of an uncancelled run without ``--fail-fast``.

        A step whose dependencies all succeeded runs and ends SUCCEEDED or FAILED by its
        behaviour and retries; any other step is SKIPPED.
        """
        states: dict[str, str] = {}
        for step in self.steps:
            if all(states[dep] == "SUCCEEDED" for dep in step.depends_on):
                states[step.id] = "SUCCEEDED" if step.succeeds() else "FAILED"
            else:
                states[step.id] = "SKIPPED"
        return states

    def __repr__(self) -> str:
        """One step per line; only the fields that are set."""
        lines = [f"WorkflowPlan({self.workflow_id!r}, steps=("]
        lines.extend(f"    {step!r}," for step in self.steps)
        extra = "".join(
            f", {name}={value!r}"
            for name, value in (("max_parallel", self.max_parallel), ("defaults", self.defaults))
            if value
        )
        lines.append(f"){extra})")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        for number, line in enumerate(repr(self).split("\n")):
            if number:
                printer.break_()
            printer.text(line)

    def expected_run_state(self) -> str:
        states = self.expected_states().values()
        return "SUCCEEDED" if all(s == "SUCCEEDED" for s in states) else "FAILED"


# ---------------------------------------------------------------------------------------------
# Valid workflows


def ids(max_size: int = 8) -> SearchStrategy[str]:
    """Valid ids (``[A-Za-z0-9_][A-Za-z0-9_.-]*``), shrinking towards ``"a"``."""
    return st.tuples(
        st.sampled_from(_ID_FIRST), st.text(_ID_REST, max_size=max(0, max_size - 1))
    ).map("".join)


@dataclass(frozen=True)
class _StepGene:
    """One step as drawn, before ids are made unique and dependencies resolved.

    Dependencies are distances back (0: the step just before), and those reaching before the
    first step are dropped: deleting steps before a dependency or after its dependent (as the
    shrinker does with list elements) leaves that dependency in place.
    """

    id: str
    deps: tuple[int, ...]
    behaviour: dict[str, Any]
    retries: int | None
    backoff: float
    timeout: float | None
    env: Mapping[str, str] | None


def _earlier(index: int, distances: Sequence[int]) -> list[int]:
    """Positions of the steps ``distances`` back from ``index`` (0: the one before), sorted."""
    return sorted({index - 1 - d for d in distances if d < index})


@st.composite
def _step_genes(
    draw: DrawFn,
    kinds: Sequence[str],
    max_steps: int,
    max_retries: int,
    timeouts: bool,
    crash_safe: bool,
) -> _StepGene:
    step_id = draw(ids(), label="id")
    deps = draw(st.lists(st.integers(0, max(0, max_steps - 2)), max_size=3), label="depends_on")
    kind = draw(st.sampled_from(kinds), label="behaviour")
    behaviour: dict[str, Any] = {"kind": kind}
    if kind == "fail-first":
        k = draw(st.integers(1, max(1, max_retries)), label="k")
        behaviour["k"] = k
        low = k if crash_safe else 0
        retries: int | None = draw(st.integers(low, max(low, max_retries)), label="retries")
    else:
        retries = draw(st.none() | st.integers(0, max_retries), label="retries")
    if kind == "sleep":
        behaviour["sec"] = draw(st.sampled_from(_SLEEPS), label="sec")
    timeout: float | None = None
    if timeouts:
        choices = ["none", "generous"]
        if kind == "sleep" and not crash_safe:
            choices.append("tight")
        choice = draw(st.sampled_from(choices), label="timeout")
        if choice == "generous":
            timeout = GENEROUS_TIMEOUT_SEC
        elif choice == "tight":
            timeout = TIGHT_TIMEOUT_SEC
            behaviour["sec"] = TIGHT_SLEEP_SEC
    backoff = draw(st.sampled_from(_BACKOFFS), label="retry_backoff_sec")
    env = draw(
        st.none()
        | st.dictionaries(
            st.sampled_from(["WFP_A", "WFP_B", "LC_WFP"]),
            st.text(string.ascii_letters + string.digits + " ._-", max_size=6),
            max_size=2,
        ),
        label="env",
    )
    return _StepGene(step_id, tuple(deps), behaviour, retries, backoff, timeout, env)


@st.composite
def workflow_plans(
    draw: DrawFn,
    max_steps: int = 8,
    behaviours: Sequence[str] = BEHAVIOURS,
    *,
    min_steps: int = 1,
    max_retries: int = 2,
    timeouts: bool = True,
    crash_safe: bool = False,
) -> WorkflowPlan:
    """Valid :class:`WorkflowPlan` values.

    ``behaviours`` are the kinds to use (see :data:`BEHAVIOURS`). With ``timeouts``, steps may
    get a timeout: a generous one that never fires, or, for a ``sleep`` step, a tight one that
    always fires. ``crash_safe`` keeps only what a crash cannot change: no tight timeouts, and
    ``fail-first K`` only with ``retries >= K`` (an interrupted execution of a task-kit
    ``fail-first`` step still counts as one of its K failures, while the engine does not count
    it against the retries, so ``K > retries`` could turn FAILED into SUCCEEDED).
    A step with retries always gets a tiny backoff (its own or a workflow default), never the
    engine's default of one second.
    """
    kinds = [kind for kind in behaviours if kind in BEHAVIOURS]
    if crash_safe and max_retries < 1:
        kinds = [kind for kind in kinds if kind != "fail-first"]
    if not kinds:
        raise ValueError(f"no usable behaviour among {behaviours!r}")
    workflow_id = draw(ids(), label="workflow_id")
    default_backoff = draw(st.none() | st.sampled_from(_BACKOFFS), label="default backoff")
    genes = draw(
        st.lists(
            _step_genes(kinds, max_steps, max_retries, timeouts, crash_safe),
            min_size=min_steps,
            max_size=max_steps,
        ),
        label="steps",
    )
    step_ids = _unique([gene.id for gene in genes])
    steps = tuple(
        StepPlan(
            id=step_ids[index],
            behaviour=gene.behaviour,
            depends_on=tuple(step_ids[i] for i in _earlier(index, gene.deps)),
            retries=gene.retries,
            retry_backoff_sec=gene.backoff if gene.retries and default_backoff is None else None,
            timeout_sec=gene.timeout,
            env=gene.env,
        )
        for index, gene in enumerate(genes)
    )
    max_parallel = draw(st.none() | st.integers(1, 3), label="max_parallel")
    defaults = {} if default_backoff is None else {"retry_backoff_sec": default_backoff}
    return WorkflowPlan(workflow_id, steps, max_parallel, defaults)


def workflows(
    max_steps: int = 8,
    behaviours: Sequence[str] = BEHAVIOURS,
    task_command: TaskCommand | None = None,
    *,
    min_steps: int = 1,
    max_retries: int = 2,
    timeouts: bool = True,
    crash_safe: bool = False,
) -> SearchStrategy[dict[str, Any]]:
    """Valid workflow dicts (see :func:`workflow_plans` for the options).

    ``task_command`` makes the commands; the default is :func:`shell_command`, and
    ``task_kit_commands(wf_tasks)`` records every execution so a test can count them.
    """
    plans = workflow_plans(
        max_steps,
        behaviours,
        min_steps=min_steps,
        max_retries=max_retries,
        timeouts=timeouts,
        crash_safe=crash_safe,
    )
    return plans.map(lambda plan: plan.render(task_command))


def workflow_json(workflow: Mapping[str, Any] | WorkflowPlan) -> str:
    """Pretty JSON of a workflow (a plan is rendered with :func:`shell_command`) to paste."""
    document = workflow.render() if isinstance(workflow, WorkflowPlan) else workflow
    return json.dumps(document, indent=2, ensure_ascii=False)


def crash_points(max_seq: int) -> SearchStrategy[tuple[int, str]]:
    """``(seq, point)`` with ``1 <= seq <= max_seq`` and a point of ``crash_env``."""
    return st.tuples(st.integers(1, max(1, max_seq)), st.sampled_from(POINTS))
