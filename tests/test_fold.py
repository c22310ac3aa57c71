"""Tests for ``wf_engine.core.fold``: the state machine (docs/workflows.md, states) and the
counters ``decide`` relies on.

Each test writes log records by hand through ``Log``, a tiny writer that fills in ``seq``, ``ts``,
``from`` and ``attempt`` the way the engine would, so a test reads as the story of a run.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from wf_engine.core import clock, records
from wf_engine.core.events import decode
from wf_engine.core.fold import RunState, apply, fold_records, initial_state
from wf_engine.core.records import Kind
from wf_engine.core.states import LEGAL_TRANSITIONS, RunStatus, StepState
from wf_engine.errors import CorruptLog, IllegalTransition, MalformedRecord, StoreError

P, R, X = StepState.PENDING, StepState.READY, StepState.RUNNING
S, F, K, C = StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED
T0 = clock.from_iso("2026-01-01T00:00:00.000000Z")
RETRY_AT = clock.to_iso(T0 + 5_000_000)


def step(step_id: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "command": "true", "depends_on": list(deps), **fields}


class Log:
    """Writes records as the engine would and folds each one into ``self.state``."""

    def __init__(self, *steps: dict[str, Any], ts: str = clock.to_iso(T0)) -> None:
        self.ts = ts
        self.records: list[dict[str, Any]] = []
        workflow = {"workflow_id": "w", "steps": list(steps) or [step("a", retries=1)]}
        options = {"max_parallel": 2, "fail_fast": False, "base_dir": "/tmp"}
        first = self.record("run_created", run_id="r", workflow=workflow, options=options)
        self.state: RunState = initial_state(first)
        self.add("runner_started", pid=123)

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        record = {"seq": len(self.records) + 1, "type": kind, "ts": self.ts, **fields}
        self.records.append(record)
        return record

    def add(self, kind: str, **fields: Any) -> RunState:
        return apply(self.state, self.record(kind, **fields))

    def move(self, step_id: str, to: StepState, **fields: Any) -> RunState:
        """A ``step`` record from the step's current state, with the attempt the fold expects."""
        status = self.status(step_id)
        fields.setdefault("from", status.state.value)
        fields.setdefault("attempt", status.attempt + (to is X))
        if to is F:
            fields.setdefault("exit_code", 1)  # an observed attempt end
            if "final" not in fields:
                fields.setdefault("retry_at", RETRY_AT)
        return self.add("step", step=step_id, to=to.value, **fields)

    def walk(self, step_id: str, *path: StepState, **last: Any) -> RunState:
        for to in path[:-1]:
            self.move(step_id, to)
        return self.move(step_id, path[-1], **last)

    def status(self, step_id: str) -> Any:
        return self.state.steps[self.state.workflow.index_of(step_id)]

    def index(self, step_id: str) -> int:
        return self.state.workflow.index_of(step_id)


#: Legal records that bring a fresh step to each state.
PATHS: dict[StepState, list[StepState]] = {
    P: [],
    R: [R],
    X: [R, X],
    F: [R, X, F],
    S: [R, X, S],
    K: [K],
    C: [C],
}


def reach(state: StepState, log: Log | None = None, step_id: str = "a") -> Log:
    log = log or Log()
    for to in PATHS[state]:
        log.move(step_id, to, **({"reason": "dependency_failed"} if to is K else {}))
    assert log.status(step_id).state is state
    return log


# --- the transition table ------------------------------------------------------------------------


def test_the_table_is_spec_section_5() -> None:
    assert {(a.value, b.value) for a, b in LEGAL_TRANSITIONS} == {
        ("PENDING", "READY"), ("PENDING", "SKIPPED"), ("PENDING", "CANCELLED"),
        ("PENDING", "SUCCEEDED"),
        ("READY", "RUNNING"), ("READY", "CANCELLED"),
        ("RUNNING", "SUCCEEDED"), ("RUNNING", "FAILED"), ("RUNNING", "CANCELLED"),
        ("RUNNING", "READY"),
        ("FAILED", "READY"), ("FAILED", "CANCELLED"),
    }  # fmt: skip


