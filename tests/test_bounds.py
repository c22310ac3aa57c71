"""Every number ``wf validate`` accepts is one ``wf run`` can act on, and no other.

The bounds live in ``wf_engine.core.model`` (``MAX_SECONDS``, ``MAX_RETRIES``, ``MAX_PARALLEL``).
Above them a workflow is refused with exit 2 before anything runs; at them, and down to the
tiniest positive float, a run reaches a terminal state through the real CLI without a traceback.
"""

from __future__ import annotations

import math
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from pytest_wf import RunningWf, RunResult, TaskKit, WfHarness, dag, step
from pytest_wf.strategies import workflow_json
from wf_engine.core import clock
from wf_engine.core.model import MAX_PARALLEL, MAX_RETRIES, MAX_SECONDS, Step
from wf_engine.core.validation import workflow_from_data
from wf_engine.log.eventlog import Record

DURATIONS = ("timeout_sec", "retry_backoff_sec", "retry_backoff_max_sec", "kill_grace_sec")
#: Every numeric field at its upper bound.
AT_THE_BOUNDS: dict[str, Any] = {
    "retries": MAX_RETRIES,
    **dict.fromkeys(DURATIONS, MAX_SECONDS),
}
EXIT_CODES = {"SUCCEEDED": 0, "FAILED": 1, "CANCELLED": 3}
TERMINAL_STEP_STATES = ("SUCCEEDED", "SKIPPED", "CANCELLED")
#: A retry due at least this long after its failure counts as a run that is only waiting.
FAR_RETRY_SEC = 1.0
#: A step that has started this many attempts has shown that its retry numbers work.
BUSY_ATTEMPTS = 3


# --- the bounds themselves -----------------------------------------------------------------------


def test_max_seconds_is_thirty_days_and_fits_every_timer_and_date() -> None:
    assert MAX_SECONDS == 2_592_000
    assert MAX_SECONDS < threading.TIMEOUT_MAX
    assert MAX_SECONDS < 4_294_967  # threading.TIMEOUT_MAX on Windows, the smallest one
    far = clock.now_us() + MAX_RETRIES * clock.seconds_to_us(MAX_SECONDS)
    assert clock.from_iso(clock.to_iso(far)) == far  # every retry of a step, back to back


def test_count_bounds() -> None:
    assert (MAX_RETRIES, MAX_PARALLEL) == (10_000, 10_000)


def test_every_field_at_its_bound_is_valid() -> None:
    workflow = workflow_from_data(
        dag("w", [step("a", "true", **AT_THE_BOUNDS)], max_parallel=MAX_PARALLEL)
    )
    only = workflow.steps[0]
    assert only.retries == MAX_RETRIES and workflow.max_parallel == MAX_PARALLEL
    assert all(getattr(only, name) == float(MAX_SECONDS) for name in DURATIONS)


# --- backoff_sec ---------------------------------------------------------------------------------


@pytest.mark.parametrize("failures", [1_097, 1_100, MAX_RETRIES + 1, 2**63, 10**100])
def test_backoff_after_countless_failures_is_the_cap(failures: int) -> None:
    longest = Step("a", "true", retry_backoff_sec=MAX_SECONDS, retry_backoff_max_sec=MAX_SECONDS)
    tiniest = Step("a", "true", retry_backoff_sec=5e-324, retry_backoff_max_sec=MAX_SECONDS)
    default = Step("a", "true")
    assert longest.backoff_sec(failures) == MAX_SECONDS
    assert tiniest.backoff_sec(failures) == MAX_SECONDS
    assert default.backoff_sec(failures) == 60.0


def test_tiny_backoff_doubles_without_reaching_the_cap() -> None:
    tiniest = Step("a", "true", retry_backoff_sec=5e-324, retry_backoff_max_sec=MAX_SECONDS)
    assert tiniest.backoff_sec(1) == 5e-324
    assert tiniest.backoff_sec(1_000) == math.ldexp(5e-324, 999)
    assert clock.seconds_to_us(tiniest.backoff_sec(1_000)) == 0  # an immediate retry


