"""The fold: ``state = apply(state, record)``, the only way run state is ever built.

Live runs, resume, ``status`` and ``replay`` all build state by folding log records through this
module, so they cannot disagree. ``apply`` reads nothing but the state and the record (never the
clock, never ``ts``, never the disk) and raises ``IllegalTransition`` on anything SPEC §5 forbids.
Readers go through ``fold_records``, which first checks each record's members and types
(``wf_engine.core.records``); the live runner folds the events it built itself with ``apply`` alone.

For O(1) work per record the state is updated in place and returned, and it keeps the indexes
``decide`` needs so that scheduling a whole run costs O(steps + edges): remaining-dependency
counters, dependents lists, a heap of READY steps in definition order and a heap of retry timers.
Heap entries are invalidated lazily: each carries the step's ``epoch`` at push time, and an entry
whose step has moved on since is skipped.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from wf_engine.core import clock
from wf_engine.core.model import Workflow
from wf_engine.core.records import RecordChecker
from wf_engine.core.states import LEGAL_TRANSITIONS, TERMINAL_STATES, RunStatus, StepState
from wf_engine.core.validation import WorkflowInvalid, workflow_from_data
from wf_engine.errors import CorruptLog, IllegalTransition

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Options fixed when the run is created and stored in ``run_created``."""

    max_parallel: int
    fail_fast: bool
    #: Absolute folder of the workflow file: steps' default working directory.
    base_dir: str

    def to_json(self) -> dict[str, Any]:
        return {
            "max_parallel": self.max_parallel,
            "fail_fast": self.fail_fast,
            "base_dir": self.base_dir,
        }


@dataclass(slots=True)
class ProcessRef:
    """What identifies an attempt's processes, from its ``spawned`` record."""

    pid: int
    pgid: int
    start_id: str | None


@dataclass(slots=True)
class StepStatus:
    state: StepState = StepState.PENDING
    #: Number of the latest attempt started (0: never started).
    attempt: int = 0
    #: Failed attempts so far; interrupted attempts do not count.
    failures: int = 0
    exit_code: int | None = None
    reason: str | None = None
    final: bool = False
    retry_at: int | None = None
    process: ProcessRef | None = None
    #: Runner generation that started the current attempt (an interruption needs a newer one).
    started_by: int = 0
    #: Bumped on every transition; heap entries from an older epoch are stale.
    epoch: int = 0

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES or (self.state is StepState.FAILED and self.final)


@dataclass(slots=True)
class RunState:
    run_id: str
    workflow: Workflow
    options: RunOptions
    steps: list[StepStatus]
    dependents: list[list[int]]
    remaining: list[int]
    #: PENDING steps whose dependencies all SUCCEEDED (ordered set: dict keys).
    unblocked: dict[int, None] = field(default_factory=dict)
    #: PENDING steps with a dependency that will never succeed.
    doomed: dict[int, None] = field(default_factory=dict)
    ready_heap: list[tuple[int, int]] = field(default_factory=list)
    retry_heap: list[tuple[int, int, int]] = field(default_factory=list)
    running: dict[int, None] = field(default_factory=dict)
    open_steps: int = 0
    succeeded: int = 0
    failed_final: bool = False
    cancel_requested: bool = False
    cancel_grace_sec: float | None = None
    finished: RunStatus | None = None
    runner_generation: int = 0
    runner_pid: int | None = None
    last_seq: int = 0

    @property
    def status(self) -> RunStatus:
        return self.finished or RunStatus.RUNNING

    @property
    def stopping(self) -> bool:
        """No new attempts start: a cancel was asked for, or a failure under ``--fail-fast``."""
        return self.cancel_requested or (self.failed_final and self.options.fail_fast)

    def step_id(self, index: int) -> str:
        return self.workflow.steps[index].id