#: PENDING -> SUCCEEDED is a rerun's carried-over step, legal only in its opening: tested in
#: tests/test_rerun_fold.py.
@pytest.mark.parametrize(("source", "target"), sorted(LEGAL_TRANSITIONS - {(P, S)}), ids=str)
def test_every_legal_transition_is_accepted(source: StepState, target: StepState) -> None:
    log = reach(source)
    before = log.status("a").attempt
    log.move("a", target)
    status = log.status("a")
    assert status.state is target
    assert status.attempt == before + (target is X)


ILLEGAL = sorted(set(itertools.product(StepState, StepState)) - LEGAL_TRANSITIONS)


def test_there_are_37_illegal_pairs() -> None:
    assert len(ILLEGAL) == 7 * 7 - 12


@pytest.mark.parametrize(("source", "target"), ILLEGAL, ids=str)
def test_every_illegal_transition_is_refused(source: StepState, target: StepState) -> None:
    log = reach(source)
    with pytest.raises(IllegalTransition, match="seq"):
        log.move("a", target)


@pytest.mark.parametrize("target", list(StepState), ids=str)
@pytest.mark.parametrize("terminal", [S, K, C, "final FAILED"], ids=str)
def test_nothing_leaves_a_terminal_state(terminal: Any, target: StepState) -> None:
    if terminal == "final FAILED":
        log = Log()
        log.walk("a", R, X, F, final=True)
    else:
        log = reach(terminal)
    assert log.status("a").terminal
    with pytest.raises(IllegalTransition):
        log.move("a", target)


def test_illegal_transition_is_a_store_error_naming_the_seq() -> None:
    log = reach(S)
    with pytest.raises(IllegalTransition) as info:
        log.move("a", R)
    assert isinstance(info.value, StoreError)
    assert info.value.seq == len(log.records)
    assert str(info.value).startswith(f"seq {len(log.records)}: ")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"step": "nope", "from": "PENDING", "to": "READY", "attempt": 0}, "unknown step"),
        ({"from": "PENDING", "to": "READY", "attempt": 0}, "'step' missing"),
        ({"step": "a", "from": "PENDING", "to": "READY", "attempt": 0}, "is READY"),
        ({"step": "a", "from": "READY", "to": "RUNNING", "attempt": 2}, "expected 1"),
        ({"step": "a", "from": "READY", "to": "RUNNING", "attempt": 0}, "expected 1"),
        ({"step": "a", "from": "READY", "to": "CANCELLED", "attempt": 1}, "expected 0"),
        ({"step": "a", "from": "READY", "to": "CANCELLED"}, "'attempt' missing"),
        ({"step": "a", "from": "READY", "to": "DONE", "attempt": 0}, "unknown state"),
        ({"step": "a", "from": "ready", "to": "RUNNING", "attempt": 1}, "unknown state"),
    ],
    ids=[
        "unknown-step",
        "no-step",
        "wrong-from",
        "attempt-skipped",
        "attempt-reused",
        "attempt-on-cancel",
        "no-attempt",
        "unknown-to",
        "lowercase-from",
    ],
)
def test_malformed_step_records_are_refused(fields: dict[str, Any], message: str) -> None:
    log = reach(R)
    with pytest.raises(IllegalTransition, match=message):
        log.add("step", **fields)


def test_wrong_attempt_after_a_retry() -> None:
    log = reach(F)
    log.move("a", R)
    with pytest.raises(IllegalTransition, match="expected 2"):
        log.move("a", X, attempt=1)


def test_failed_needs_final_or_a_valid_retry_at() -> None:
    with pytest.raises(IllegalTransition, match="retry_at"):
        Log().walk("a", R, X, F, retry_at=None)
    with pytest.raises(IllegalTransition, match="retry_at"):
        Log().walk("a", R, X, F, retry_at="tomorrow")
    with pytest.raises(IllegalTransition, match="retry_at"):
        Log().walk("a", R, X, F, final=False, retry_at=None)
    log = Log()
    log.walk("a", R, X, F, final=True)  # no retry_at needed
    assert log.status("a").final and log.status("a").retry_at is None


