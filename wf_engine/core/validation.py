"""Turn untrusted workflow JSON into a trusted ``model.Workflow``, or say everything wrong with it.

This module is the engine's only gate: whatever passes here is assumed correct by every other
module (see ``model``), and whatever fails is reported *completely* in one go, so a user fixes a
file once instead of once per error. The work happens in three layers, each stopping the next::

    text --_parse_json--> JSON value --_check_top_level/_check_defaults/_check_steps--> drafts
         (syntax, duplicate keys,        (field names, types, ranges; each problem     |
          NaN/Infinity: report only       carries a JSON path such as                  |
          these and stop)                 ``steps[3].depends_on[0]``)                  v
                                                              _check_graph (ids, deps, cycles)

Problems come out in document order: top-level fields, ``defaults``, then steps in order, then
graph problems (which need every step id first), cycles last. The cycle search itself is
``wf_engine.core.graph``; reading a workflow *file* is ``wf_engine.runtime.workflow_file`` (the
core does no I/O). The rules are documented in docs/workflows.md.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from wf_engine.core.graph import find_cycles
from wf_engine.core.model import (
    EXECUTOR_NAMES,
    MAX_PARALLEL,
    MAX_RESOURCE,
    MAX_RETRIES,
    MAX_SECONDS,
    Step,
    Workflow,
    is_valid_id,
)
from wf_engine.errors import UsageError

ID_RULE: Final = "1-128 characters of A-Z, a-z, 0-9, '_', '.', '-', not starting with '.' or '-'"

#: Longest rendering of an offending value inside a message.
_SHOW_LIMIT: Final = 40


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a workflow, located by a JSON path ("" for the whole document)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class WorkflowInvalid(UsageError):
    """Raised with every problem found, never just the first.

    A ``UsageError``, so the CLI maps it to exit code 2 like any other bad input.
    """

    source: str
    problems: tuple[Problem, ...]

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        # Passing the constructor arguments keeps the exception picklable.
        super().__init__(source, self.problems)

    def __str__(self) -> str:
        if not self.problems:
            return f"{self.source}: invalid workflow"
        return "\n".join(f"{self.source}: {problem}" for problem in self.problems)


# ---------------------------------------------------------------------------------------------
# Entry points


def parse_workflow(text: str, source: str = "<workflow>") -> Workflow:
    """Validate a workflow given as JSON text; ``source`` names it in error messages."""
    return workflow_from_data(_parse_json(text, source), source)


def workflow_from_data(data: object, source: str = "<workflow>") -> Workflow:
    """Validate an already-parsed JSON value (a dict workflow, or a definition from a run log)."""
    if not isinstance(data, dict):
        problem = Problem("", f"expected a JSON object at the top level, got {_show(data)}")
        raise WorkflowInvalid(source, [problem])
    problems: list[Problem] = []
    workflow_id, max_parallel, executor, scheduler = _check_top_level(data, problems)
    defaults = _check_defaults(data["defaults"], problems) if "defaults" in data else {}
    drafts = _check_steps(data["steps"], data, defaults, problems) if "steps" in data else []
    _check_graph(drafts, problems)
    if problems:
        raise WorkflowInvalid(source, list(dict.fromkeys(problems)))  # drop repeats, keep order
    steps = tuple(draft.step for draft in drafts if draft.step is not None)
    return Workflow(workflow_id, steps, max_parallel, executor, scheduler)


# ---------------------------------------------------------------------------------------------
# JSON layer: strict syntax, so that what we check is exactly what the user wrote.


@dataclass(frozen=True, slots=True)
class _BadLiteral:
    """Stands in for a literal Python's parser accepts but JSON (or we) cannot represent."""

    reason: str