def initial_state(record: Record) -> RunState:
    """State right after ``run_created``: every step PENDING, roots unblocked."""
    if record.get("type") != "run_created":
        raise IllegalTransition(record.get("seq"), "the log must start with run_created")
    try:
        workflow = workflow_from_data(record["workflow"], source="run_created")
        raw = record["options"]
        options = RunOptions(int(raw["max_parallel"]), bool(raw["fail_fast"]), str(raw["base_dir"]))
        run_id = str(record["run_id"])
    except WorkflowInvalid as exc:
        # One line, so that ``wf list`` keeps one row per run.
        problems = "; ".join(map(str, exc.problems)) or "invalid workflow"
        raise IllegalTransition(
            record.get("seq"), f"run_created is malformed: workflow: {problems}"
        ) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise IllegalTransition(record.get("seq"), f"run_created is malformed: {exc}") from exc
    count = len(workflow.steps)
    dependents: list[list[int]] = [[] for _ in range(count)]
    remaining = [0] * count
    for index, step in enumerate(workflow.steps):
        remaining[index] = len(step.depends_on)
        for dependency in step.depends_on:
            dependents[workflow.index_of(dependency)].append(index)
    state = RunState(
        run_id=run_id,
        workflow=workflow,
        options=options,
        steps=[StepStatus() for _ in range(count)],
        dependents=dependents,
        remaining=remaining,
        open_steps=count,
        last_seq=int(record.get("seq", 1)),
    )
    state.unblocked.update((i, None) for i in range(count) if remaining[i] == 0)
    return state


def apply(state: RunState, record: Record) -> RunState:
    """Fold one record into ``state`` (in place) and return it."""
    seq = record.get("seq")
    if state.finished is not None:
        raise IllegalTransition(seq, f"{record.get('type')} after run_finished")
    handler = _HANDLERS.get(record.get("type", ""))
    if handler is None:
        raise IllegalTransition(seq, f"unknown record type {record.get('type')!r}")
    try:
        handler(state, record)
    except (KeyError, TypeError, ValueError) as exc:
        raise IllegalTransition(seq, f"malformed {record['type']} record: {exc!r}") from exc
    if isinstance(seq, int):
        state.last_seq = seq
    return state


def _runner_started(state: RunState, record: Record) -> None:
    state.runner_generation += 1
    state.runner_pid = record.get("pid")


def _cancel_requested(state: RunState, record: Record) -> None:
    state.cancel_requested = True
    grace = record.get("grace_sec")
    state.cancel_grace_sec = float(grace) if grace is not None else None


def _run_finished(state: RunState, record: Record) -> None:
    seq = record.get("seq")
    if state.open_steps:
        raise IllegalTransition(seq, f"run_finished with {state.open_steps} step(s) not terminal")
    try:
        state.finished = RunStatus(record.get("state"))
    except ValueError:
        raise IllegalTransition(seq, f"run_finished with state {record.get('state')!r}") from None
    if state.finished is RunStatus.RUNNING:
        raise IllegalTransition(seq, "run_finished with state RUNNING")


def _spawned(state: RunState, record: Record) -> None:
    index, status = _step_of(state, record)
    if status.state is not StepState.RUNNING or record.get("attempt") != status.attempt:
        raise IllegalTransition(
            record.get("seq"), f"spawned for step {state.step_id(index)!r} which is not running it"
        )
    status.process = ProcessRef(int(record["pid"]), int(record["pgid"]), record.get("start_id"))


def _step_of(state: RunState, record: Record) -> tuple[int, StepStatus]:
    step_id = record.get("step")
    if not isinstance(step_id, str) or not state.workflow.has_step(step_id):
        raise IllegalTransition(record.get("seq"), f"unknown step {step_id!r}")
    index = state.workflow.index_of(step_id)
    return index, state.steps[index]


def _step(state: RunState, record: Record) -> None:
    seq = record.get("seq")
    index, status = _step_of(state, record)
    try:
        source, target = StepState(record.get("from")), StepState(record.get("to"))
    except ValueError:
        raise IllegalTransition(seq, "step record with an unknown state") from None
    name = state.step_id(index)
    if source is not status.state:
        raise IllegalTransition(seq, f"step {name!r} is {status.state}, record says from {source}")
    if (source, target) not in LEGAL_TRANSITIONS:
        raise IllegalTransition(seq, f"illegal transition {source} -> {target} for step {name!r}")
    if status.terminal:
        raise IllegalTransition(seq, f"step {name!r} already finished for good")
    expected_attempt = status.attempt + 1 if target is StepState.RUNNING else status.attempt
    if record.get("attempt") != expected_attempt:
        raise IllegalTransition(
            seq, f"step {name!r}: attempt {record.get('attempt')}, expected {expected_attempt}"
        )
    _leave(state, index, status, source)
    status.state = target
    status.epoch += 1
    # Only now is this step's heap entry stale, so it can be dropped if it sits on top.
    if source is StepState.READY:
        _drop_stale(state.ready_heap, lambda entry: _live_ready(state, entry))
    elif source is StepState.FAILED:
        _drop_stale(state.retry_heap, lambda entry: _live_retry(state, entry))
    _enter(state, index, status, record)