# --- records other than step ---------------------------------------------------------------------


@pytest.mark.parametrize("state", [P, R, S, F], ids=str)
def test_spawned_needs_a_running_step(state: StepState) -> None:
    log = reach(state)
    attempt = log.status("a").attempt
    with pytest.raises(IllegalTransition, match="not running"):
        log.add("spawned", step="a", attempt=attempt, pid=10, pgid=10)


def test_spawned_for_another_attempt_or_step_is_refused() -> None:
    log = reach(X)
    with pytest.raises(IllegalTransition, match="not running"):
        log.add("spawned", step="a", attempt=2, pid=10, pgid=10)
    with pytest.raises(IllegalTransition, match="unknown step"):
        log.add("spawned", step="zz", attempt=1, pid=10, pgid=10)


def test_spawned_records_the_process_and_leaving_running_forgets_it() -> None:
    log = reach(X)
    log.add("spawned", step="a", attempt=1, pid=10, pgid=11, start_id="boot:42")
    process = log.status("a").process
    assert (process.pid, process.pgid, process.start_id) == (10, 11, "boot:42")
    log.move("a", S, reason="exit", exit_code=0)
    assert log.status("a").process is None


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("spawned", {"step": "a", "attempt": 1, "pgid": 10}),
        ("spawned", {"step": "a", "attempt": 1, "pid": "x", "pgid": 10}),
        ("spawned", {"step": "a", "attempt": 1, "pid": 10, "pgid": None}),
        ("cancel_requested", {"grace_sec": "soon"}),
    ],
    ids=["spawned-no-pid", "spawned-pid-text", "spawned-pgid-null", "cancel-grace-text"],
)
def test_malformed_payload_is_an_illegal_transition(kind: str, fields: dict[str, Any]) -> None:
    log = reach(X)
    with pytest.raises(IllegalTransition):
        log.add(kind, **fields)


def test_run_finished_while_steps_are_open_is_refused() -> None:
    log = Log(step("a"), step("b"))
    log.walk("a", R, X, S)
    with pytest.raises(IllegalTransition, match="1 step"):
        log.add("run_finished", state="SUCCEEDED")


@pytest.mark.parametrize("value", ["RUNNING", "DONE", None])
def test_run_finished_needs_a_final_run_state(value: Any) -> None:
    log = reach(S)
    with pytest.raises(IllegalTransition, match="run_finished"):
        log.add("run_finished", state=value)


@pytest.mark.parametrize(
    "record",
    [
        {"type": "step", "step": "a", "from": "SUCCEEDED", "to": "READY", "attempt": 1},
        {"type": "runner_started", "pid": 9},
        {"type": "cancel_requested"},
        {"type": "spawned", "step": "a", "attempt": 1, "pid": 1, "pgid": 1},
        {"type": "run_finished", "state": "SUCCEEDED"},
        {"type": "bogus"},
    ],
    ids=lambda r: r["type"],
)
def test_nothing_after_run_finished(record: dict[str, Any]) -> None:
    log = reach(S)
    log.add("run_finished", state="SUCCEEDED")
    assert log.state.status is RunStatus.SUCCEEDED
    with pytest.raises(IllegalTransition, match="after run_finished"):
        fields = dict(record)
        log.add(fields.pop("type"), **fields)


@pytest.mark.parametrize("kind", ["bogus", "", None])
def test_unknown_record_type_is_refused(kind: Any) -> None:
    log = Log()
    with pytest.raises(IllegalTransition, match="unknown record type"):
        log.add(kind)


def test_run_created_only_opens_the_log() -> None:
    log = Log()
    with pytest.raises(IllegalTransition, match="run_created may only open the log"):
        apply(log.state, {**log.records[0], "seq": 3})


def test_a_log_must_start_with_run_created() -> None:
    log = reach(R)
    with pytest.raises(IllegalTransition, match="start with run_created"):
        fold_records(log.records[1:])
    with pytest.raises(IllegalTransition, match="empty"):
        fold_records([])
    assert fold_records(log.records) == log.state