_SECONDS = st.floats(min_value=0, max_value=MAX_SECONDS, exclude_min=True)


@settings(max_examples=300, deadline=None)
@given(base=_SECONDS, cap=_SECONDS, failures=st.integers(1, 2**70))
def test_backoff_is_the_exact_formula_for_any_failure_count(
    base: float, cap: float, failures: int
) -> None:
    """``min(base * 2 ** (failures - 1), cap)``, rounded once, for counts far past any float."""
    delay = Step("a", "true", retry_backoff_sec=base, retry_backoff_max_sec=cap).backoff_sec(
        failures
    )
    doublings = min(failures - 1, 2_000)  # past 1100 doublings every product exceeds the cap
    exact = Fraction(base) * Fraction(2) ** doublings
    assert math.isfinite(delay) and 0 <= delay <= cap
    assert delay == float(min(exact, Fraction(cap)))


# --- the CLI refuses what lies beyond ------------------------------------------------------------

_SECONDS_RULE = f"expected a number > 0 and <= {MAX_SECONDS}"
TOO_LARGE: list[tuple[str, dict[str, Any], str]] = [
    *[
        (
            f"steps[0].{name}",
            dag("w", [step("a", "true", (), **{name: 1e10})]),
            f"{_SECONDS_RULE}{' or null' if name == 'timeout_sec' else ''}, got 10000000000.0",
        )
        for name in DURATIONS
    ],
    (
        "defaults.kill_grace_sec",
        dag("w", [step("a", "true")], defaults={"kill_grace_sec": 1e10}),
        f"{_SECONDS_RULE}, got 10000000000.0",
    ),
    (
        "steps[0].retry_backoff_max_sec",
        dag("w", [step("a", "true", retry_backoff_max_sec=MAX_SECONDS + 1)]),
        f"{_SECONDS_RULE}, got {MAX_SECONDS + 1}",
    ),
    (
        "steps[0].retries",
        dag("w", [step("a", "true", retries=MAX_RETRIES + 1)]),
        f"expected an integer >= 0 and <= {MAX_RETRIES}, got {MAX_RETRIES + 1}",
    ),
    (
        "defaults.retries",
        dag("w", [step("a", "true")], defaults={"retries": 10**30}),
        f"expected an integer >= 0 and <= {MAX_RETRIES}, got {10**30}",
    ),
    (
        "max_parallel",
        dag("w", [step("a", "true")], max_parallel=MAX_PARALLEL + 1),
        f"expected an integer >= 1 and <= {MAX_PARALLEL}, got {MAX_PARALLEL + 1}",
    ),
]


@pytest.mark.parametrize(
    ("path", "workflow", "expected"),
    TOO_LARGE,
    ids=[f"{t[0]}-{i}" for i, t in enumerate(TOO_LARGE)],
)
def test_validate_and_run_refuse_values_beyond_the_bounds(
    wf: WfHarness, path: str, workflow: dict[str, Any], expected: str
) -> None:
    file = wf.workflow_file(workflow)
    for args in (["validate", file], ["run", file]):
        done = wf.cli(*args)
        assert done.returncode == 2, done.stderr
        assert f"{path}: {expected}\n" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (Path(wf.home) / "runs").exists() or not any((Path(wf.home) / "runs").iterdir())


def test_every_value_beyond_the_bounds_is_reported_at_once(wf: WfHarness) -> None:
    too_much = {name: 1e10 for name in DURATIONS} | {"retries": MAX_RETRIES + 1}
    done = wf.cli("validate", wf.workflow_file(dag("w", [step("a", "true", (), **too_much)])))
    assert done.returncode == 2
    for name in [*DURATIONS, "retries"]:
        assert f"steps[0].{name}: expected " in done.stderr
    assert "5 problem(s)" in done.stderr


# --- runs at the bounds and at the tiniest values -------------------------------------------------


def test_a_run_at_the_bounds_succeeds(wf: WfHarness, wf_tasks: TaskKit) -> None:
    workflow = dag(
        "edge",
        [step("a", wf_tasks("ok")), step("b", wf_tasks("ok"), ["a"], **AT_THE_BOUNDS)],
        max_parallel=MAX_PARALLEL,
        defaults=AT_THE_BOUNDS,
    )
    result = wf.run(workflow)
    assert (result.returncode, result.state) == (0, "SUCCEEDED"), result.stderr


