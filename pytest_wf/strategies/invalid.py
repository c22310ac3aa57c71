"""Broken workflows: ``invalid_workflows()``, documents that each break exactly one rule.

Each is a generated valid workflow (``pytest_wf.strategies.valid.workflows``) changed in one
place, paired with text the validator's report must contain. The rules are those of
docs/workflows.md ("The workflow file", "Validation").
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple

from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy

from pytest_wf.strategies.valid import ids, workflows
from wf_engine.core.model import is_valid_id

__all__ = ["RULES", "InvalidWorkflow", "invalid_workflows"]


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


def _two_or_more_steps(draw: DrawFn, doc: Doc) -> list[Doc]:
    """The document's steps, after adding an independent one if there was only one."""
    steps = _steps(doc)
    if len(steps) < 2:
        steps.append({"id": _fresh_id(draw, doc), "command": "true", "depends_on": []})
    return steps


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
    steps = _two_or_more_steps(draw, doc)
    index = draw(st.integers(1, len(steps) - 1))
    step = steps[index]
    if not step["depends_on"]:
        step["depends_on"].append(steps[draw(st.integers(0, index - 1))]["id"])
    dep = draw(st.sampled_from(step["depends_on"]))
    step["depends_on"].append(dep)
    position = len(step["depends_on"]) - 1
    return doc, f"steps[{index}].depends_on[{position}]: duplicate dependency '{dep}'"


def _break_cycle(draw: DrawFn, doc: Doc) -> tuple[str | Doc, str]:
    steps = _two_or_more_steps(draw, doc)
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
    """Documents breaking exactly one rule of docs/workflows.md, each a generated valid workflow
    changed in one place (a field, an id, an edge, the JSON syntax)."""
    unknown = set(rules) - set(_BREAKERS)
    if unknown:
        raise ValueError(f"unknown rules {sorted(unknown)}; known: {', '.join(RULES)}")
    rule = draw(st.sampled_from(list(rules)), label="rule")
    doc = draw(workflows(max_steps, timeouts=True), label="valid workflow")
    broken, expect = _BREAKERS[rule](draw, doc)
    text = broken if isinstance(broken, str) else json.dumps(broken, indent=2)
    return InvalidWorkflow(text, rule, expect)
