"""The fold: ``state = apply(state, record)``, the only way run state is ever built.

Live runs, resume, ``status`` and ``replay`` all build state by folding events through this
module, so they cannot disagree. ``apply_event`` reads nothing but the state and the event (never
the clock, never ``ts``, never the disk) and raises ``IllegalTransition`` on any transition
docs/log-format.md does not list as legal; it dispatches on the event's type, so a record's
members are read as typed attributes. The live runner folds the events it built itself with
``apply_event`` (nothing to re-check); anything read from a file goes through ``apply`` or
``fold_records``, which decode each record first
(``wf_engine.core.events.decode``: every member checked).

For O(1) work per record the state is updated in place and returned, and it keeps the indexes
``decide`` needs so that scheduling a whole run costs O(steps + edges): remaining-dependency
counters, dependents lists, a heap of READY steps in definition order and a heap of retry timers.
Heap entries are invalidated lazily: each carries the step's ``epoch`` at push time, and an entry
whose step has moved on since is skipped.

A rerun (``run_created`` with ``origin_run_id``) opens with its carried-over steps: ``PENDING ->
SUCCEEDED`` (``reason=reused``, attempt 0) and ``PENDING -> SKIPPED`` (``reason=not_selected``).
Nothing executed them, so the fold accepts them only in the rerun's *opening*: right after its
first ``runner_started``, before any other record (docs/log-format.md, "Reruns"); the writer puts
the whole opening in the first commit batch, which ``replay --verify`` checks.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from wf_engine.core.events import (
    AttemptEnded,
    CancelRequested,
    Event,
    RunCreated,
    RunFinished,
    RunnerStarted,
    RunOptions,
    Spawned,
    StepTransition,
    decode,
    type_of,
)
from wf_engine.core.model import Workflow
from wf_engine.core.records import Record, RecordChecker
from wf_engine.core.states import (
    CARRY_OVER_REASONS,
    LEGAL_TRANSITIONS,
    NOT_SELECTED,
    REUSED,
    TERMINAL_STATES,
    RunStatus,
    StepState,
)
from wf_engine.core.validation import WorkflowInvalid, workflow_from_data
from wf_engine.errors import CorruptLog, IllegalTransition

#: The step states as module globals, for the code run per record: ``StepState.READY`` goes
#: through the enum's metaclass on every access, about ten times the cost of reading a global.
_PENDING, _READY, _RUNNING = StepState.PENDING, StepState.READY, StepState.RUNNING
_SUCCEEDED, _FAILED = StepState.SUCCEEDED, StepState.FAILED
_SKIPPED, _CANCELLED = StepState.SKIPPED, StepState.CANCELLED
#: The reason each carried-over state must give.
_CARRIED = {_SUCCEEDED: REUSED, _SKIPPED: NOT_SELECTED}


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
        return self.state in TERMINAL_STATES or (self.state is _FAILED and self.final)


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
    #: The run this one reruns, from ``run_created``.
    origin_run_id: str | None = None
    #: A rerun whose opening is not over: carried-over steps may still be recorded.
    opening: bool = False

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
    """State right after the ``run_created`` record ``record`` (decoded here)."""
    return start(_created(record), _seq(record))


def _recorded_workflow(created: RunCreated, seq: int | None) -> Workflow:
    try:
        return workflow_from_data(created.workflow, source="run_created")
    except WorkflowInvalid as exc:
        # One line, so that ``wf list`` keeps one row per run.
        problems = "; ".join(map(str, exc.problems)) or "invalid workflow"
        raise IllegalTransition(seq, f"run_created is malformed: workflow: {problems}") from exc


def _created(record: Record) -> RunCreated:
    event = decode(record) if record.get("type") == "run_created" else None
    if not isinstance(event, RunCreated):
        raise IllegalTransition(_seq(record), "the log must start with run_created")
    return event


def start(
    created: RunCreated, seq: int | None = None, workflow: Workflow | None = None
) -> RunState:
    """State right after ``created``: every step PENDING, roots unblocked.

    ``workflow``: the already validated definition ``created.workflow`` was made from (by
    ``Workflow.to_json``), when the caller is the one creating the run; a reader always
    validates the definition it finds in the log.
    """
    if workflow is None:
        workflow = _recorded_workflow(created, seq)
    count = len(workflow.steps)
    dependents: list[list[int]] = [[] for _ in range(count)]
    remaining = [0] * count
    for index, step in enumerate(workflow.steps):
        remaining[index] = len(step.depends_on)
        for dependency in step.depends_on:
            dependents[workflow.index_of(dependency)].append(index)
    state = RunState(
        run_id=created.run_id,
        workflow=workflow,
        options=created.options,
        steps=[StepStatus() for _ in range(count)],
        dependents=dependents,
        remaining=remaining,
        open_steps=count,
        last_seq=seq or 0,
        origin_run_id=created.origin_run_id,
        opening=created.origin_run_id is not None,
    )
    state.unblocked.update((i, None) for i in range(count) if remaining[i] == 0)
    return state


def apply(state: RunState, record: Record) -> RunState:
    """Decode one record and fold it into ``state`` (in place); returns the state."""
    if state.finished is not None:
        raise IllegalTransition(_seq(record), f"{record.get('type')} after run_finished")
    return apply_event(state, decode(record), _seq(record))


def apply_event(state: RunState, event: Event, seq: int | None = None) -> RunState:
    """Fold one event into ``state`` (in place) and return it.

    ``seq`` names the record in an error and, when given, becomes ``state.last_seq``; the commit
    path folds before the batch is durable and sets ``last_seq`` only once it is.
    """
    if state.finished is not None:
        raise IllegalTransition(seq, f"{type_of(event)} after run_finished")
    if state.opening and not _keeps_opening(state, event):
        state.opening = False
    match event:
        case StepTransition() | AttemptEnded():
            _step(state, event, seq)
        case Spawned():
            _spawned(state, event, seq)
        case RunnerStarted():
            state.runner_generation += 1
            state.runner_pid = event.pid
        case CancelRequested():
            state.cancel_requested = True
            grace = event.grace_sec
            state.cancel_grace_sec = float(grace) if grace is not None else None
        case RunFinished():
            _run_finished(state, event, seq)
        case RunCreated():
            raise IllegalTransition(seq, "run_created may only open the log")
    if seq is not None:
        state.last_seq = seq
    return state


def _keeps_opening(state: RunState, event: Event) -> bool:
    """The first ``runner_started`` and the carried-over steps after it; anything else ends it."""
    if isinstance(event, RunnerStarted):
        return state.runner_generation == 0
    return isinstance(event, StepTransition) and event.reason in CARRY_OVER_REASONS


def _carry_over(state: RunState, event: StepTransition | AttemptEnded, seq: int | None) -> None:
    """Refuse a ``PENDING -> SUCCEEDED`` or a ``not_selected`` skip that is no carry-over."""
    what = f"step {event.step!r}: {event.from_} -> {event.to} ({event.reason or 'no reason'})"
    expected = _CARRIED.get(event.to)
    if expected is None or event.reason != expected or type(event) is not StepTransition:
        raise IllegalTransition(
            seq,
            f"{what}: a carried-over step goes to SUCCEEDED ({REUSED}) or SKIPPED "
            f"({NOT_SELECTED}), with no exit code",
        )
    if not state.opening or state.runner_generation != 1:
        raise IllegalTransition(
            seq, f"{what}: legal only in a rerun's opening, right after its runner_started"
        )


def _seq(record: Record) -> int | None:
    seq = record.get("seq")
    return seq if type(seq) is int else None


def _run_finished(state: RunState, event: RunFinished, seq: int | None) -> None:
    if state.open_steps:
        raise IllegalTransition(seq, f"run_finished with {state.open_steps} step(s) not terminal")
    if event.state is RunStatus.RUNNING:
        raise IllegalTransition(seq, "run_finished with state RUNNING")
    state.finished = event.state


def _spawned(state: RunState, event: Spawned, seq: int | None) -> None:
    index, status = _step_of(state, event.step, seq)
    if status.state is not _RUNNING or event.attempt != status.attempt:
        raise IllegalTransition(
            seq, f"spawned for step {state.step_id(index)!r} which is not running it"
        )
    status.process = ProcessRef(event.pid, event.pgid, event.start_id)


def _step_of(state: RunState, step_id: str, seq: int | None) -> tuple[int, StepStatus]:
    try:
        index = state.workflow.index_of(step_id)
    except KeyError:
        raise IllegalTransition(seq, f"unknown step {step_id!r}") from None
    return index, state.steps[index]


def _step(state: RunState, event: StepTransition | AttemptEnded, seq: int | None) -> None:
    # Three records in four are step records: the lookups of ``_step_of`` and the work of
    # leaving the old state are inline here, so a transition costs few calls.
    step_id = event.step
    try:
        index = state.workflow.index_of(step_id)
    except KeyError:
        raise IllegalTransition(seq, f"unknown step {step_id!r}") from None
    status = state.steps[index]
    source, target = event.from_, event.to
    if source is not status.state:
        raise IllegalTransition(
            seq, f"step {step_id!r} is {status.state}, record says from {source}"
        )
    if (source, target) not in LEGAL_TRANSITIONS:
        raise IllegalTransition(
            seq, f"illegal transition {source} -> {target} for step {step_id!r}"
        )
    if status.terminal:
        raise IllegalTransition(seq, f"step {step_id!r} already finished for good")
    if source is _PENDING and (target is _SUCCEEDED or event.reason in CARRY_OVER_REASONS):
        _carry_over(state, event, seq)
    expected_attempt = status.attempt + 1 if target is _RUNNING else status.attempt
    if event.attempt != expected_attempt:
        raise IllegalTransition(
            seq, f"step {step_id!r}: attempt {event.attempt}, expected {expected_attempt}"
        )
    # Leave the old state.
    if source is _PENDING:
        state.unblocked.pop(index, None)
        state.doomed.pop(index, None)
    elif source is _RUNNING:
        del state.running[index]
        status.process = None
    elif source is _FAILED:
        status.retry_at = None
    status.state = target
    status.epoch += 1
    # Only now is this step's heap entry stale, so it can be dropped if it sits on top.
    if source is _READY:
        _drop_stale(state, state.ready_heap, ready_entry_live)
    elif source is _FAILED:
        _drop_stale(state, state.retry_heap, retry_entry_live)
    _enter(state, index, status, event, seq)


def _enter(
    state: RunState,
    index: int,
    status: StepStatus,
    event: StepTransition | AttemptEnded,
    seq: int | None,
) -> None:
    target = status.state
    # Only an observed attempt end carries an outcome; a decided transition has none.
    ended = event if isinstance(event, AttemptEnded) else None
    exit_code = ended.exit_code if ended is not None else None
    if target is _READY:
        heapq.heappush(state.ready_heap, (index, status.epoch))
    elif target is _RUNNING:
        state.running[index] = None
        status.attempt += 1
        status.started_by = state.runner_generation
        status.exit_code = None
        status.reason = None
    elif target is _SUCCEEDED:
        state.succeeded += 1
        status.exit_code, status.reason = exit_code, event.reason
        for dependent in state.dependents[index]:
            state.remaining[dependent] -= 1
            if state.remaining[dependent] == 0 and state.steps[dependent].state is _PENDING:
                state.unblocked[dependent] = None
    elif target is _FAILED:
        status.exit_code, status.reason = exit_code, event.reason
        status.failures += 1
        status.final = ended is not None and ended.final
        if status.final:
            state.failed_final = True
            _doom_dependents(state, index)
        else:
            if ended is None or ended.retry_at is None:
                raise IllegalTransition(seq, "FAILED without final needs a valid retry_at")
            status.retry_at = ended.retry_at
            heapq.heappush(state.retry_heap, (status.retry_at, index, status.epoch))
    elif target is _SKIPPED:
        status.reason = event.reason
        _doom_dependents(state, index)
    elif target is _CANCELLED:
        status.reason = event.reason
        if ended is not None:
            status.exit_code = exit_code
    if status.terminal:
        state.open_steps -= 1


def _doom_dependents(state: RunState, index: int) -> None:
    for dependent in state.dependents[index]:
        if state.steps[dependent].state is _PENDING:
            state.doomed[dependent] = None
            state.unblocked.pop(dependent, None)


def ready_entry_live(state: RunState, entry: tuple[int, int]) -> bool:
    """A ``ready_heap`` entry ``(step, epoch)`` still stands for a READY step (else it is stale)."""
    status = state.steps[entry[0]]
    return status.state is _READY and status.epoch == entry[1]


def retry_entry_live(state: RunState, entry: tuple[int, int, int]) -> bool:
    """A ``retry_heap`` entry ``(due, step, epoch)`` still stands for a retry that waits."""
    status = state.steps[entry[1]]
    return status.state is _FAILED and status.epoch == entry[2]


def _drop_stale(state: RunState, heap: list[Any], is_live: Callable[[RunState, Any], bool]) -> None:
    """Pop dead entries off the top of ``heap``; the step just leaving is one of them now."""
    while heap and not is_live(state, heap[0]):
        heapq.heappop(heap)


#: Sees each record read, and the event it decoded to, once it is folded.
Observer = Callable[[Record, Event], None]


def fold_records(
    records: Iterable[Record],
    observe: Observer | None = None,
    source: str | None = None,
) -> RunState:
    """Build the state from records that start with ``run_created``, streaming: the readers' fold.

    Each record is decoded (every member checked, ``wf_engine.core.events``) and its ``ts``
    checked too: the records come from a file anyone could have edited.
    ``source`` is the log file they were read from, from line 1 on with no line skipped (a
    ``LogScan``), so the k-th record is on line k: a refused record is then reported as
    ``CorruptLog`` naming that file and line. ``observe`` sees each record, with its event, once
    it is folded (status collects timings this way).
    """
    check_ts = RecordChecker().check
    state: RunState | None = None
    event: Event
    for line, record in enumerate(records, start=1):
        try:
            check_ts(record)
            seq = record.get("seq")
            if type(seq) is not int:
                seq = None
            if state is not None:
                event = decode(record)
                apply_event(state, event, seq)
            else:
                created = _created(record)
                state, event = start(created, seq), created
        except IllegalTransition as exc:
            if source is None:
                raise
            raise CorruptLog(source, line, str(exc)) from exc
        if observe is not None:
            observe(record, event)
    if state is None:
        raise IllegalTransition(
            None,
            f"{source or 'the log'} is empty: no committed events "
            "(the run crashed while being created)",
        )
    return state
