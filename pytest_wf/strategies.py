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
    Workflow documents (text) that break exactly one rule of SPEC §2, each derived from a
    generated valid workflow, together with the rule's name and a piece of text the validator's
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
"""

from __future__ import annotations

import copy
import json
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy

from fault_injection.crash import POINTS
from pytest_wf.harness import TaskKit
from wf_engine.core.model import is_valid_id

__all__ = [
    "BEHAVIOURS",
    "RULES",
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


# ---------------------------------------------------------------------------------------------
# Invalid workflows


class InvalidWorkflow(NamedTuple):
    """A workflow document breaking exactly one rule.

    ``expect`` is text the validator's report must contain: the JSON path of the problem and
    the start of its message (e.g. ``"steps[2].retries: expected"``).
    """

    text: str
    rule: str
    expect: str


Doc = dict[str, Any]
_Breaker = Callable[[DrawFn, Doc], tuple[str | Doc, str]]

_BAD_IDS: Final = (
    "",
    ".hidden",
    "-rf",
    "a b",
    "../etc",
    "a/b",
    "/abs",
    "..",
    "x" * 129,
    "caf\u00e9",
    "a\nb",
    "a:b",
    "$HOME",
)


def _bad_ids() -> SearchStrategy[str]:
    return st.sampled_from(_BAD_IDS) | st.text(max_size=6).filter(lambda s: not is_valid_id(s))


def _steps(doc: Doc) -> list[Doc]:
    steps: list[Doc] = doc["steps"]
    return steps


def _pick_step(draw: DrawFn, doc: Doc) -> tuple[int, Doc]:
    index = draw(st.integers(0, len(_steps(doc)) - 1), label="step")
    return index, _steps(doc)[index]


def _fresh_id(draw: DrawFn, doc: Doc) -> str:
    taken = {step["id"] for step in _steps(doc)}
    return draw(ids().filter(lambda i: i not in taken), label="fresh id")


def _break_syntax(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    text = json.dumps(doc, indent=2)
    how = draw(st.sampled_from(["truncate", "trailing-comma", "garbage", "comment", "quotes"]))
    if how == "truncate":
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif how == "trailing-comma":
        text = text[:-1].rstrip() + ",\n}"
    elif how == "garbage":
        text += draw(st.sampled_from([" x", "}", ",", " {}", " null"]))
    elif how == "comment":
        text = "// workflow\n" + text
    else:
        text = text.replace('"workflow_id"', "'workflow_id'", 1)
    return text, "invalid JSON at line "


def _break_duplicate_key(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    text = json.dumps(doc, indent=2)
    key = draw(st.sampled_from(["workflow_id", "steps"]))
    value = json.dumps(doc[key])
    return '{"' + key + '": ' + value + ", " + text[1:], f"duplicate key '{key}'"


def _break_non_finite(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    index, step = _pick_step(draw, doc)
    key = draw(st.sampled_from(["timeout_sec", "retry_backoff_sec"]))
    step[key] = draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
    return doc, f"steps[{index}].{key}: "


def _break_not_object(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    text = draw(st.sampled_from([json.dumps([doc]), "null", "42", '"workflow"', "[]", "true"]))
    return text, "expected a JSON object at the top level"


def _break_missing_field(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    where = draw(st.sampled_from(["workflow_id", "steps", "step id", "command"]))
    if where in ("workflow_id", "steps"):
        del doc[where]
        return doc, f"missing required field '{where}'"
    if where == "step id":
        # The last step: no other step depends on it (dependencies only point backwards).
        index = len(_steps(doc)) - 1
        del _steps(doc)[index]["id"]
        return doc, f"steps[{index}]: missing required field 'id'"
    index, step = _pick_step(draw, doc)
    del step["command"]
    return doc, f"steps[{index}]: missing required field 'command'"


_UNKNOWN_FIELDS: Final = ("colour", "retry", "depends", "timeout", "dependsOn", "cmd", "name")


def _break_unknown_field(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    name = draw(st.sampled_from(_UNKNOWN_FIELDS))
    where = draw(st.sampled_from(["top", "step", "defaults"]))
    if where == "top":
        doc[name] = draw(st.sampled_from([1, "x", None, []]))
        return doc, f"{name}: unknown field '{name}'"
    if where == "defaults":
        doc.setdefault("defaults", {})[name] = 1
        return doc, f"defaults.{name}: unknown field '{name}'"
    index, step = _pick_step(draw, doc)
    step[name] = 1
    return doc, f"steps[{index}].{name}: unknown field '{name}'"


#: Wrongly typed values per field (none of them is also another rule's fault).
_WRONG_TYPES: Final[Mapping[str, Sequence[object]]] = {
    "command": [5, [], "", [1], ["", "x"], {"sh": "true"}, None, "a\u0000b"],
    "depends_on": ["a", {}, [5], None, [["a"]]],
    "retries": ["1", 1.5, None, [1], {}],
    "timeout_sec": ["3", [1], {}],
    "retry_backoff_sec": ["0.1", None, []],
    "env": ["A=1", [], ["A"], 5],
    "cwd": ["", 5, []],
}


def _break_wrong_type(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    where = draw(st.sampled_from(["workflow_id", "steps", "max_parallel", "defaults", "step"]))
    if where == "workflow_id":
        doc["workflow_id"] = draw(st.sampled_from([5, None, [], {"id": "w"}]))
        return doc, "workflow_id: expected an id"
    if where == "steps":
        doc["steps"] = draw(st.sampled_from([{}, "a", 3, None, []]))
        return doc, "steps: expected a non-empty list of steps"
    if where == "max_parallel":
        doc["max_parallel"] = draw(st.sampled_from(["2", 1.5, [], None]))
        return doc, "max_parallel: expected an integer >= 1"
    if where == "defaults":
        doc["defaults"] = draw(st.sampled_from([[], "x", 1]))
        return doc, "defaults: expected an object"
    if draw(st.booleans(), label="replace a whole step"):
        index = len(_steps(doc)) - 1  # the last step: nothing depends on it
        _steps(doc)[index] = draw(st.sampled_from(["a", 1, None, []]))
        return doc, f"steps[{index}]: expected an object"
    index, step = _pick_step(draw, doc)
    key = draw(st.sampled_from(sorted(_WRONG_TYPES)))
    step[key] = copy.deepcopy(draw(st.sampled_from(_WRONG_TYPES[key])))
    return doc, f"steps[{index}].{key}"


def _break_bool_as_int(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    value = draw(st.booleans())
    if draw(st.booleans(), label="max_parallel"):
        doc["max_parallel"] = value
        return doc, "max_parallel: expected an integer >= 1, got " + json.dumps(value)
    index, step = _pick_step(draw, doc)
    key = draw(st.sampled_from(["retries", "timeout_sec", "retry_backoff_sec"]))
    step[key] = value
    return doc, f"steps[{index}].{key}: expected "


def _break_bad_id(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    bad = draw(_bad_ids(), label="bad id")
    if draw(st.booleans(), label="workflow id"):
        doc["workflow_id"] = bad
        return doc, "workflow_id: expected an id"
    index, step = _pick_step(draw, doc)
    old = step["id"]
    step["id"] = bad
    for other in _steps(doc):  # keep dependents pointing at it: only the id is wrong
        other["depends_on"] = [bad if dep == old else dep for dep in other["depends_on"]]
    return doc, f"steps[{index}].id: expected an id"


def _break_duplicate_id(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    steps = _steps(doc)
    original = draw(st.integers(0, len(steps) - 1))
    steps.append({"id": steps[original]["id"], "command": "true", "depends_on": []})
    return doc, f"steps[{len(steps) - 1}].id: duplicate step id '{steps[original]['id']}'"


def _break_unknown_dependency(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    ghost = _fresh_id(draw, doc)
    index, step = _pick_step(draw, doc)
    step["depends_on"].append(ghost)
    position = len(step["depends_on"]) - 1
    return doc, f"steps[{index}].depends_on[{position}]: unknown step '{ghost}'"


def _break_self_dependency(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    index, step = _pick_step(draw, doc)
    position = draw(st.integers(0, len(step["depends_on"])))
    step["depends_on"].insert(position, step["id"])
    return doc, f"steps[{index}].depends_on[{position}]: step '{step['id']}' depends on itself"


def _break_duplicate_dependency(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    steps = _steps(doc)
    if len(steps) < 2:
        steps.append({"id": _fresh_id(draw, doc), "command": "true", "depends_on": []})
    index = draw(st.integers(1, len(steps) - 1))
    step = steps[index]
    if not step["depends_on"]:
        step["depends_on"].append(steps[draw(st.integers(0, index - 1))]["id"])
    dep = draw(st.sampled_from(step["depends_on"]))
    step["depends_on"].append(dep)
    position = len(step["depends_on"]) - 1
    return doc, f"steps[{index}].depends_on[{position}]: duplicate dependency '{dep}'"


def _break_cycle(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    steps = _steps(doc)
    if len(steps) < 2:
        steps.append({"id": _fresh_id(draw, doc), "command": "true", "depends_on": []})
    later = draw(st.integers(1, len(steps) - 1))
    earlier = draw(st.integers(0, later - 1))
    a, b = steps[earlier], steps[later]
    if a["id"] not in b["depends_on"]:
        b["depends_on"].append(a["id"])
    a["depends_on"].append(b["id"])  # the one edge pointing forwards
    position = len(a["depends_on"]) - 1
    cycle = f"{a['id']} -> {b['id']} -> {a['id']}"
    return doc, f"steps[{earlier}].depends_on[{position}]: cycle: {cycle}"


def _break_negative_retries(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    value = draw(st.integers(max_value=-1))
    if draw(st.booleans(), label="in defaults"):
        doc.setdefault("defaults", {})["retries"] = value
        return doc, "defaults.retries: expected an integer >= 0"
    index, step = _pick_step(draw, doc)
    step["retries"] = value
    return doc, f"steps[{index}].retries: expected an integer >= 0"


def _break_non_positive_number(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    value = draw(
        st.sampled_from([0, 0.0, -1, -0.5, -1e-9]) | st.floats(max_value=0, allow_infinity=False)
    )
    index, step = _pick_step(draw, doc)
    key = draw(st.sampled_from(["timeout_sec", "retry_backoff_sec", "kill_grace_sec"]))
    step[key] = value
    return doc, f"steps[{index}].{key}: expected a number > 0"


def _break_env(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    index, step = _pick_step(draw, doc)
    env: dict[str, object] = dict(step.get("env") or {})
    how = draw(st.sampled_from(["bad-name", "not-string", "nul"]))
    if how == "bad-name":
        env[draw(st.sampled_from(["", "A=B", "=", "A\u0000B"]))] = "x"
    elif how == "not-string":
        env["WFP_BAD"] = copy.deepcopy(draw(st.sampled_from([1, None, True, [], {}])))
    else:
        env["WFP_BAD"] = "a\u0000b"
    step["env"] = env
    return doc, f"steps[{index}].env"


def _break_max_parallel(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    doc["max_parallel"] = draw(st.integers(max_value=0))
    return doc, "max_parallel: expected an integer >= 1"


def _break_defaults(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    defaults = doc.setdefault("defaults", {})
    how = draw(st.sampled_from(["id", "retries", "timeout_sec", "command"]))
    if how == "id":
        defaults["id"] = "x"
        return doc, "defaults.id: a step id cannot have a default"
    if how == "retries":
        defaults["retries"] = "2"
        return doc, "defaults.retries: expected an integer >= 0"
    if how == "timeout_sec":
        defaults["timeout_sec"] = 0
        return doc, "defaults.timeout_sec: expected a number > 0"
    defaults["command"] = []
    return doc, "defaults.command: expected a non-empty string"


_BREAKERS: Final[Mapping[str, _Breaker]] = {
    "syntax": _break_syntax,
    "duplicate-key": _break_duplicate_key,
    "non-finite-number": _break_non_finite,
    "not-an-object": _break_not_object,
    "missing-field": _break_missing_field,
    "unknown-field": _break_unknown_field,
    "wrong-type": _break_wrong_type,
    "bool-as-int": _break_bool_as_int,
    "bad-id": _break_bad_id,
    "duplicate-id": _break_duplicate_id,
    "unknown-dependency": _break_unknown_dependency,
    "self-dependency": _break_self_dependency,
    "duplicate-dependency": _break_duplicate_dependency,
    "cycle": _break_cycle,
    "negative-retries": _break_negative_retries,
    "non-positive-number": _break_non_positive_number,
    "bad-env": _break_env,
    "max-parallel-below-1": _break_max_parallel,
    "bad-defaults": _break_defaults,
}

#: Names of the rules :func:`invalid_workflows` can break.
RULES: Final = tuple(_BREAKERS)


@st.composite
def invalid_workflows(
    draw: DrawFn, rules: Sequence[str] = RULES, max_steps: int = 5
) -> InvalidWorkflow:
    """Documents breaking exactly one rule of SPEC §2, each a generated valid workflow changed
    in one place (a field, an id, an edge, the JSON syntax)."""
    unknown = set(rules) - set(_BREAKERS)
    if unknown:
        raise ValueError(f"unknown rules {sorted(unknown)}; known: {', '.join(RULES)}")
    rule = draw(st.sampled_from(list(rules)), label="rule")
    doc = draw(workflows(max_steps, timeouts=True), label="valid workflow")
    broken, expect = _BREAKERS[rule](draw, doc)
    text = broken if isinstance(broken, str) else json.dumps(broken, indent=2)
    return InvalidWorkflow(text, rule, expect)
