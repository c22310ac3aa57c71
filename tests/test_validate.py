"""Tests for ``wf_engine.core.validation`` (every rule, with the exact path and message) and for
``wf_engine.runtime.workflow_file.load_workflow``, which reads the file it validates."""

from __future__ import annotations

import json
import math
import pickle
import time
from pathlib import Path
from typing import Any

import pytest

from wf_engine.core.model import MAX_PARALLEL, MAX_RETRIES, MAX_SECONDS, Step, Workflow
from wf_engine.core.validation import Problem, WorkflowInvalid, parse_workflow, workflow_from_data
from wf_engine.errors import EXIT_USAGE, UsageError
from wf_engine.runtime.workflow_file import load_workflow  # the file reading, outside the core

ID_RULE = "1-128 characters of A-Z, a-z, 0-9, '_', '.', '-', not starting with '.' or '-'"


def step(**fields: Any) -> dict[str, Any]:
    return {"id": "a", "command": "true", **fields}


def doc(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"workflow_id": "w", "steps": list(steps) or [step()], **top}


def problems_of(data: object) -> list[str]:
    with pytest.raises(WorkflowInvalid) as info:
        workflow_from_data(data)
    return [str(problem) for problem in info.value.problems]


def text_problems(text: str) -> list[str]:
    with pytest.raises(WorkflowInvalid) as info:
        parse_workflow(text)
    return [str(problem) for problem in info.value.problems]


DURATION_FIELDS = ("timeout_sec", "retry_backoff_sec", "retry_backoff_max_sec", "kill_grace_sec")


def one_step(**fields: Any) -> Step:
    return workflow_from_data(doc(step(**fields))).steps[0]


# --- Problem and WorkflowInvalid ---------------------------------------------------------------


def test_problem_str_with_and_without_path() -> None:
    assert str(Problem("steps[3].depends_on[0]", "unknown step 'x'")) == (
        "steps[3].depends_on[0]: unknown step 'x'"
    )
    assert str(Problem("", "cannot read file: boom")) == "cannot read file: boom"


def test_workflow_invalid_lists_every_problem_with_source() -> None:
    error = WorkflowInvalid("wf.json", [Problem("", "one"), Problem("workflow_id", "two")])
    assert error.source == "wf.json"
    assert error.problems == (Problem("", "one"), Problem("workflow_id", "two"))
    assert str(error) == "wf.json: one\nwf.json: workflow_id: two"
    assert isinstance(error, UsageError)
    assert error.exit_code == EXIT_USAGE
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.source, copy.problems) == (error.source, error.problems)


def test_source_names_the_document() -> None:
    with pytest.raises(WorkflowInvalid) as info:
        parse_workflow("[]", source="pipeline.json")
    assert str(info.value) == "pipeline.json: expected a JSON object at the top level, got []"


# --- valid documents ---------------------------------------------------------------------------


def test_minimal_workflow_gets_model_defaults() -> None:
    workflow = parse_workflow('{"workflow_id": "w", "steps": [{"id": "a", "command": "true"}]}')
    assert workflow == Workflow(workflow_id="w", steps=(Step(id="a", command="true"),))
    assert workflow.max_parallel is None
    only = workflow.steps[0]
    assert (only.depends_on, only.retries, only.timeout_sec, only.env, only.cwd) == (
        (),
        0,
        None,
        (),
        None,
    )
    assert (only.retry_backoff_sec, only.retry_backoff_max_sec, only.kill_grace_sec) == (
        1.0,
        60.0,
        5.0,
    )


