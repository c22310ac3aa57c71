"""Reading a run without owning it: ``status``, ``replay`` and ``list`` are built from here.

Everything comes from one streaming pass over ``events.jsonl``: the fold gives the state, and a
side observer collects what the fold does not keep (times from ``ts``, which the fold itself
never reads; the stderr tail and spawn error of each step's last failed attempt; the origin of a
rerun). Nothing here writes, so reading a live run is safe; a torn tail is reported, never cut.

The observer sees every record of the log, so it does O(1) cheap work per record; whatever is
derived per step (durations, counts) is computed once, when a summary is asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from wf_engine.core import clock
from wf_engine.core.events import AttemptEnded, Event, RunCreated, RunFinished, StepTransition
from wf_engine.core.fold import RunState, fold_records
from wf_engine.core.records import Record
from wf_engine.core.states import StepState
from wf_engine.log.eventlog import LogScan, TornTail
from wf_engine.runtime.ownership import is_owned
from wf_engine.runtime.store import RunPaths

#: Every step state, in the order ``counts`` lists them.
STATE_ORDER = tuple(state.value for state in StepState)


@dataclass(slots=True)
class StepTimes:
    started: str | None = None
    finished: str | None = None
    #: The last failed attempt's ``stderr_tail`` and spawn ``error`` (kept while it is FAILED).
    stderr_tail: str | None = None
    error: str | None = None


@dataclass(slots=True)
class Timings:
    """What the fold does not keep: when things happened (from ``ts``), the last failure's
    stderr tail, the origin of a rerun."""

    created: str | None = None
    finished: str | None = None
    #: ``ts`` of the last record read: "now" for a log that is not growing any more.
    last: str | None = None
    origin_run_id: str | None = None
    steps: dict[str, StepTimes] = field(default_factory=dict)

    def observe(self, ts: str, event: Event) -> None:
        """Note what ``event``, recorded at ``ts``, started, ended or said."""
        self.last = ts
        match event:
            case StepTransition() | AttemptEnded():
                times = self.steps.get(event.step)
                if times is None:
                    times = self.steps[event.step] = StepTimes()
                target = event.to
                if target is StepState.RUNNING:
                    times.started = times.started or ts
                    times.finished = None
                elif target in _ENDS:
                    times.finished = ts
                if target is StepState.FAILED and type(event) is AttemptEnded:
                    times.stderr_tail, times.error = event.stderr_tail, event.error
            case RunCreated():
                self.created = ts
            case RunFinished():
                self.finished = ts


_ENDS = {StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED}


@dataclass(slots=True)
class RunView:
    """A run as read from its log: state, timings, and the torn tail if there is one."""

    state: RunState
    timings: Timings
    torn: TornTail | None
    runner_alive: bool

    @property
    def interrupted(self) -> bool:
        """Unfinished, and no runner owns it: ``wf resume`` continues it."""
        return self.state.finished is None and not self.runner_alive


#: A record as read, and the event it decoded to: what ``replay`` shows and verifies.
Entry = tuple[Record, Event]


def read_run(paths: RunPaths, until: int | None = None, keep: list[Entry] | None = None) -> RunView:
    """Fold the log (up to ``until`` seq, if given); ``keep`` collects what was folded."""
    scan = LogScan(paths.events)
    timings = Timings()
    created: list[Record] = []

    def observe(record: Record, event: Event) -> None:
        timings.observe(record["ts"], event)
        if keep is not None:
            keep.append((record, event))
        if not created:
            created.append(record)

    records: Iterable[Record] = scan
    if until is not None:
        records = _until(scan, until)
    state = fold_records(records, observe, source=paths.events)
    origin = created[0].get("origin_run_id") if created else None
    timings.origin_run_id = origin if isinstance(origin, str) else None
    torn = scan.torn if until is None else None
    return RunView(state, timings, torn, is_owned(paths.runner_lock))


def _until(records: Iterable[Record], last_seq: int) -> Iterable[Record]:
    for record in records:
        if record["seq"] > last_seq:
            return
        yield record


# -- times ---------------------------------------------------------------------------------------


class _Seconds:
    """Durations between ``ts`` values; the records of a batch share one ``ts``, so each
    distinct one is converted once."""

    def __init__(self) -> None:
        self.known: dict[str, int] = {}

    def us(self, text: str) -> int:
        value = self.known.get(text)
        if value is None:
            value = self.known[text] = clock.from_iso(text)
        return value

    def between(self, start: str | None, end: str | int | None) -> float | None:
        if start is None or end is None:
            return None
        end_us = end if isinstance(end, int) else self.us(end)
        return round(max(0, end_us - self.us(start)) / 1e6, 6)


# -- summaries -----------------------------------------------------------------------------------


def step_states(state: RunState) -> dict[str, dict[str, Any]]:
    """Per-step state, attempts, exit code and reason: what the fold knows of each step."""
    steps: dict[str, dict[str, Any]] = {}
    for index, status in enumerate(state.steps):
        entry: dict[str, Any] = {
            "state": status.state.value,
            "attempts": status.attempt,
            "exit_code": status.exit_code,
            "reason": status.reason,
        }
        if status.state is StepState.FAILED:
            entry["final"] = status.final
        steps[state.step_id(index)] = entry
    return steps


def step_summary(
    state: RunState, timings: Timings, now_us: int | None = None
) -> dict[str, dict[str, Any]]:
    """Per-step fields shared by ``status --json`` and ``replay --json``.

    On top of ``step_states``: ``started`` and ``finished`` (``ts`` of the first start and of
    the end), ``duration_sec`` between them (for a RUNNING step, up to ``now_us``, else up to
    the last record), and for a FAILED step the last attempt's ``stderr_tail``, spawn ``error``
    and, when it waits to be retried, ``retry_at``. All of it comes from the log alone, so the
    same log gives the same summary (``now_us`` aside).
    """
    steps = step_states(state)
    seconds = _Seconds().between
    empty = StepTimes()
    until: str | int | None = now_us if now_us is not None else timings.last
    for index, (step_id, entry) in enumerate(steps.items()):
        times = timings.steps.get(step_id, empty)
        status = state.steps[index]
        entry["started"] = times.started
        entry["finished"] = times.finished
        if status.state is StepState.RUNNING:
            entry["duration_sec"] = seconds(times.started, until)
        else:
            entry["duration_sec"] = seconds(times.started, times.finished)
        failed = status.state is StepState.FAILED
        entry["stderr_tail"] = times.stderr_tail if failed else None
        entry["error"] = times.error if failed else None
        retry_at = status.retry_at if failed and not status.final else None
        entry["retry_at"] = clock.to_iso(retry_at) if retry_at is not None else None
    return steps


def state_counts(state: RunState) -> dict[str, int]:
    """How many steps are in each state (every state listed, zeros too)."""
    counts = dict.fromkeys(STATE_ORDER, 0)
    for status in state.steps:
        counts[status.state.value] += 1
    return counts


def live_summary(state: RunState) -> dict[str, Any]:
    """``wf run --json``: the state the runner held in memory when it stopped (not re-read)."""
    return {
        "run_id": state.run_id,
        "workflow_id": state.workflow.workflow_id,
        "state": state.status.value,
        "last_seq": state.last_seq,
        "steps": step_states(state),
    }


def run_summary(
    view: RunView, now_us: int | None = None, rerun_as: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``wf status --json`` object; ``rerun_as``, the runs that rerun this one (the caller
    looks for them: this run's log cannot name them).

    A RUNNING step's ``duration_sec`` runs up to ``now_us`` (default: the clock) while a runner
    owns the run, else up to the last record; the run's ``duration_sec`` likewise.
    """
    state = view.state
    timings = view.timings
    now: int | None = None
    if view.runner_alive and state.finished is None:
        now = clock.now_us() if now_us is None else now_us
    end: str | int | None = timings.finished or (now if now is not None else timings.last)
    summary: dict[str, Any] = {
        "run_id": state.run_id,
        "workflow_id": state.workflow.workflow_id,
        "state": state.status.value,
        "runner_alive": view.runner_alive,
        "interrupted": view.interrupted,
        "rerun_of": timings.origin_run_id,
        "rerun_as": list(rerun_as),
        "created": timings.created,
        "finished": timings.finished,
        "duration_sec": _Seconds().between(timings.created, end),
        "last_seq": state.last_seq,
        "counts": state_counts(state),
        "steps": step_summary(state, timings, now),
    }
    if view.torn is not None:
        summary["torn_tail"] = {"offset": view.torn.offset, "bytes": view.torn.length}
    return summary