def test_a_step_at_the_bounds_that_fails_for_good_fails_the_run(
    wf: WfHarness, wf_tasks: TaskKit
) -> None:
    result = wf.run(
        dag("edge", [step("a", wf_tasks("fail"), (), **(AT_THE_BOUNDS | {"retries": 0}))])
    )
    assert (result.returncode, result.state) == (1, "FAILED"), result.stderr


def _waits_for_retry(events: list[Record]) -> bool:
    return any(r["type"] == "step" and r["to"] == "FAILED" for r in events)


def test_a_retry_due_in_thirty_days_waits_and_is_cancelled(
    wf: WfHarness, wf_tasks: TaskKit
) -> None:
    running = wf.start(dag("edge", [step("a", wf_tasks("fail"), **AT_THE_BOUNDS)]))
    [failed] = [r for r in running.wait_for(_waits_for_retry) if r.get("to") == "FAILED"]
    assert failed["retry_delay_sec"] == MAX_SECONDS and "final" not in failed
    retry_at = clock.from_iso(failed["retry_at"])
    assert retry_at - clock.from_iso(failed["ts"]) == MAX_SECONDS * clock.US_PER_SEC
    _cancel_and_check(wf, running, "CANCELLED")


def test_a_resumed_run_waits_for_a_retry_thirty_days_away(wf: WfHarness, wf_tasks: TaskKit) -> None:
    running = wf.start(dag("edge", [step("a", wf_tasks("fail"), **AT_THE_BOUNDS)]))
    running.wait_for(_waits_for_retry)
    running.kill()
    resumed = wf.start_resume(running.run_id)
    resumed.wait_for(lambda events: sum(r["type"] == "runner_started" for r in events) == 2)
    _cancel_and_check(wf, resumed, "CANCELLED")


def test_a_step_running_with_the_longest_timeout_and_grace_is_cancelled(
    wf: WfHarness, wf_tasks: TaskKit
) -> None:
    running = wf.start(dag("edge", [step("a", wf_tasks("hang"), **AT_THE_BOUNDS)]))
    running.wait_for(lambda events: any(r["type"] == "spawned" for r in events))
    result = _cancel_and_check(wf, running, "CANCELLED")
    assert result.step_state("a") == "CANCELLED"


def test_the_tiniest_durations_mean_now(wf: WfHarness, wf_tasks: TaskKit) -> None:
    """1e-300 s rounds to 0 µs: the attempt times out at once and is retried at once."""
    tiny = dict.fromkeys(DURATIONS, 1e-300)
    result = wf.run(dag("tiny", [step("a", wf_tasks("sleep", "30"), (), retries=2, **tiny)]))
    assert (result.returncode, result.state) == (1, "FAILED"), result.stderr
    failures = [r for r in result.events if r["type"] == "step" and r["to"] == "FAILED"]
    assert [r["reason"] for r in failures] == ["timeout"] * 3
    assert [r["retry_at"] for r in failures[:2]] == [r["ts"] for r in failures[:2]]


def _cancel_and_check(wf: WfHarness, running: RunningWf, state: str) -> RunResult:
    """``wf cancel --grace 0``; the runner must then end in ``state`` with its exit code."""
    cancel = wf.cancel(running.run_id, "--grace", "0")
    assert "Traceback" not in cancel.stderr
    result = running.wait(timeout=60)
    assert (result.state, result.returncode) == (state, EXIT_CODES[state]), result.stderr
    assert "Traceback" not in result.stderr
    return result


# --- the property: every accepted workflow reaches a terminal state ------------------------------