@pytest.mark.parametrize(
    "change",
    [
        {"workflow": {"workflow_id": "w", "steps": []}},
        {"workflow": None},
        {"options": {"max_parallel": 2}},
        {"options": {"max_parallel": "many", "fail_fast": False, "base_dir": "/"}},
    ],
    ids=["no-steps", "no-workflow", "options-missing", "options-mistyped"],
)
def test_malformed_run_created_is_refused(change: dict[str, Any]) -> None:
    """Its shape by the codec (``malformed run_created record``), its workflow by validation."""
    first = {**Log().records[0], **change}
    with pytest.raises(IllegalTransition, match=r"run_created (is malformed|record)"):
        initial_state(first)


def test_runner_started_and_cancel_requested() -> None:
    log = Log()
    assert (log.state.runner_generation, log.state.runner_pid) == (1, 123)
    log.add("runner_started", pid=456)
    assert (log.state.runner_generation, log.state.runner_pid) == (2, 456)
    assert not log.state.stopping
    log.add("cancel_requested", grace_sec=2)
    assert log.state.cancel_requested and log.state.stopping
    assert log.state.cancel_grace_sec == 2.0
    assert log.state.last_seq == 4


# --- counters and indexes ------------------------------------------------------------------------


def test_initial_state_unblocks_the_roots() -> None:
    log = Log(step("a"), step("b", "a"), step("c"), step("d", "b", "c"))
    state = log.state
    assert list(state.unblocked) == [0, 2]
    assert state.remaining == [0, 1, 0, 2]
    assert state.dependents == [[1], [3], [3], []]
    assert state.open_steps == 4 and not state.doomed and not state.running
    assert all(s.state is P and s.attempt == 0 for s in state.steps)


def test_succeeded_of_every_dependency_unblocks_a_dependent() -> None:
    log = Log(step("a"), step("b"), step("c", "a", "b"))
    log.walk("a", R, X, S, reason="exit", exit_code=0)
    assert log.index("c") not in log.state.unblocked
    assert log.state.remaining[log.index("c")] == 1
    log.walk("b", R, X, S, reason="exit", exit_code=0)
    assert log.index("c") in log.state.unblocked
    log.move("c", R)
    assert log.index("c") not in log.state.unblocked
    assert log.state.open_steps == 1


def test_a_final_failure_dooms_pending_dependents_only() -> None:
    log = Log(step("a"), step("b", "a"), step("c", "b"), step("d", "a"), step("e"))
    log.walk("a", R, X, F, final=True, reason="exit", exit_code=3)
    state = log.state
    assert set(state.doomed) == {log.index("b"), log.index("d")}  # the next level only
    assert state.failed_final and state.open_steps == 4
    assert log.status("a").terminal and log.status("a").exit_code == 3
    assert log.status("a").failures == 1


def test_a_retryable_failure_dooms_nothing_and_waits() -> None:
    log = Log(step("a", retries=1), step("b", "a"))
    log.walk("a", R, X, F, reason="exit", exit_code=1)
    state, status = log.state, log.status("a")
    assert not state.doomed and not state.failed_final and not status.terminal
    assert status.retry_at == clock.from_iso(RETRY_AT)
    assert [entry[0] for entry in state.retry_heap] == [status.retry_at]
    log.move("a", R)
    assert status.retry_at is None
    assert state.open_steps == 2


def test_skipped_cascades_one_level_at_a_time() -> None:
    log = Log(step("a"), step("b", "a"), step("c", "b"), step("d", "c"))
    log.walk("a", R, X, F, final=True)
    log.move("b", K, reason="dependency_failed")
    assert set(log.state.doomed) == {log.index("c")}
    assert log.status("b").reason == "dependency_failed"
    log.move("c", K, reason="dependency_failed")
    assert set(log.state.doomed) == {log.index("d")}
    log.move("d", K, reason="dependency_failed")
    assert not log.state.doomed and log.state.open_steps == 0
    log.add("run_finished", state="FAILED")
    assert log.state.status is RunStatus.FAILED