@pytest.mark.parametrize(
    ("field", "value", "stored"),
    [
        ("id", "A_b.c-1", "A_b.c-1"),
        ("id", "_x", "_x"),
        ("id", "9", "9"),
        ("id", "x" * 128, "x" * 128),
        ("command", "echo hi && exit 0", "echo hi && exit 0"),
        ("command", ["echo", "hi"], ("echo", "hi")),
        ("command", ["printf", ""], ("printf", "")),
        ("depends_on", [], ()),
        ("retries", 0, 0),
        ("retries", 3, 3),
        ("timeout_sec", 30, 30.0),
        ("timeout_sec", 0.5, 0.5),
        ("timeout_sec", None, None),
        ("env", {}, ()),
        ("env", {"B": "2", "A": "", "LANG": "é"}, (("B", "2"), ("A", ""), ("LANG", "é"))),
        ("cwd", "sub/dir", "sub/dir"),
        ("cwd", None, None),
        ("retry_backoff_sec", 2, 2.0),
        ("retry_backoff_sec", 0.25, 0.25),
        ("retry_backoff_max_sec", 120, 120.0),
        ("kill_grace_sec", 0.1, 0.1),
        *[
            (field, value, float(value))
            for field in DURATION_FIELDS
            for value in (MAX_SECONDS, float(MAX_SECONDS), 1e-300, 5e-324)
        ],
        ("retries", MAX_RETRIES, MAX_RETRIES),
    ],
)
def test_valid_step_field(field: str, value: object, stored: object) -> None:
    result = getattr(one_step(**{field: value}), field)
    assert result == stored
    assert type(result) is type(stored)


def test_depends_on_and_max_parallel() -> None:
    workflow = workflow_from_data(
        doc(step(id="a"), step(id="b", depends_on=["a"]), step(id="c", depends_on=["b", "a"]))
        | {"max_parallel": 4}
    )
    assert [s.depends_on for s in workflow.steps] == [(), ("a",), ("b", "a")]
    assert workflow.max_parallel == 4


def test_forward_reference_is_fine() -> None:
    workflow = workflow_from_data(doc(step(id="late", depends_on=["early"]), step(id="early")))
    assert workflow.step("late").depends_on == ("early",)


def test_executor_scheduler_and_resources_are_kept_and_logged_only_when_set() -> None:
    data = doc(step(resources={"TPU": 2, "GPU": 0.5}), executor="dask", scheduler="tcp://h:8786")
    workflow = workflow_from_data(data)
    assert (workflow.executor, workflow.scheduler) == ("dask", "tcp://h:8786")
    assert workflow.steps[0].resources == (("GPU", 0.5), ("TPU", 2))
    assert workflow_from_data(workflow.to_json()) == workflow
    plain = workflow_from_data(doc(step())).to_json()
    assert "executor" not in plain and "scheduler" not in plain
    assert "resources" not in plain["steps"][0]


def test_max_parallel_at_its_bound() -> None:
    assert workflow_from_data(doc(max_parallel=MAX_PARALLEL)).max_parallel == MAX_PARALLEL


# --- invalid step fields -----------------------------------------------------------------------

