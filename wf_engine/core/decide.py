"""Decide: the engine's scheduling policy as pure functions of state and time.

``decide(state, now)`` answers "what happens next?" with commands; it never mutates the state,
never reads the clock or the disk. The shell turns commands into events, folds them, makes
them durable, and calls ``decide`` again until it has nothing more to say. ``replay --verify`` calls
the very same function on the state before each recorded decision to check that the engine
would have made it.

A call answers in stages, and returns at the first stage that has something to do, so every stage
sees the results of the one before it:

1. stopping (cancel, or ``--fail-fast`` after a failure): cancel every idle step, finish when
   nothing runs;
2. promotions: doomed PENDING steps -> SKIPPED, unblocked PENDING -> READY, due retries -> READY;
3. starts: the READY steps first in definition order, up to ``max_parallel`` running;
4. finish when every step is terminal.

The outcome of an attempt (exit code, timeout, spawn error) is an observation, not a decision;
``attempt_finished`` still computes its event here, because the retry policy lives here. Commands
become typed events (``wf_engine.core.events``) through ``command_event``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wf_engine.core import clock
from wf_engine.core.events import AttemptEnded, RunFinished, StepTransition
from wf_engine.core.fold import RunState, ready_entry_live, retry_entry_live
from wf_engine.core.states import RunStatus, StepState


@dataclass(frozen=True, slots=True)
class Transition:
    """Move a step to ``to`` (from whatever state it is in now)."""

    step: int
    to: StepState
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class FinishRun:
    status: RunStatus


Command = Transition | FinishRun


def decide(state: RunState, now_us: int) -> list[Command]:
    """The next commands for ``state`` at time ``now_us``; empty when there is nothing to do."""
    if state.finished is not None:
        return []
    if state.stopping:
        return _stop(state)
    promotions = _promotions(state, now_us)
    if promotions:
        return promotions
    free = state.options.max_parallel - len(state.running)
    if free > 0 and state.ready_heap:
        live = _live_entries(state.ready_heap, lambda e: ready_entry_live(state, e), limit=free)
        starts: list[Command] = [Transition(index, StepState.RUNNING) for index, _ in live]
        if starts:
            return starts
    if state.open_steps == 0:
        return [FinishRun(final_status(state))]
    return []


def final_status(state: RunState) -> RunStatus:
    """SUCCEEDED when every step did (a cancel that came too late changes nothing)."""
    if state.succeeded == len(state.steps):
        return RunStatus.SUCCEEDED
    if state.cancel_requested:
        return RunStatus.CANCELLED
    if state.failed_final:
        return RunStatus.FAILED
    return RunStatus.SUCCEEDED


def next_retry_at(state: RunState) -> int | None:
    """When the earliest waiting retry falls due (the shell's next timer), if any."""
    live = _live_entries(state.retry_heap, lambda e: retry_entry_live(state, e), limit=1)
    return live[0][0] if live else None


def _stop(state: RunState) -> list[Command]:
    if state.open_steps > len(state.running):
        return [
            Transition(index, StepState.CANCELLED, "cancelled")
            for index, status in enumerate(state.steps)
            if not status.terminal and status.state is not StepState.RUNNING
        ]
    if state.open_steps == 0:
        return [FinishRun(final_status(state))]
    return []


def _promotions(state: RunState, now_us: int) -> list[Command]:
    commands: list[Command] = [
        Transition(index, StepState.SKIPPED, "dependency_failed") for index in sorted(state.doomed)
    ]
    commands.extend(Transition(index, StepState.READY) for index in sorted(state.unblocked))
    if state.retry_heap and state.retry_heap[0][0] <= now_us:
        due = _live_entries(
            state.retry_heap, lambda e: retry_entry_live(state, e), limit=None, until=now_us
        )
        commands.extend(Transition(entry[1], StepState.READY) for entry in due)
    return commands


def _live_entries(
    heap: list[Any], is_live: Callable[[Any], bool], limit: int | None, until: int | None = None
) -> list[Any]:
    """The smallest live entries of ``heap`` in order, without changing it.

    A best-first walk of the heap's tree: O(k log k) for k entries visited, however large the
    heap. Stale entries are stepped over but their subtrees are still explored.
    """
    found: list[Any] = []
    frontier: list[tuple[Any, int]] = [(heap[0], 0)] if heap else []
    while frontier and (limit is None or len(found) < limit):
        entry, position = heapq.heappop(frontier)
        if until is not None and entry[0] > until:
            break
        if is_live(entry):
            found.append(entry)
        for child in (2 * position + 1, 2 * position + 2):
            if child < len(heap):
                heapq.heappush(frontier, (heap[child], child))
    return found


# -- events -----------------------------------------------------------------------------------


def transition_event(state: RunState, command: Transition) -> StepTransition:
    """The ``step`` event for a decided transition."""
    status = state.steps[command.step]
    attempt = status.attempt + 1 if command.to is StepState.RUNNING else status.attempt
    return StepTransition(
        state.step_id(command.step), status.state, command.to, attempt, command.reason
    )


def command_event(state: RunState, command: Command) -> StepTransition | RunFinished:
    if isinstance(command, FinishRun):
        return RunFinished(command.status)
    return transition_event(state, command)


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What a worker observed about one attempt; becomes exactly one step record."""

    step: int
    attempt: int
    exit_code: int | None = None
    timed_out: bool = False
    #: The shell stopped it because the run is stopping (cancel or fail-fast).
    stopped: bool = False
    spawn_error: str | None = None
    stderr_tail: str = ""
    #: Processes that left the attempt's group, found by its mark and killed when it ended.
    leaked_pids: tuple[int, ...] = ()
    #: The executor lost the attempt (its Dask worker left the cluster): why, in words.
    interrupted: str | None = None


def attempt_finished(state: RunState, result: AttemptResult, now_us: int) -> AttemptEnded:
    """The event for a finished attempt, with the retry policy applied to a failure.

    An attempt the executor lost goes back to READY without a failure, like one a dead
    runner left behind, unless it was being stopped or had timed out (then that decides).
    """
    step = state.workflow.steps[result.step]
    if result.interrupted is not None and not (result.stopped or result.timed_out):
        return AttemptEnded(
            step=step.id,
            attempt=result.attempt,
            exit_code=None,
            to=StepState.READY,
            reason="interrupted",
            error=result.interrupted,
        )
    #: Kept on a failure or a cancel (never on a success), and only if there is one.
    tail = result.stderr_tail or None
    error = None
    if result.stopped:
        to, reason = StepState.CANCELLED, "cancelled"
    elif result.spawn_error is None and not result.timed_out and result.exit_code == 0:
        to, reason, tail = StepState.SUCCEEDED, "exit", None
    else:
        to, error = StepState.FAILED, result.spawn_error or None
        reason = "spawn_error" if error else "timeout" if result.timed_out else "exit"
    final, delay, retry_at = False, None, None
    if to is StepState.FAILED:
        failures = state.steps[result.step].failures + 1
        if failures > step.retries:
            final = True
        else:
            delay = step.backoff_sec(failures)
            retry_at = now_us + clock.seconds_to_us(delay)
    return AttemptEnded(
        step=step.id,
        attempt=result.attempt,
        exit_code=result.exit_code,
        to=to,
        reason=reason,
        error=error,
        final=final,
        retry_delay_sec=delay,
        retry_at=retry_at,
        stderr_tail=tail,
        leaked_pids=result.leaked_pids,
    )


def interrupted_event(state: RunState, index: int) -> StepTransition:
    """A dead runner's RUNNING step goes back to READY without using up a retry."""
    return StepTransition(
        state.step_id(index),
        StepState.RUNNING,
        StepState.READY,
        state.steps[index].attempt,
        "interrupted",
    )