def test_a_doomed_step_is_not_unblocked_by_its_other_dependency() -> None:
    log = Log(step("a"), step("b"), step("c", "a", "b"))
    log.walk("a", R, X, F, final=True)
    log.walk("b", R, X, S)
    assert log.index("c") in log.state.doomed
    assert log.index("c") not in log.state.unblocked


def test_interrupted_does_not_count_as_a_failure() -> None:
    log = reach(X)
    log.add("runner_started", pid=2)
    log.move("a", R, reason="interrupted")
    status = log.status("a")
    assert (status.state, status.attempt, status.failures) == (R, 1, 0)
    assert not log.state.running
    log.move("a", X)
    assert (status.attempt, status.failures, status.started_by) == (2, 0, 2)


def test_attempts_and_failures_count_up() -> None:
    log = Log(step("a", retries=2))
    status = log.status("a")
    for attempt in (1, 2):
        log.walk("a", R, X, F, reason="exit", exit_code=1)
        assert (status.attempt, status.failures, status.exit_code) == (attempt, attempt, 1)
    log.walk("a", R, X)
    assert (status.attempt, status.exit_code, status.reason) == (3, None, None)
    log.move("a", S, reason="exit", exit_code=0)
    assert (status.attempt, status.failures, status.exit_code) == (3, 2, 0)
    assert log.state.open_steps == 0


def test_running_set_and_open_steps_follow_the_records() -> None:
    log = Log(step("a"), step("b"), step("c"))
    for step_id in "abc":
        log.walk(step_id, R, X)
    assert list(log.state.running) == [0, 1, 2]
    log.move("b", C, reason="cancelled", exit_code=-15)
    log.move("a", S, reason="exit", exit_code=0)
    assert list(log.state.running) == [2]
    assert log.status("b").exit_code == -15 and log.status("b").reason == "cancelled"
    assert log.state.open_steps == 1


def test_seq_is_tracked() -> None:
    log = reach(X)
    assert log.state.last_seq == len(log.records) == 4


# --- the fold never reads ts -------------------------------------------------------------------


def story(log: Log) -> Log:
    log.walk("a", R, X, F, reason="timeout", exit_code=-15)
    log.walk("a", R, X)
    log.add("spawned", step="a", attempt=2, pid=5, pgid=5)
    log.move("a", S, reason="exit", exit_code=0)
    log.walk("b", R, X, F, final=True, reason="spawn_error")
    log.move("c", K, reason="dependency_failed")
    log.walk("d", R, X)
    log.add("cancel_requested")
    log.move("d", C, reason="cancelled")
    log.add("run_finished", state="CANCELLED")
    return log


def _fold_unchecked(records: list[dict[str, Any]]) -> RunState:
    """The fold alone, as the live runner uses it: ``fold_records`` also checks ``ts`` (a
    reader's check, see test_fold_records_refuses_a_missing_or_bad_ts)."""
    state = initial_state(records[0])
    for record in records[1:]:
        apply(state, record)
    return state


@pytest.mark.parametrize(
    "new_ts",
    [lambda i: "1999-12-31T23:59:59.000000Z", lambda i: clock.to_iso(10**15 - i), lambda i: None],
    ids=["constant", "backwards", "missing"],
)
def test_the_fold_never_reads_ts(new_ts: Any) -> None:
    steps = (step("a", retries=1), step("b"), step("c", "b"), step("d"))
    records = story(Log(*steps)).records
    changed = copy.deepcopy(records)
    for i, record in enumerate(changed):
        if new_ts(i) is None:
            del record["ts"]
        else:
            record["ts"] = new_ts(i)
    original, other = fold_records(records), _fold_unchecked(changed)
    assert other.steps == original.steps
    assert other == original
    assert original.status is RunStatus.CANCELLED


# --- what decoding checks before folding (wf_engine.core.records, wf_engine.core.events) ----------