COMMAND_RULE = "a non-empty string or a non-empty list of strings"
ENV_NAME_RULE = "must be non-empty, without '=' or NUL"
RESOURCE_RULE = "expected a number > 0 and <= 2**53"
BAD_STEP_FIELDS = [
    ("id", "", f'steps[0].id: expected an id ({ID_RULE}), got ""'),
    ("id", ".hidden", f'steps[0].id: expected an id ({ID_RULE}), got ".hidden"'),
    ("id", "-rf", f'steps[0].id: expected an id ({ID_RULE}), got "-rf"'),
    ("id", "a b", f'steps[0].id: expected an id ({ID_RULE}), got "a b"'),
    ("id", "../up", f'steps[0].id: expected an id ({ID_RULE}), got "../up"'),
    ("id", "x" * 129, f'steps[0].id: expected an id ({ID_RULE}), got "{"x" * 36}...'),
    ("id", 7, f"steps[0].id: expected an id ({ID_RULE}), got 7"),
    ("id", None, f"steps[0].id: expected an id ({ID_RULE}), got null"),
    *[
        ("command", value, f"steps[0].command: expected {COMMAND_RULE}, got {shown}")
        for value, shown in [("", '""'), ([], "[]"), (5, "5"), ({"sh": "x"}, '{"sh": "x"}')]
    ],
    ("command", ["ls", 1], "steps[0].command[1]: expected a string, got 1"),
    ("command", ["", "x"], "steps[0].command[0]: expected a non-empty string (the program)"),
    ("command", "echo \0", "steps[0].command: must not contain a NUL character"),
    ("command", ["echo", "\0"], "steps[0].command[1]: must not contain a NUL character"),
    (
        "command",
        "echo \ud800",
        "steps[0].command: must not contain unpaired surrogates (\\ud800-\\udfff)",
    ),
    ("depends_on", "b", 'steps[0].depends_on: expected a list of step ids, got "b"'),
    ("depends_on", None, "steps[0].depends_on: expected a list of step ids, got null"),
    ("depends_on", [1], "steps[0].depends_on[0]: expected a step id, got 1"),
    ("retries", True, "steps[0].retries: expected an integer >= 0, got true"),
    ("retries", -1, "steps[0].retries: expected an integer >= 0, got -1"),
    ("retries", 1.0, "steps[0].retries: expected an integer >= 0, got 1.0"),
    ("retries", "3", 'steps[0].retries: expected an integer >= 0, got "3"'),
    ("retries", None, "steps[0].retries: expected an integer >= 0, got null"),
    ("timeout_sec", 0, "steps[0].timeout_sec: expected a number > 0 or null, got 0"),
    ("timeout_sec", -1.5, "steps[0].timeout_sec: expected a number > 0 or null, got -1.5"),
    ("timeout_sec", True, "steps[0].timeout_sec: expected a number > 0 or null, got true"),
    ("timeout_sec", "5", 'steps[0].timeout_sec: expected a number > 0 or null, got "5"'),
    ("timeout_sec", math.inf, "steps[0].timeout_sec: expected a number > 0 or null, got Infinity"),
    ("timeout_sec", math.nan, "steps[0].timeout_sec: expected a number > 0 or null, got NaN"),
    (
        "timeout_sec",
        10**400,
        f"steps[0].timeout_sec: expected a number > 0 and <= {MAX_SECONDS} or null, got 1"
        + "0" * 36
        + "...",
    ),
    ("env", ["A=1"], 'steps[0].env: expected an object of strings, got ["A=1"]'),
    ("env", None, "steps[0].env: expected an object of strings, got null"),
    ("env", {"A": 1}, "steps[0].env.A: expected a string, got 1"),
    ("env", {"A": None}, "steps[0].env.A: expected a string, got null"),
    ("env", {"A": "x\0"}, "steps[0].env.A: must not contain a NUL character"),
    *[
        ("env", {name: "x"}, f"steps[0].env[{path}]: invalid variable name: {ENV_NAME_RULE}")
        for name, path in [("", '""'), ("A=B", '"A=B"'), ("A\0", '"A\\u0000"')]
    ],
    ("cwd", "", 'steps[0].cwd: expected a non-empty string or null, got ""'),
    ("cwd", 1, "steps[0].cwd: expected a non-empty string or null, got 1"),
    ("cwd", "a\0b", "steps[0].cwd: must not contain a NUL character"),
    *[
        (field, value, f"steps[0].{field}: expected a number > 0, got {shown}")
        for field in ["retry_backoff_sec", "retry_backoff_max_sec", "kill_grace_sec"]
        for value, shown in [(0, "0"), (-1, "-1"), (False, "false"), (None, "null"), ("1", '"1"')]
    ],
    *[
        (
            field,
            value,
            f"steps[0].{field}: expected a number > 0 and <= {MAX_SECONDS}{alt}, got {shown}",
        )
        for field, alt in [
            (name, " or null" if name == "timeout_sec" else "") for name in DURATION_FIELDS
        ]
        for value, shown in [
            (1e10, "10000000000.0"),
            (MAX_SECONDS + 1, str(MAX_SECONDS + 1)),
            (MAX_SECONDS + 1e-9, "2592000.000000001"),
            (10**30, str(10**30)),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ]
    ],
    *[
        (
            "retries",
            value,
            f"steps[0].retries: expected an integer >= 0 and <= {MAX_RETRIES}, got {value}",
        )
        for value in (MAX_RETRIES + 1, 2**63, 10**30)
    ],
    ("resources", [], "steps[0].resources: expected an object of numbers, got []"),
    *[
        ("resources", {"GPU": amount}, f"steps[0].resources.GPU: {RESOURCE_RULE}, got {shown}")
        for amount, shown in (
            (0, "0"),
            (-1, "-1"),
            (True, "true"),
            ("1", '"1"'),
            (2**53 + 1, "9007199254740993"),
        )
    ],
    ("resources", {"": 1}, 'steps[0].resources[""]: invalid resource name: must be non-empty'),
    ("comand", "x", "steps[0].comand: unknown field 'comand' (did you mean 'command'?)"),
    ("frobnicate", 1, "steps[0].frobnicate: unknown field 'frobnicate'"),
    ("my key", 1, 'steps[0]["my key"]: unknown field "my key"'),
]


