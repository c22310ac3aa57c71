"""Reading a run without owning it: ``status``, ``replay`` and ``list`` are built from here.

Everything comes from one streaming pass over ``events.jsonl``: the fold gives the state, and a
side observer collects timings from ``ts`` (which the fold itself never reads). Nothing here
writes, so reading a live run is safe; a torn tail is reported, never cut.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from wf_engine.core.events import AttemptEnded, Event, RunCreated, RunFinished, StepTransition
from wf_engine.core.fold import RunState, fold_records
from wf_engine.core.records import Record
from wf_engine.core.states import StepState
from wf_engine.log.eventlog import LogScan, TornTail
from wf_engine.runtime.ownership import is_owned
from wf_engine.runtime.store import RunPaths


@dataclass(slots=True)
class StepTimes:
    started: str | None = None
    finished: str | None = None


@dataclass(slots=True)
class Timings:
    """When things happened, from ``ts`` (informational; never used by the fold)."""

    created: str | None = None
    finished: str | None = None
    steps: dict[str, StepTimes] = field(default_factory=dict)

    def observe(self, ts: str, event: Event) -> None:
        """Note when ``event``, recorded at ``ts``, started or ended something."""
        match event:
            case RunCreated():
                self.created = ts
            case RunFinished():
                self.finished = ts
            case StepTransition() | AttemptEnded():
                times = self.steps.setdefault(event.step, StepTimes())
                if event.to is StepState.RUNNING:
                    times.started = times.started or ts
                    times.finished = None
                elif event.to in _ENDS:
                    times.finished = ts


_ENDS = {StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED}


@dataclass(slots=True)
class RunView:
    """A run as read from its log: state, timings, and the torn tail if there is one."""

    state: RunState
    timings: Timings
    torn: TornTail | None
    runner_alive: bool


#: A record as read, and the event it decoded to: what ``replay`` shows and verifies.
Entry = tuple[Record, Event]


def read_run(paths: RunPaths, until: int | None = None, keep: list[Entry] | None = None) -> RunView:
    """Fold the log (up to ``until`` seq, if given); ``keep`` collects what was folded."""
    scan = LogScan(paths.events)
    timings = Timings()

    def observe(record: Record, event: Event) -> None:
        timings.observe(record["ts"], event)
        if keep is not None:
            keep.append((record, event))

    records: Iterable[Record] = scan
    if until is not None:
        records = _until(scan, until)
    state = fold_records(records, observe, source=paths.events)
    torn = scan.torn if until is None else None
    return RunView(state, timings, torn, is_owned(paths.runner_lock))


def _until(records: Iterable[Record], last_seq: int) -> Iterable[Record]:
    for record in records:
        if record["seq"] > last_seq:
            return
        yield record


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


def step_summary(state: RunState, timings: Timings) -> dict[str, dict[str, Any]]:
    """Per-step fields shared by ``status --json`` and ``replay --json`` (with timings)."""
    steps = step_states(state)
    for step_id, entry in steps.items():
        times = timings.steps.get(step_id, StepTimes())
        entry["started"] = times.started
        entry["finished"] = times.finished
    return steps


def live_summary(state: RunState) -> dict[str, Any]:
    """``wf run --json``: the state the runner held in memory when it stopped (not re-read)."""
    return {
        "run_id": state.run_id,
        "workflow_id": state.workflow.workflow_id,
        "state": state.status.value,
        "last_seq": state.last_seq,
        "steps": step_states(state),
    }


def run_summary(view: RunView) -> dict[str, Any]:
    """The ``wf status --json`` object."""
    state = view.state
    summary: dict[str, Any] = {
        "run_id": state.run_id,
        "workflow_id": state.workflow.workflow_id,
        "state": state.status.value,
        "runner_alive": view.runner_alive,
        "created": view.timings.created,
        "finished": view.timings.finished,
        "last_seq": state.last_seq,
        "steps": step_summary(state, view.timings),
    }
    if view.torn is not None:
        summary["torn_tail"] = {"offset": view.torn.offset, "bytes": view.torn.length}
    return summary