TS = clock.to_iso(T0)
#: One well-formed record of each type, with every member a reader uses.
SAMPLES: dict[str, dict[str, Any]] = {
    "run_created": {
        "run_id": "r",
        "workflow": {"workflow_id": "w", "steps": [step("a")]},
        "options": {
            "max_parallel": 1,
            "fail_fast": False,
            "base_dir": "/",
            "executor": "dask",
            "scheduler": "tcp://127.0.0.1:8786",
        },
        "origin_run_id": "o",
    },
    "runner_started": {"pid": 1, "argv": ["run", "w.json"]},
    "step": {
        "step": "a",
        "from": "RUNNING",
        "to": "FAILED",
        "attempt": 1,
        "exit_code": None,
        "reason": None,
        "retry_delay_sec": 0.5,
        "retry_at": RETRY_AT,
        "final": False,
        "stderr_tail": "oops\n",
        "error": "cannot start",
        "leaked_pids": [4, 5],
    },
    "spawned": {"step": "a", "attempt": 1, "pid": 2, "pgid": 2, "start_id": None},
    "cancel_requested": {"source": "wf cancel", "pid": 3, "grace_sec": 0},
    "run_finished": {"state": "SUCCEEDED"},
}
#: Values each kind of member refuses; ``True`` stands for "a bool is not a number".
BAD_VALUES: dict[Kind, list[Any]] = {
    records.STR: [5, None, ["a"]],
    records.STR_OR_NULL: [5, {}],
    records.INT: ["1", True, 1.0],
    records.INT_OR_NULL: ["0", False, 1.5, [0]],
    records.COUNT: [-1, "1", True, 1.0],
    records.POSITIVE: [0, "2", True],
    records.PID: [0, -1, 2**31, "1", True],
    records.BOOL: [1, "yes", None],
    records.NUMBER: ["0.1", True, None, float("nan"), float("inf"), 10**400],
    records.GRACE: [-1, "2", True, float("inf")],
    records.TIME: ["soon", 5, "2026-01-01", "9999-12-31T23:59:59.999999Z", None],
    records.OBJECT: [[], "x", None],
    records.STR_LIST: ["run", [1], None],
    records.PIDS: [[0], ["4"], [True], [2**31], 4, None],
}


def sample(kind: str, **changes: Any) -> dict[str, Any]:
    return {"seq": 7, "type": kind, "ts": TS, **copy.deepcopy(SAMPLES[kind]), **changes}


def members(kind: str) -> list[tuple[str, str, Kind, str | None]]:
    """``(path, name, kind, container)`` for every member the schema of ``kind`` checks."""
    schema = records.SCHEMAS[kind]
    found: list[tuple[str, str, Kind, str | None]] = [
        (name, name, expected, None) for name, expected in schema.fields.items()
    ]
    for outer, inner in schema.nested.items():
        found += [(f"{outer}.{n}", n, e, outer) for n, e in inner.fields.items()]
    return found


CASES = [(kind, *member) for kind in records.SCHEMAS for member in members(kind)]


def test_the_samples_hold_every_member_and_pass() -> None:
    assert set(SAMPLES) == set(records.SCHEMAS)
    for kind, path, name, _, outer in CASES:
        assert name in (SAMPLES[kind][outer] if outer else SAMPLES[kind]), path
        decode(sample(kind))


@pytest.mark.parametrize(("kind", "path", "name", "expected", "outer"), CASES, ids=lambda v: v)
def test_every_member_of_the_wrong_type_is_refused_by_name(
    kind: str, path: str, name: str, expected: Kind, outer: str | None
) -> None:
    for value in BAD_VALUES[expected]:
        record = sample(kind)
        (record[outer] if outer else record)[name] = value
        with pytest.raises(MalformedRecord, match=f"malformed {kind} record: field '{path}' must"):
            decode(record)


@pytest.mark.parametrize(("kind", "path", "name", "expected", "outer"), CASES, ids=lambda v: v)
def test_a_required_member_that_is_missing_is_refused_by_name(
    kind: str, path: str, name: str, expected: Kind, outer: str | None
) -> None:
    record = sample(kind)
    del (record[outer] if outer else record)[name]
    schema = records.SCHEMAS[kind].nested[outer] if outer else records.SCHEMAS[kind]
    if name in schema.required:
        with pytest.raises(MalformedRecord, match=f"field '{path}' missing"):
            decode(record)
    else:
        decode(record)