@pytest.mark.parametrize(("field", "value", "expected"), BAD_STEP_FIELDS)
def test_invalid_step_field(field: str, value: object, expected: str) -> None:
    assert problems_of(doc(step(**{field: value}))) == [expected]


@pytest.mark.parametrize("field", ["id", "command"])
def test_missing_required_step_field(field: str) -> None:
    data = step()
    del data[field]
    assert problems_of(doc(data)) == [f"steps[0]: missing required field '{field}'"]


def test_bad_dependency_entries_do_not_hide_the_others() -> None:
    data = doc(step(id="a", depends_on=[1, "ghost", "b"]), step(id="b"))
    assert problems_of(data) == [
        "steps[0].depends_on[0]: expected a step id, got 1",
        "steps[0].depends_on[1]: unknown step 'ghost'",
    ]


def test_a_mistyped_dependency_names_the_closest_step() -> None:
    data = doc(step(id="build_docs"), step(id="publish", depends_on=["biuld_docs"]))
    assert problems_of(data) == [
        "steps[1].depends_on[0]: unknown step 'biuld_docs' (did you mean 'build_docs'?)"
    ]


def test_long_values_are_truncated_in_messages() -> None:
    [message] = problems_of(doc(step(retries="9" * 100)))
    assert message == 'steps[0].retries: expected an integer >= 0, got "' + "9" * 36 + "..."


def test_odd_key_names_cannot_break_lines() -> None:
    [message] = problems_of(doc(step(**{"a\nb": 1})))
    assert message == 'steps[0]["a\\nb"]: unknown field "a\\nb"'


# --- top level ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], "expected a JSON object at the top level, got []"),
        ("w", 'expected a JSON object at the top level, got "w"'),
        (None, "expected a JSON object at the top level, got null"),
        ({"steps": [step()]}, "missing required field 'workflow_id'"),
        ({"workflow_id": "w"}, "missing required field 'steps'"),
        (doc(workflow_id=".w"), f'workflow_id: expected an id ({ID_RULE}), got ".w"'),
        (doc(workflow_id=3), f"workflow_id: expected an id ({ID_RULE}), got 3"),
        ({"workflow_id": "w", "steps": []}, "steps: expected a non-empty list of steps, got []"),
        ({"workflow_id": "w", "steps": {}}, "steps: expected a non-empty list of steps, got {}"),
        ({"workflow_id": "w", "steps": [step(), 3]}, "steps[1]: expected an object, got 3"),
        (doc(foo=1), "foo: unknown field 'foo'"),
        (
            doc(max_paralel=2),
            "max_paralel: unknown field 'max_paralel' (did you mean 'max_parallel'?)",
        ),
        (doc(max_parallel=0), "max_parallel: expected an integer >= 1, got 0"),
        (doc(max_parallel=True), "max_parallel: expected an integer >= 1, got true"),
        (doc(max_parallel=2.0), "max_parallel: expected an integer >= 1, got 2.0"),
        (doc(max_parallel="2"), 'max_parallel: expected an integer >= 1, got "2"'),
        (doc(max_parallel=None), "max_parallel: expected an integer >= 1, got null"),
        (doc(defaults=[]), "defaults: expected an object, got []"),
        (doc(executor="slurm"), "executor: expected 'local' or 'dask', got \"slurm\""),
        (doc(executor=None), "executor: expected 'local' or 'dask', got null"),
        (doc(scheduler=" "), 'scheduler: expected a scheduler address, got " "'),
        (doc(scheduler=5), "scheduler: expected a scheduler address, got 5"),
        (
            doc(max_parallel=MAX_PARALLEL + 1),
            f"max_parallel: expected an integer >= 1 and <= {MAX_PARALLEL}, got {MAX_PARALLEL + 1}",
        ),
        (
            doc(max_parallel=10**30),
            f"max_parallel: expected an integer >= 1 and <= {MAX_PARALLEL}, got {10**30}",
        ),
    ],
)
def test_invalid_top_level(data: object, expected: str) -> None:
    assert problems_of(data) == [expected]