class _JsonObject(dict[str, object]):
    """A parsed JSON object that remembers repeated keys: the parser would silently keep the last
    value, hiding a likely copy-paste mistake."""

    duplicates: tuple[str, ...] = ()

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, object]]) -> _JsonObject:
        obj = cls(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            repeated: dict[str, None] = {}
            for key, _ in pairs:
                if key in seen:
                    repeated[key] = None
                seen.add(key)
            obj.duplicates = tuple(repeated)
        return obj


def _parse_constant(name: str) -> _BadLiteral:
    return _BadLiteral(f"{name} is not valid JSON (use a number or null)")


def _parse_int(text: str) -> object:
    try:
        return int(text)
    except ValueError:  # more digits than int() accepts (sys.set_int_max_str_digits)
        return _BadLiteral(f"integer with {len(text.lstrip('-'))} digits is too long")


def _parse_json(text: str, source: str) -> object:
    """Parse ``text`` as strict JSON; on any JSON-level problem report only those problems.

    Duplicate keys and NaN/Infinity are recorded during parsing and located afterwards by a walk
    of the tree, because the parser's hooks do not know where in the document they are.
    """
    try:
        data = json.loads(
            text,
            object_pairs_hook=_JsonObject.from_pairs,
            parse_constant=_parse_constant,
            parse_int=_parse_int,
        )
    except json.JSONDecodeError as exc:
        message = f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise WorkflowInvalid(source, [Problem("", message)]) from None
    except RecursionError:
        raise WorkflowInvalid(source, [Problem("", "invalid JSON: nested too deeply")]) from None
    problems = _literal_problems(data)
    if problems:
        raise WorkflowInvalid(source, problems)
    return data


def _literal_problems(data: object) -> list[Problem]:
    """Find duplicate keys and bad literals in document order (iteratively: input may be deep)."""
    problems: list[Problem] = []
    stack: list[tuple[str, object]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, _BadLiteral):
            problems.append(Problem(path, value.reason))
        elif isinstance(value, dict):
            if isinstance(value, _JsonObject):
                problems.extend(
                    Problem(path, f"duplicate key {_quote(k)}") for k in value.duplicates
                )
            stack.extend((_key_path(path, k), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", value[i]) for i in reversed(range(len(value))))
    return problems


# ---------------------------------------------------------------------------------------------
# Field layer. A checker validates one field's value, appends a Problem for each fault (so a list
# or object field can report several), and returns the value as the model stores it, or _INVALID.

_INVALID: Final = object()
_Checker = Callable[[object, str, list[Problem]], object]


def _check_id(value: object, path: str, problems: list[Problem]) -> object:
    if isinstance(value, str) and is_valid_id(value):
        return value
    problems.append(Problem(path, f"expected an id ({ID_RULE}), got {_show(value)}"))
    return _INVALID


def _check_command(value: object, path: str, problems: list[Problem]) -> object:
    if isinstance(value, str) and value:
        return _check_os_text(value, path, problems)
    if isinstance(value, list) and value:
        before = len(problems)
        for i, arg in enumerate(value):
            arg_path = f"{path}[{i}]"
            if not isinstance(arg, str):
                problems.append(Problem(arg_path, f"expected a string, got {_show(arg)}"))
            elif i == 0 and not arg:
                problems.append(Problem(arg_path, "expected a non-empty string (the program)"))
            else:
                _check_os_text(arg, arg_path, problems)
        return tuple(value) if len(problems) == before else _INVALID
    expected = "a non-empty string or a non-empty list of strings"
    problems.append(Problem(path, f"expected {expected}, got {_show(value)}"))
    return _INVALID


def _check_depends_on(value: object, path: str, problems: list[Problem]) -> object:
    if not isinstance(value, list):
        problems.append(Problem(path, f"expected a list of step ids, got {_show(value)}"))
        return _INVALID
    before = len(problems)
    for i, dep in enumerate(value):
        if not isinstance(dep, str):
            problems.append(Problem(f"{path}[{i}]", f"expected a step id, got {_show(dep)}"))
    return tuple(value) if len(problems) == before else _INVALID


def _check_retries(value: object, path: str, problems: list[Problem]) -> object:
    return _check_count(value, path, problems, low=0, high=MAX_RETRIES)


def _check_seconds(value: object, path: str, problems: list[Problem]) -> object:
    return _check_duration(value, path, problems, alternative="")


def _check_timeout(value: object, path: str, problems: list[Problem]) -> object:
    if value is None:
        return None
    return _check_duration(value, path, problems, alternative=" or null")


def _check_count(value: object, path: str, problems: list[Problem], low: int, high: int) -> object:
    """An integer in ``low..high``. Only a too-large value's message names the upper limit: any
    other mistake is about the kind of value, and its message stays short."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        problems.append(Problem(path, f"expected an integer >= {low}, got {_show(value)}"))
        return _INVALID
    if value > high:
        problems.append(
            Problem(path, f"expected an integer >= {low} and <= {high}, got {_show(value)}")
        )
        return _INVALID
    return value


def _check_duration(value: object, path: str, problems: list[Problem], alternative: str) -> object:
    """Seconds in ``(0, MAX_SECONDS]`` as a float; ``alternative`` names what else is accepted.

    Tiny values stay valid: they round to 0 µs, an immediate timeout, retry or kill. Longer
    ones are refused here, so that no timer or date the engine derives from them can overflow
    (see ``model.MAX_SECONDS``).
    """
    seconds = _positive_number(value)
    if seconds is None:
        problems.append(Problem(path, f"expected a number > 0{alternative}, got {_show(value)}"))
        return _INVALID
    if seconds > MAX_SECONDS:  # an exact comparison, even for an int too large for a float
        expected = f"a number > 0 and <= {MAX_SECONDS}{alternative}"
        problems.append(Problem(path, f"expected {expected}, got {_show(value)}"))
        return _INVALID
    return float(seconds)


def _check_env(value: object, path: str, problems: list[Problem]) -> object:
    if not isinstance(value, dict):
        problems.append(Problem(path, f"expected an object of strings, got {_show(value)}"))
        return _INVALID
    before = len(problems)
    for name, text in value.items():
        var_path = _key_path(path, name)
        if not _is_env_name(name):
            message = "invalid variable name: must be non-empty, without '=' or NUL"
            problems.append(Problem(var_path, message))
        if not isinstance(text, str):
            problems.append(Problem(var_path, f"expected a string, got {_show(text)}"))
        else:
            _check_os_text(text, var_path, problems)
    return tuple(value.items()) if len(problems) == before else _INVALID


def _check_resources(value: object, path: str, problems: list[Problem]) -> object:
    """``{"GPU": 1}``: names are non-empty strings, amounts numbers > 0; kept in name order so
    that two spellings of the same needs are the same definition."""
    if not isinstance(value, dict):
        problems.append(Problem(path, f"expected an object of numbers, got {_show(value)}"))
        return _INVALID
    before = len(problems)
    for name, amount in value.items():
        item_path = _key_path(path, name)
        if not isinstance(name, str) or not name:
            problems.append(Problem(item_path, "invalid resource name: must be non-empty"))
        else:
            _check_os_text(name, item_path, problems)
        number = _positive_number(amount)
        if number is None or number > MAX_RESOURCE:
            message = f"expected a number > 0 and <= 2**53, got {_show(amount)}"
            problems.append(Problem(item_path, message))
    return tuple(sorted(value.items())) if len(problems) == before else _INVALID


def _check_executor(value: object, path: str, problems: list[Problem]) -> object:
    if value in EXECUTOR_NAMES:
        return value
    names = " or ".join(repr(name) for name in EXECUTOR_NAMES)
    problems.append(Problem(path, f"expected {names}, got {_show(value)}"))
    return _INVALID


def _check_scheduler(value: object, path: str, problems: list[Problem]) -> object:
    if isinstance(value, str) and value.strip():
        return _check_os_text(value.strip(), path, problems)
    problems.append(Problem(path, f"expected a scheduler address, got {_show(value)}"))
    return _INVALID


def _check_cwd(value: object, path: str, problems: list[Problem]) -> object:
    if value is None:
        return None
    if isinstance(value, str) and value:
        return _check_os_text(value, path, problems)
    problems.append(Problem(path, f"expected a non-empty string or null, got {_show(value)}"))
    return _INVALID


def _check_max_parallel(value: object, path: str, problems: list[Problem]) -> object:
    return _check_count(value, path, problems, low=1, high=MAX_PARALLEL)


def _positive_number(value: object) -> int | float | None:
    """``value`` when it is an int or a finite float, and > 0; else None. ``bool`` is not a
    number here. An int is returned as is: converting a huge one to float would raise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if value > 0 else None


def _is_env_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and name != ""
        and "=" not in name
        and "\0" not in name
        and _encodable(name)
    )


def _check_os_text(text: str, path: str, problems: list[Problem]) -> object:
    """Reject text the OS cannot take (in argv, environ or a path), which would otherwise fail
    only when the step starts, as a crash rather than a validation message."""
    if "\0" in text:
        problems.append(Problem(path, "must not contain a NUL character"))
        return _INVALID
    if not _encodable(text):
        problems.append(Problem(path, "must not contain unpaired surrogates (\\ud800-\\udfff)"))
        return _INVALID
    return text


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: Every step field and its checker, in ``model.Step`` order.
_STEP_FIELDS: Final[Mapping[str, _Checker]] = {
    "id": _check_id,
    "command": _check_command,
    "depends_on": _check_depends_on,
    "retries": _check_retries,
    "timeout_sec": _check_timeout,
    "env": _check_env,
    "cwd": _check_cwd,
    "retry_backoff_sec": _check_seconds,
    "retry_backoff_max_sec": _check_seconds,
    "kill_grace_sec": _check_seconds,
    "resources": _check_resources,
}
#: The top-level fields checked one by one (``steps`` and ``defaults`` are checked apart).
_TOP_LEVEL_CHECKS: Final[Mapping[str, _Checker]] = {
    "workflow_id": _check_id,
    "max_parallel": _check_max_parallel,
    "executor": _check_executor,
    "scheduler": _check_scheduler,
}
_TOP_LEVEL_FIELDS: Final = ("workflow_id", "steps", "defaults", *list(_TOP_LEVEL_CHECKS)[1:])


def _check_top_level(
    data: Mapping[Any, object], problems: list[Problem]
) -> tuple[str, int | None, str | None, str | None]:
    """Check the top-level scalars; return (workflow_id, max_parallel, executor, scheduler) as
    the model stores them.

    ``defaults`` and ``steps`` are only checked for presence here: their contents come later.
    The returned values are placeholders whenever a problem was recorded.
    """
    problems.extend(_missing(data, ("workflow_id", "steps"), ""))
    checked: dict[str, object] = {}
    for key, value in data.items():
        check = _TOP_LEVEL_CHECKS.get(key) if isinstance(key, str) else None
        if check is not None:
            checked[key] = check(value, key, problems)
        elif key not in _TOP_LEVEL_FIELDS:
            problems.append(_unknown_field("", key, _TOP_LEVEL_FIELDS))
    workflow_id, max_parallel = checked.get("workflow_id"), checked.get("max_parallel")
    executor, scheduler = checked.get("executor"), checked.get("scheduler")
    return (
        workflow_id if isinstance(workflow_id, str) else "",
        max_parallel if isinstance(max_parallel, int) else None,
        executor if isinstance(executor, str) else None,
        scheduler if isinstance(scheduler, str) else None,
    )


def _check_defaults(value: object, problems: list[Problem]) -> dict[str, object]:
    """Check ``defaults`` once, at its own paths, rather than once per step that inherits it.

    The result maps each field to its checked value, or to _INVALID when it was wrong, so that
    steps do not additionally report a required field (``command``) as missing.
    """
    if not isinstance(value, dict):
        problems.append(Problem("defaults", f"expected an object, got {_show(value)}"))
        return {}
    checked: dict[str, object] = {}
    for key, raw in value.items():
        path = _key_path("defaults", key)
        checker = _STEP_FIELDS.get(key) if isinstance(key, str) else None
        if key == "id":
            problems.append(Problem(path, "a step id cannot have a default"))
        elif checker is None:
            problems.append(_unknown_field("defaults", key, [f for f in _STEP_FIELDS if f != "id"]))
        else:
            checked[key] = checker(raw, path, problems)
    return checked


@dataclass(frozen=True, slots=True)
class _StepDraft:
    """What the graph checks need from one step, whether or not its fields were valid."""

    index: int
    #: The step's id when it is a string at all (invalid ids were reported, but still name the
    #: step, so other steps depending on it do not get an extra "unknown step").
    id: str | None
    #: Path and raw value of the ``depends_on`` that applies (the step's own, or the default's).
    depends_on: tuple[str, object] | None
    #: The finished step, or None when any of its fields was invalid or missing.
    step: Step | None


def _check_steps(
    value: object,
    data: Mapping[Any, object],
    defaults: Mapping[str, object],
    problems: list[Problem],
) -> list[_StepDraft]:
    if not isinstance(value, list) or not value:
        problems.append(Problem("steps", f"expected a non-empty list of steps, got {_show(value)}"))
        return []
    raw_defaults = data.get("defaults")
    default_deps: tuple[str, object] | None = None
    if isinstance(raw_defaults, dict) and "depends_on" in raw_defaults:
        default_deps = ("defaults.depends_on", raw_defaults["depends_on"])
    drafts: list[_StepDraft] = []
    for index, raw in enumerate(value):
        path = f"steps[{index}]"
        if not isinstance(raw, dict):
            problems.append(Problem(path, f"expected an object, got {_show(raw)}"))
            continue
        step = _check_step(raw, path, defaults, problems)
        step_id = raw.get("id")
        own_deps = (f"{path}.depends_on", raw["depends_on"]) if "depends_on" in raw else None
        drafts.append(
            _StepDraft(
                index=index,
                id=step_id if isinstance(step_id, str) else None,
                depends_on=own_deps or default_deps,
                step=step,
            )
        )
    return drafts


def _check_step(
    raw: Mapping[Any, object], path: str, defaults: Mapping[str, object], problems: list[Problem]
) -> Step | None:
    """Check one step's own fields and build it with defaults filled in (the step's value wins)."""
    before = len(problems)
    if "id" not in raw or ("command" not in raw and "command" not in defaults):
        problems.extend(_missing(raw, ("id",), path))
        problems.extend(_missing(raw, ("command",), path, also_in=defaults))
    fields: dict[str, Any] = dict(defaults)
    # A field's path is only needed for a problem: each field is checked without it first, and
    # again with it only if it is wrong. A big definition (read back from a log, 10,000 steps)
    # then costs no path string per field.
    found: list[Problem] = []
    for key, value in raw.items():
        checker = _STEP_FIELDS.get(key) if isinstance(key, str) else None
        if checker is None:
            problems.append(_unknown_field(path, key, _STEP_FIELDS))
            continue
        checked = checker(value, "", found)
        if found:
            found.clear()
            checked = checker(value, _key_path(path, key), problems)
        fields[key] = checked
    if len(problems) > before or _INVALID in fields.values():
        return None
    return Step(**fields)


def _missing(
    data: Mapping[Any, object],
    required: Iterable[str],
    path: str,
    also_in: Mapping[str, object] | None = None,
) -> list[Problem]:
    return [
        Problem(path, f"missing required field '{name}'")
        for name in required
        if name not in data and (also_in is None or name not in also_in)
    ]


def _unknown_field(path: str, key: object, allowed: Iterable[str]) -> Problem:
    message = f"unknown field {_quote(key)}"
    if isinstance(key, str):
        message += _closest(key, allowed)
    return Problem(_key_path(path, key), message)


def _closest(word: str, names: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` naming the closest of ``names``, or "" when none is close."""
    close = difflib.get_close_matches(word, list(names), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ---------------------------------------------------------------------------------------------
# Graph layer: needs every step id before it can judge any dependency.


def _check_graph(drafts: Sequence[_StepDraft], problems: list[Problem]) -> None:
    """Report duplicate ids and bad dependencies per step (in order), then every cycle.

    Nodes are the distinct step ids in order of first definition, so a node's number is also the
    "comes first" order that picks where a printed cycle starts. Edges point from a step to what it
    depends on; self-dependencies, repeated entries and unknown steps are reported here and left
    out of the graph, so the cycle search sees only the edges that would otherwise be valid.
    """
    node_of: dict[str, int] = {}
    first_at: dict[str, int] = {}
    for draft in drafts:
        if draft.id is not None and draft.id not in node_of:
            node_of[draft.id] = len(node_of)
            first_at[draft.id] = draft.index
    edges: list[list[int]] = [[] for _ in node_of]
    #: Where each edge was first written: the draft and the entry's position in its list.
    edge_at: dict[tuple[int, int], tuple[_StepDraft, int]] = {}
    for draft in drafts:
        if draft.id is not None and first_at[draft.id] != draft.index:
            message = f"duplicate step id {_quote(draft.id)} (first at steps[{first_at[draft.id]}])"
            problems.append(Problem(f"steps[{draft.index}].id", message))
        source = node_of[draft.id] if draft.id is not None else None
        for position, dep in _dependency_refs(draft, node_of, problems):
            if source is not None:
                edges[source].append(node_of[dep])
                edge_at.setdefault((source, node_of[dep]), (draft, position))
    names = list(node_of)
    for cycle in find_cycles(edges):
        text = " -> ".join(names[node] for node in [*cycle, cycle[0]])
        draft, position = edge_at[(cycle[0], cycle[1])]
        problems.append(Problem(_entry_path(draft, position), f"cycle: {text}"))


def _dependency_refs(
    draft: _StepDraft, known: Mapping[str, int], problems: list[Problem]
) -> list[tuple[int, str]]:
    """The (position, step id) entries of a step's ``depends_on`` that are graph edges.

    Reports, in list order, self-dependencies (the 1-cycle ``a -> a``), repeated entries and
    unknown steps; entries that are not strings were already reported by the field checks.
    """
    if draft.depends_on is None:
        return []
    entries = draft.depends_on[1]
    if not isinstance(entries, list):
        return []
    refs: list[tuple[int, str]] = []
    first_at: dict[str, int] = {}
    for i, dep in enumerate(entries):
        if not isinstance(dep, str):
            continue
        if dep in first_at:
            first = _entry_path(draft, first_at[dep])
            message = f"duplicate dependency {_quote(dep)} (first at {first})"
            problems.append(Problem(_entry_path(draft, i), message))
        elif dep == draft.id:
            message = f"step {_quote(dep)} depends on itself (cycle: {dep} -> {dep})"
            problems.append(Problem(_entry_path(draft, i), message))
        elif dep not in known:
            message = f"unknown step {_quote(dep)}{_closest(dep, known)}"
            problems.append(Problem(_entry_path(draft, i), message))
        else:
            refs.append((i, dep))
        first_at.setdefault(dep, i)
    return refs


def _entry_path(draft: _StepDraft, position: int) -> str:
    """The path of entry ``position`` of the ``depends_on`` that applies to ``draft``; built
    only for a message, not for each of a big graph's edges."""
    assert draft.depends_on is not None
    return f"{draft.depends_on[0]}[{position}]"


# ---------------------------------------------------------------------------------------------
# Message helpers

_PLAIN_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _key_path(parent: str, key: object) -> str:
    """``parent.key`` for identifier-like keys, else ``parent["odd key"]``."""
    if isinstance(key, str) and _PLAIN_KEY.fullmatch(key):
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{_show(key)}]"


def _quote(name: object) -> str:
    """A name inside a message: 'plain' when it is a valid id, else as a (truncated) JSON value,
    so a stray quote or newline cannot garble the one-line-per-problem output."""
    if isinstance(name, str) and is_valid_id(name):
        return f"'{name}'"
    return _show(name)


def _show(value: object) -> str:
    """The offending value as JSON, cut to about 40 characters (and printable in UTF-8)."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 3] + "..."