def _fits(record: dict[str, Any]) -> bool:
    """What the member by member check (the one that names what is wrong) says of ``record``."""
    try:
        records.check_members(record)
    except MalformedRecord:
        return False
    return True


#: JSON values of every kind, and edge values of the constrained ones.
ANY_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2**31 - 1, 2**31, 10**400, 0.5, -0.5, 1e308, "", "a",
    RETRY_AT, "2026-01-01", [], [1], ["a"], [True], {}, {"k": "v"},
]  # fmt: skip


@pytest.mark.parametrize(("kind", "path", "name", "expected", "outer"), CASES, ids=lambda v: v)
def test_the_compiled_check_agrees_with_the_member_by_member_check(
    kind: str, path: str, name: str, expected: Kind, outer: str | None
) -> None:
    """``Schema.holds`` is generated from the table: it vouches for a record exactly when the
    member by member check passes it (a schema with nested objects leaves every record to it)."""
    schema = records.SCHEMAS[kind]
    variants = [sample(kind), sample(kind, future={"added": "later"})]
    for value in [*BAD_VALUES[expected], *ANY_VALUES]:
        record = sample(kind)
        (record[outer] if outer else record)[name] = value
        variants.append(record)
    missing = sample(kind)
    del (missing[outer] if outer else missing)[name]
    variants.append(missing)
    only_required = {key: value for key, value in sample(kind).items() if key in ("seq", "type")}
    only_required.update({key: SAMPLES[kind][key] for key in schema.required})
    variants.append(only_required)
    for record in variants:
        fits = _fits(record)
        assert schema.holds(record) is (fits and not schema.nested), record
        try:
            decode(record)
        except MalformedRecord:
            assert not fits, record
        except IllegalTransition:
            assert fits, record  # a value the fold refuses (an unknown state): a well-formed record
        else:
            assert fits, record


@pytest.mark.parametrize("ts", [None, "yesterday", 5, "9999-12-31T23:59:59.999999Z"])
def test_fold_records_refuses_a_missing_or_bad_ts(ts: Any) -> None:
    changed = copy.deepcopy(reach(S).records)
    if ts is None:
        del changed[3]["ts"]
    else:
        changed[3]["ts"] = ts
    with pytest.raises(MalformedRecord, match="seq 4: malformed step record: envelope field 'ts'"):
        fold_records(changed)


def test_unknown_members_are_allowed_and_unknown_types_refused_by_name() -> None:
    assert decode(sample("step", comment={"added": "later"}, extra=[1.5])) == decode(sample("step"))
    with pytest.raises(IllegalTransition, match=r"^seq 7: unknown record type 'bogus'"):
        decode({"seq": 7, "type": "bogus", "ts": TS, "anything": None})
    log = reach(S)
    log.records[-1]["future"] = {"nested": True}
    assert fold_records(log.records) == log.state


def test_a_batch_shares_one_ts_which_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []
    parse = clock.from_iso

    def counting(text: str) -> int:
        parsed.append(text)
        return parse(text)

    monkeypatch.setattr(clock, "from_iso", counting)
    log = story(Log(step("a", retries=1), step("b"), step("c", "b"), step("d")))
    fold_records(log.records)
    assert parsed.count(log.ts) == 1


def test_fold_records_names_the_file_and_line_when_reading_a_log() -> None:
    log = reach(S)
    log.record("step", step="a", **{"from": "SUCCEEDED", "to": "READY", "attempt": 1})
    line = len(log.records)
    with pytest.raises(IllegalTransition, match=f"^seq {line}: illegal transition"):
        fold_records(log.records)
    with pytest.raises(CorruptLog) as caught:
        fold_records(log.records, source="/runs/r/events.jsonl")
    assert (caught.value.path, caught.value.line) == ("/runs/r/events.jsonl", line)
    assert str(caught.value).startswith(
        f"/runs/r/events.jsonl: line {line}: corrupt event log: seq {line}: illegal transition"
    )
    bad = copy.deepcopy(reach(S).records)
    bad[2]["attempt"] = True
    with pytest.raises(CorruptLog, match="line 3: corrupt event log: seq 3: malformed step record"):
        fold_records(bad, source="/runs/r/events.jsonl")