def test_missing_both_required_top_level_fields() -> None:
    assert problems_of({}) == [
        "missing required field 'workflow_id'",
        "missing required field 'steps'",
    ]


# --- defaults ----------------------------------------------------------------------------------


def test_defaults_apply_and_steps_override_them() -> None:
    defaults = {
        "command": ["make"],
        "retries": 2,
        "timeout_sec": 10,
        "env": {"CI": "1"},
        "cwd": "build",
        "retry_backoff_sec": 3,
        "retry_backoff_max_sec": 30,
        "kill_grace_sec": 1,
    }
    plain = {"id": "plain"}
    own = {"id": "own", "command": "ls", "retries": 0, "timeout_sec": None, "env": {}, "cwd": None}
    workflow = workflow_from_data(doc(plain, own, defaults=defaults))
    assert workflow.step("plain") == Step(
        id="plain",
        command=("make",),
        retries=2,
        timeout_sec=10.0,
        env=(("CI", "1"),),
        cwd="build",
        retry_backoff_sec=3.0,
        retry_backoff_max_sec=30.0,
        kill_grace_sec=1.0,
    )
    assert workflow.step("own") == Step(
        id="own",
        command="ls",
        retry_backoff_sec=3.0,
        retry_backoff_max_sec=30.0,
        kill_grace_sec=1.0,
    )


def test_default_depends_on_applies_to_steps_without_their_own() -> None:
    data = doc(
        {"id": "setup", "depends_on": []},
        {"id": "a"},
        {"id": "b", "depends_on": ["a"]},
        defaults={"command": "true", "depends_on": ["setup"]},
    )
    workflow = workflow_from_data(data)
    assert [s.depends_on for s in workflow.steps] == [(), ("setup",), ("a",)]


@pytest.mark.parametrize(
    ("defaults", "expected"),
    [
        ({"id": "x"}, "defaults.id: a step id cannot have a default"),
        ({"retries": "3"}, 'defaults.retries: expected an integer >= 0, got "3"'),
        ({"retries": True}, "defaults.retries: expected an integer >= 0, got true"),
        ({"timeout_sec": 0}, "defaults.timeout_sec: expected a number > 0 or null, got 0"),
        ({"env": {"A": 1}}, "defaults.env.A: expected a string, got 1"),
        (
            {"command": []},
            "defaults.command: expected a non-empty string or a non-empty list of strings, got []",
        ),
        ({"kill_grace_sec": -1}, "defaults.kill_grace_sec: expected a number > 0, got -1"),
        (
            {"kill_grace_sec": 1e10},
            f"defaults.kill_grace_sec: expected a number > 0 and <= {MAX_SECONDS}, "
            "got 10000000000.0",
        ),
        (
            {"timeout_sec": 1e10},
            f"defaults.timeout_sec: expected a number > 0 and <= {MAX_SECONDS} or null, "
            "got 10000000000.0",
        ),
        (
            {"retries": MAX_RETRIES + 1},
            f"defaults.retries: expected an integer >= 0 and <= {MAX_RETRIES}, got 10001",
        ),
        ({"retry": 1}, "defaults.retry: unknown field 'retry' (did you mean 'retries'?)"),
        ({"depends_on": ["nope"]}, "defaults.depends_on[0]: unknown step 'nope'"),
        (
            {"depends_on": ["a2", "a2"]},
            "defaults.depends_on[1]: duplicate dependency 'a2' (first at defaults.depends_on[0])",
        ),
    ],
)
def test_invalid_defaults_are_reported_once_at_their_path(
    defaults: dict[str, Any], expected: str
) -> None:
    data = doc(step(id="a1"), step(id="a2", depends_on=[]), step(id="a3"), defaults=defaults)
    assert problems_of(data) == [expected]


def test_default_command_satisfies_required_field() -> None:
    workflow = workflow_from_data(doc({"id": "a"}, defaults={"command": "true"}))
    assert workflow.steps[0].command == "true"