_COMMANDS = ("ok", "fail", "sleep")
#: Tiny values, the bounds themselves, and everything in between.
_DURATION = st.one_of(
    st.sampled_from([5e-324, 1e-300, 1e-6, 1.0, MAX_SECONDS]),
    st.floats(min_value=0, max_value=MAX_SECONDS, exclude_min=True),
    st.integers(1, MAX_SECONDS),
)
_NUMBERS: dict[str, st.SearchStrategy[Any]] = {
    "retries": st.integers(0, MAX_RETRIES),
    "timeout_sec": st.none() | _DURATION,
    **dict.fromkeys(DURATIONS[1:], _DURATION),
}


@st.composite
def _numbers(draw: st.DrawFn) -> dict[str, Any]:
    """Some of the numeric step fields, each from its whole accepted range."""
    names = draw(st.lists(st.sampled_from(sorted(_NUMBERS)), unique=True))
    return {name: draw(_NUMBERS[name], label=name) for name in names}


@st.composite
def _accepted_workflows(draw: st.DrawFn, tasks: TaskKit) -> dict[str, Any]:
    """A small DAG (step i may depend on steps before it) with numbers drawn from their whole
    accepted range, in steps, ``defaults`` and ``max_parallel``."""
    ids = [f"s{index}" for index in range(draw(st.integers(1, 3)))]
    steps = []
    for index, step_id in enumerate(ids):
        deps = draw(st.lists(st.sampled_from(ids[:index]), unique=True)) if index else []
        command = draw(st.sampled_from(_COMMANDS))
        args = ("sleep", "0.1") if command == "sleep" else (command,)
        steps.append(step(step_id, tasks(*args), deps, **draw(_numbers())))
    top: dict[str, Any] = {"defaults": draw(_numbers())}
    if draw(st.booleans()):
        top["max_parallel"] = draw(st.integers(1, MAX_PARALLEL), label="max_parallel")
    return dag("prop", steps, **top)


def _is_done(record: Record) -> bool:
    return record["to"] in TERMINAL_STEP_STATES or bool(record.get("final"))


def _is_waiting(record: Record, attempts: int) -> bool:
    """The step waits for a retry far away, or has retried often enough to show its numbers work
    (a quick retry's FAILED, READY and RUNNING records share a batch: look at the attempts)."""
    far = record["to"] == "FAILED" and not record.get("final")
    return (far and record["retry_delay_sec"] >= FAR_RETRY_SEC) or attempts >= BUSY_ATTEMPTS


def _finished_or_only_waiting(events: list[Record]) -> bool:
    """The run ended, or each step is done, waiting, or held back (by a dependency or a slot)
    while another one waits: nothing happens soon that a cancel could not interrupt."""
    if any(r["type"] == "run_finished" for r in events):
        return True
    latest: dict[str, Record] = {}
    attempts: dict[str, int] = {}
    for record in (r for r in events if r["type"] == "step"):
        latest[record["step"]] = record
        attempts[record["step"]] = max(attempts.get(record["step"], 0), record["attempt"])
    waiting = {
        name
        for name, record in latest.items()
        if not _is_done(record) and _is_waiting(record, attempts[name])
    }
    created = next(r for r in events if r["type"] == "run_created")
    for definition in created["workflow"]["steps"]:
        last = latest.get(definition["id"])
        held_back = last is None or last["to"] in ("PENDING", "READY")
        if last is not None and (_is_done(last) or definition["id"] in waiting):
            continue
        if not (held_back and waiting):
            return False
    return True


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_accepted_workflow_reaches_a_terminal_state(
    wf: WfHarness, wf_tasks: TaskKit, data: st.DataObject
) -> None:
    workflow = data.draw(_accepted_workflows(wf_tasks), label="workflow")
    note(workflow_json(workflow))
    assert wf.cli("validate", wf.workflow_file(workflow)).returncode == 0
    running = wf.start(workflow)
    running.wait_for(
        lambda events: bool(events) and _finished_or_only_waiting(events), 60, "a settled run"
    )
    if running.process.poll() is None:
        cancel = wf.cancel(running.run_id, "--grace", "0")
        assert "Traceback" not in cancel.stderr
    result = running.wait(timeout=60)
    event(f"run {result.state}")
    assert result.state in EXIT_CODES, result.stderr
    assert result.returncode == EXIT_CODES[result.state], result.stderr
    assert "Traceback" not in result.stderr
