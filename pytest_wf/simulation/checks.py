"""The properties every simulated history must keep, each failure said in one sentence.

Checked on the finished log, read back through the real reader, fold and ``replay --verify``
(``wf_engine.core.verify``), and against the uncrashed history of the same scenario. The world
adds what only a step's own side effects could show (``world.World``'s violations: overlapping
attempts, an attempt started twice, a step executed again after its durable SUCCEEDED, a rerun's
carried-over step executed). A rerun's log is verified with its origin's final state at hand, as
``wf replay --verify`` does when the origin is in the store, so each reuse is held to what the
origin allows; and its end is held to its plan (``check_plan``).
"""

from __future__ import annotations

from pathlib import Path

from wf_engine.core import clock
from wf_engine.core.events import Event
from wf_engine.core.fold import RunState, fold_records
from wf_engine.core.records import Record
from wf_engine.core.rerun import Action, RerunPlan
from wf_engine.core.states import CARRY_OVER_REASONS, NOT_SELECTED, REUSED, RunStatus, StepState
from wf_engine.core.verify import verify_log
from wf_engine.errors import CorruptLog, IllegalTransition
from wf_engine.log.eventlog import LogScan

from .history import History

#: What must match the uncrashed run, per step, when the scenario fixes each step's end.
_COMPARED = ("state", "exit_code", "reason", "final", "failures")


def check_log(history: History, scratch_log: Path) -> None:
    """Read the final log as every command does; fold it, verify it; keep the state."""
    if not history.log:
        return  # never created (a crash inside the first batch); nothing was promised
    scratch_log.write_bytes(history.log)
    scan = LogScan(str(scratch_log))
    entries: list[tuple[Record, Event]] = []
    try:
        state = fold_records(
            scan, observe=lambda record, event: entries.append((record, event)), source="log"
        )
        verify_log(entries, "log", history.rerun.origin if history.rerun is not None else None)
    except (CorruptLog, IllegalTransition) as exc:
        history.violations.append(f"the final log does not verify: {exc}")
        return
    history.state, history.records = state, [record for record, _ in entries]
    if scan.torn is not None:
        history.violations.append(f"the final log has a {scan.torn.describe()}")
    if state.finished is None:
        history.violations.append("the run did not finish")
    for process in history.processes:
        if process.alive:
            history.violations.append(
                f"step {process.step!r} attempt {process.attempt} (pid {process.pid}) still runs "
                "after the run finished"
            )
    _check_cancel(history, state)
    if history.rerun is not None:
        check_plan(history, state, history.rerun.plan)


def _check_cancel(history: History, state: RunState) -> None:
    """A cancel that reached the run stops it: nothing starts after it, the run is CANCELLED."""
    cancelled = next((r["seq"] for r in history.records if r["type"] == "cancel_requested"), None)
    finished_us = clock.from_iso(history.records[-1]["ts"])
    sent = history.cancel_sent_us
    if cancelled is None:
        if sent is not None and sent < finished_us:
            history.violations.append(
                "wf cancel was sent before the run finished, and no cancel_requested was recorded"
            )
        return
    for record in history.records:
        if record["seq"] > cancelled and record["type"] == "step" and record["to"] == "RUNNING":
            history.violations.append(
                f"step {record['step']!r} started (seq {record['seq']}) after the cancel "
                f"(seq {cancelled})"
            )
    everything_succeeded = state.succeeded == len(state.steps)
    expected = RunStatus.SUCCEEDED if everything_succeeded else RunStatus.CANCELLED
    if state.finished is not expected:
        history.violations.append(
            f"the run was cancelled (seq {cancelled}) and ended {state.status.value}, "
            f"not {expected.value}"
        )


#: How a step the plan does not run must end, by the plan's action.
_CARRIED = {Action.REUSE: REUSED, Action.SKIP: NOT_SELECTED}


def check_plan(history: History, state: RunState, plan: RerunPlan) -> None:
    """A rerun ends as its plan said: a carried-over step as carried over (the world saw whether
    it executed), and a step the plan runs ran, unless a failed dependency or a stopping run
    (a cancel, ``--fail-fast``) left it SKIPPED or CANCELLED before it started."""
    for step_id, step_plan in plan.steps.items():
        status = state.steps[state.workflow.index_of(step_id)]
        carried = _CARRIED.get(step_plan.action)
        if carried is not None:
            ok = status.reason == carried and status.attempt == 0
        elif status.reason in CARRY_OVER_REASONS:
            ok = False
        else:
            ok = (
                status.attempt > 0
                or status.state is StepState.CANCELLED
                or (status.state is StepState.SKIPPED and status.reason == "dependency_failed")
            )
        if not ok:
            history.violations.append(
                f"step {step_id!r}, planned {step_plan.action.value} ({step_plan.why}), ended "
                f"{status.state.value} (reason {status.reason}) after {status.attempt} attempts"
            )


def compare(reference: History, history: History) -> None:
    """What a crash and a resume must not change: the run's end and, where the scenario fixes
    it, each step's end and failures used (an interrupted attempt uses up no retry)."""
    expected, actual = reference.state, history.state
    if expected is None or actual is None or history.scenario.cancel_at_sec is not None:
        return
    if actual.finished is not expected.finished:
        history.violations.append(
            f"the run ended {actual.status.value}, the uncrashed run {expected.status.value}"
        )
    if not history.scenario.compares_steps:
        return
    for index, step in enumerate(expected.workflow.steps):
        want, got = expected.steps[index], actual.steps[index]
        diffs = [
            f"{name} {getattr(got, name)!r} (uncrashed: {getattr(want, name)!r})"
            for name in _COMPARED
            if _value(getattr(got, name)) != _value(getattr(want, name))
        ]
        if diffs:
            history.violations.append(f"step {step.id!r} ended with " + ", ".join(diffs))


def _value(value: object) -> object:
    return value.value if isinstance(value, StepState) else value