def test_step_value_overrides_invalid_default_only_for_that_step() -> None:
    data = doc(step(id="a", retries=1), step(id="b"), defaults={"retries": -1})
    assert problems_of(data) == ["defaults.retries: expected an integer >= 0, got -1"]


# --- graph -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            [step(id="x"), step(id="y"), step(id="x")],
            ["steps[2].id: duplicate step id 'x' (first at steps[0])"],
        ),
        (
            [step(id="a"), step(id="b", depends_on=["a", "ghost"])],
            ["steps[1].depends_on[1]: unknown step 'ghost'"],
        ),
        (
            [step(id="a", depends_on=["no such step"])],
            ['steps[0].depends_on[0]: unknown step "no such step"'],
        ),
        (
            [step(id="b"), step(id="a", depends_on=["b", "b"])],
            ["steps[1].depends_on[1]: duplicate dependency 'b' (first at steps[1].depends_on[0])"],
        ),
        # 1-cycle: a self-dependency prints its cycle path.
        (
            [step(id="a", depends_on=["a"])],
            ["steps[0].depends_on[0]: step 'a' depends on itself (cycle: a -> a)"],
        ),
        (
            [step(id="a", depends_on=["b"]), step(id="b", depends_on=["a"])],
            ["steps[0].depends_on[0]: cycle: a -> b -> a"],
        ),
        (
            [
                step(id="a", depends_on=["c"]),
                step(id="b", depends_on=["a"]),
                step(id="c", depends_on=["b"]),
            ],
            ["steps[0].depends_on[0]: cycle: a -> c -> b -> a"],
        ),
        # The printed cycle starts at the step defined first, wherever the search began.
        (
            [
                step(id="z", depends_on=["y"]),
                step(id="x", depends_on=["z"]),
                step(id="y", depends_on=["x"]),
            ],
            ["steps[0].depends_on[0]: cycle: z -> y -> x -> z"],
        ),
        (
            [
                step(id="p", depends_on=["q"]),
                step(id="free"),
                step(id="r", depends_on=["s", "free"]),
                step(id="q", depends_on=["p"]),
                step(id="s", depends_on=["t"]),
                step(id="t", depends_on=["r"]),
            ],
            [
                "steps[0].depends_on[0]: cycle: p -> q -> p",
                "steps[2].depends_on[0]: cycle: r -> s -> t -> r",
            ],
        ),
        # Unknown dependencies are reported, but add no noise to cycle detection.
        (
            [step(id="a", depends_on=["ghost", "b"]), step(id="b", depends_on=["a", "ghost"])],
            [
                "steps[0].depends_on[0]: unknown step 'ghost'",
                "steps[1].depends_on[1]: unknown step 'ghost'",
                "steps[0].depends_on[1]: cycle: a -> b -> a",
            ],
        ),
    ],
)
def test_graph_problems(steps: list[dict[str, Any]], expected: list[str]) -> None:
    assert problems_of(doc(*steps)) == expected


def test_cycle_is_shortest_from_first_step() -> None:
    steps = [
        step(id="a", depends_on=["b"]),
        step(id="b", depends_on=["c", "a"]),
        step(id="c", depends_on=["a"]),
    ]
    assert problems_of(doc(*steps)) == ["steps[0].depends_on[0]: cycle: a -> b -> a"]


def test_invalid_id_still_names_its_step_for_dependencies() -> None:
    data = doc(step(id="bad id"), step(id="b", depends_on=["bad id"]))
    assert problems_of(data) == [f'steps[0].id: expected an id ({ID_RULE}), got "bad id"']


def chain(count: int) -> list[dict[str, Any]]:
    return [
        {"id": f"s{i}", "command": "true", "depends_on": [f"s{i - 1}"] if i else []}
        for i in range(count)
    ]


def test_ten_thousand_step_chain_validates_quickly() -> None:
    text = json.dumps({"workflow_id": "big", "steps": chain(10_000)})
    started = time.perf_counter()
    workflow = parse_workflow(text)
    assert time.perf_counter() - started < 5
    assert len(workflow.steps) == 10_000
    assert workflow.steps[-1].depends_on == ("s9998",)