def _leave(state: RunState, index: int, status: StepStatus, source: StepState) -> None:
    if source is StepState.PENDING:
        state.unblocked.pop(index, None)
        state.doomed.pop(index, None)
    elif source is StepState.RUNNING:
        del state.running[index]
        status.process = None
    elif source is StepState.FAILED:
        status.retry_at = None


def _enter(state: RunState, index: int, status: StepStatus, record: Record) -> None:
    target = status.state
    if target is StepState.READY:
        heapq.heappush(state.ready_heap, (index, status.epoch))
    elif target is StepState.RUNNING:
        state.running[index] = None
        status.attempt += 1
        status.started_by = state.runner_generation
        status.exit_code = None
        status.reason = None
    elif target is StepState.SUCCEEDED:
        state.succeeded += 1
        _record_outcome(status, record)
        for dependent in state.dependents[index]:
            state.remaining[dependent] -= 1
            if (
                state.remaining[dependent] == 0
                and state.steps[dependent].state is StepState.PENDING
            ):
                state.unblocked[dependent] = None
    elif target is StepState.FAILED:
        _record_outcome(status, record)
        status.failures += 1
        status.final = bool(record.get("final"))
        if status.final:
            state.failed_final = True
            _doom_dependents(state, index)
        else:
            status.retry_at = _retry_at(record)
            heapq.heappush(state.retry_heap, (status.retry_at, index, status.epoch))
    elif target is StepState.SKIPPED:
        status.reason = record.get("reason")
        _doom_dependents(state, index)
    elif target is StepState.CANCELLED:
        status.reason = record.get("reason")
        if "exit_code" in record:
            status.exit_code = record["exit_code"]
    if status.terminal:
        state.open_steps -= 1


def _record_outcome(status: StepStatus, record: Record) -> None:
    status.exit_code = record.get("exit_code")
    status.reason = record.get("reason")


def _retry_at(record: Record) -> int:
    try:
        return clock.from_iso(record["retry_at"])
    except (KeyError, TypeError, ValueError):
        raise IllegalTransition(
            record.get("seq"), "FAILED without final needs a valid retry_at"
        ) from None


def _doom_dependents(state: RunState, index: int) -> None:
    for dependent in state.dependents[index]:
        if state.steps[dependent].state is StepState.PENDING:
            state.doomed[dependent] = None
            state.unblocked.pop(dependent, None)


def _live_ready(state: RunState, entry: tuple[int, int]) -> bool:
    status = state.steps[entry[0]]
    return status.state is StepState.READY and status.epoch == entry[1]


def _live_retry(state: RunState, entry: tuple[int, int, int]) -> bool:
    status = state.steps[entry[1]]
    return status.state is StepState.FAILED and status.epoch == entry[2]


def _drop_stale(heap: list[Any], is_live: Callable[[Any], bool]) -> None:
    """Pop dead entries off the top of ``heap``; the step just leaving is one of them now."""
    while heap and not is_live(heap[0]):
        heapq.heappop(heap)


_HANDLERS: dict[str, Callable[[RunState, Record], None]] = {
    "runner_started": _runner_started,
    "step": _step,
    "spawned": _spawned,
    "cancel_requested": _cancel_requested,
    "run_finished": _run_finished,
}


def fold_records(
    records: Iterable[Record],
    observe: Callable[[Record], None] | None = None,
    source: str | None = None,
) -> RunState:
    """Build the state from records that start with ``run_created``, streaming: the readers' fold.

    Unlike ``apply``, which trusts records the engine built itself, this checks every record's
    members first (``wf_engine.core.records``): the records come from a file anyone could have
    edited.
    ``source`` is the log file they were read from, from line 1 on with no line skipped (a
    ``LogScan``), so the k-th record is on line k: a refused record is then reported as
    ``CorruptLog`` naming that file and line. ``observe`` sees each record once it is folded
    (status collects timings this way).
    """
    checker = RecordChecker()
    state: RunState | None = None
    for line, record in enumerate(records, start=1):
        try:
            checker.check(record)
            if state is None:
                state = initial_state(record)
            else:
                apply(state, record)
        except IllegalTransition as exc:
            if source is None:
                raise
            raise CorruptLog(source, line, str(exc)) from exc
        if observe is not None:
            observe(record)
    if state is None:
        raise IllegalTransition(
            None,
            f"{source or 'the log'} is empty: no committed events "
            "(the run crashed while being created)",
        )
    return state