def test_ten_thousand_step_cycle_is_found_without_recursion() -> None:
    steps = chain(10_000)
    steps[0]["depends_on"] = ["s9999"]
    started = time.perf_counter()
    [message] = problems_of({"workflow_id": "big", "steps": steps})
    assert time.perf_counter() - started < 5
    names = [f"s{i}" for i in [0, *range(9999, -1, -1)]]
    assert message == "steps[0].depends_on[0]: cycle: " + " -> ".join(names)


def test_ten_thousand_two_step_cycles_are_all_reported() -> None:
    steps = []
    for i in range(5_000):
        steps += [step(id=f"a{i}", depends_on=[f"b{i}"]), step(id=f"b{i}", depends_on=[f"a{i}"])]
    problems = problems_of(doc(*steps))
    assert len(problems) == 5_000
    assert problems[-1] == "steps[9998].depends_on[0]: cycle: a4999 -> b4999 -> a4999"


# --- all problems at once, in document order ---------------------------------------------------


def test_every_problem_is_reported_in_document_order() -> None:
    data = {
        "steps": [
            {"id": "a", "command": "x", "depends_on": ["b", "ghost"], "retries": True},
            {"id": "b", "depends_on": ["a"], "timeout_sec": "5"},
            {"id": "a", "command": ["run"], "env": {"K": 1}, "extra": 1},
        ],
        "defaults": {"cwd": ""},
        "max_parallel": 0,
        "colour": "blue",
    }
    assert problems_of(data) == [
        "missing required field 'workflow_id'",
        "max_parallel: expected an integer >= 1, got 0",
        "colour: unknown field 'colour'",
        'defaults.cwd: expected a non-empty string or null, got ""',
        "steps[0].retries: expected an integer >= 0, got true",
        "steps[1]: missing required field 'command'",
        'steps[1].timeout_sec: expected a number > 0 or null, got "5"',
        "steps[2].env.K: expected a string, got 1",
        "steps[2].extra: unknown field 'extra'",
        "steps[0].depends_on[1]: unknown step 'ghost'",
        "steps[2].id: duplicate step id 'a' (first at steps[0])",
        "steps[0].depends_on[0]: cycle: a -> b -> a",
    ]


def test_values_beyond_the_bounds_are_reported_with_every_other_problem() -> None:
    text = json.dumps(
        doc(
            step(id="a", retries=MAX_RETRIES + 1, timeout_sec=1e10),
            step(id="b", kill_grace_sec=0, depends_on=["ghost"]),
            defaults={"retry_backoff_sec": 1e10},
            max_parallel=MAX_PARALLEL + 1,
        )
    )
    assert text_problems(text) == [
        f"max_parallel: expected an integer >= 1 and <= {MAX_PARALLEL}, got 10001",
        f"defaults.retry_backoff_sec: expected a number > 0 and <= {MAX_SECONDS}, "
        "got 10000000000.0",
        f"steps[0].retries: expected an integer >= 0 and <= {MAX_RETRIES}, got 10001",
        f"steps[0].timeout_sec: expected a number > 0 and <= {MAX_SECONDS} or null, "
        "got 10000000000.0",
        "steps[1].kill_grace_sec: expected a number > 0, got 0",
        "steps[1].depends_on[0]: unknown step 'ghost'",
    ]


# --- JSON layer --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "invalid JSON at line 1, column 1: Expecting value"),
        (
            '{"workflow_id": "w",\n  "steps": [}',
            "invalid JSON at line 2, column 13: Expecting value",
        ),
        (
            '{"workflow_id": "w" "steps": []}',
            "invalid JSON at line 1, column 21: Expecting ',' delimiter",
        ),
        (
            "{'workflow_id': 'w'}",
            "invalid JSON at line 1, column 2: Expecting property name enclosed in double quotes",
        ),
        ('{"a": 1} x', "invalid JSON at line 1, column 10: Extra data"),
        ("[" * 100_000 + "]" * 100_000, "invalid JSON: nested too deeply"),
    ],
)
def test_json_syntax_errors_report_line_and_column_only(text: str, expected: str) -> None:
    assert text_problems(text) == [expected]


def test_json_error_hides_field_problems() -> None:
    assert text_problems('{"foo": 1, "steps": 3,') == [
        "invalid JSON at line 1, column 23: Expecting property name enclosed in double quotes"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"workflow_id": "w", "workflow_id": "v", "steps": []}', ["duplicate key 'workflow_id'"]),
        (
            '{"workflow_id": "w", "steps": [{"id": "a"}, {"id": "b", "command": "x", "id": "c"}]}',
            ["steps[1]: duplicate key 'id'"],
        ),
        (
            '{"workflow_id": "w", "steps": [{"id": "a", "env": {"A": "1", "A": "2", "A": "3"}}]}',
            ["steps[0].env: duplicate key 'A'"],
        ),
        (
            '{"workflow_id": "w", "steps": [{"id": "a", "retries": NaN, "timeout_sec": Infinity,'
            ' "retry_backoff_sec": -Infinity}]}',
            [
                "steps[0].retries: NaN is not valid JSON (use a number or null)",
                "steps[0].timeout_sec: Infinity is not valid JSON (use a number or null)",
                "steps[0].retry_backoff_sec: -Infinity is not valid JSON (use a number or null)",
            ],
        ),
        (
            '{"workflow_id": "w", "x": 1, "x": NaN, "steps": [{"id": "a", "id": "a"}]}',
            [
                "duplicate key 'x'",
                "x: NaN is not valid JSON (use a number or null)",
                "steps[0]: duplicate key 'id'",
            ],
        ),
        ("NaN", ["NaN is not valid JSON (use a number or null)"]),
        (
            '{"workflow_id": "w", "steps": [{"id": "a", "retries": ' + "9" * 5000 + "}]}",
            ["steps[0].retries: integer with 5000 digits is too long"],
        ),
    ],
)
def test_duplicate_keys_and_non_standard_literals(text: str, expected: list[str]) -> None:
    assert text_problems(text) == expected


# --- round trip --------------------------------------------------------------------------------


def full_workflow() -> Workflow:
    return Workflow(
        workflow_id="round.trip",
        steps=(
            Step(id="a", command="echo a"),
            Step(
                id="b",
                command=("python", "-c", "print('b')"),
                depends_on=("a",),
                retries=3,
                timeout_sec=2.5,
                env=(("Z", "1"), ("A", "")),
                cwd="work",
                retry_backoff_sec=0.5,
                retry_backoff_max_sec=8.0,
                kill_grace_sec=0.25,
            ),
        ),
        max_parallel=2,
    )


@pytest.mark.parametrize("workflow", [full_workflow(), parse_workflow(json.dumps(doc()))])
def test_round_trip_through_to_json(workflow: Workflow) -> None:
    assert workflow_from_data(workflow.to_json()) == workflow
    assert parse_workflow(json.dumps(workflow.to_json())) == workflow


# --- load_workflow (wf_engine.runtime.workflow_file) --------------------------------------------


def test_load_workflow_reads_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(doc(step(env={"NAME": "café"}))), encoding="utf-8")
    assert load_workflow(path).steps[0].env == (("NAME", "café"),)
    assert load_workflow(str(path)).workflow_id == "w"


def test_load_workflow_tolerates_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "wf.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(doc()).encode())
    assert load_workflow(path).workflow_id == "w"


def test_load_workflow_names_the_file_in_problems(tmp_path: Path) -> None:
    path = tmp_path / "wf.json"
    path.write_text('{"workflow_id": "w"}', encoding="utf-8")
    with pytest.raises(WorkflowInvalid) as info:
        load_workflow(path)
    assert str(info.value) == f"{path}: missing required field 'steps'"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read file: No such file or directory"),
        (
            b'{"workflow_id": "caf\xe9"}',
            "cannot read file: not valid UTF-8 (byte 0xe9 at offset 20)",
        ),
    ],
)
def test_load_workflow_unreadable(tmp_path: Path, content: bytes | None, expected: str) -> None:
    path = tmp_path / "wf.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(WorkflowInvalid) as info:
        load_workflow(path)
    assert info.value.source == str(path)
    assert info.value.problems == (Problem("", expected),)


def test_load_workflow_on_a_directory(tmp_path: Path) -> None:
    with pytest.raises(WorkflowInvalid) as info:
        load_workflow(tmp_path)
    [problem] = info.value.problems
    assert problem.path == ""
    assert problem.message.startswith("cannot read file: ")
