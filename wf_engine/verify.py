"""``replay --verify``: re-run the engine's own policy over a log and check every record.

For each record, on the state folded from the records before it:

* the fold must accept it (a legal transition, attempts counting up, no seq gap — the reader
  already refuses gaps, duplicates and altered lines);
* a *decision* (PENDING->READY/SKIPPED, READY->RUNNING, FAILED->READY, cancelling an idle step,
  ``run_finished``) must be among what ``decide`` answers for that state at the record's ``ts``;
* an *observation* of an attempt's end must carry what the retry policy says for its exit
  (``final``, ``retry_delay_sec``, ``retry_at``); RUNNING->CANCELLED needs a stopping run and
  RUNNING->READY (interrupted) needs a runner that started after the attempt did.

The first divergence raises ``VerifyError`` naming the seq.
"""

from __future__ import annotations

from wf_engine import clock
from wf_engine.decide import AttemptResult, FinishRun, Transition, attempt_finished, decide
from wf_engine.errors import IllegalTransition
from wf_engine.eventlog import Record
from wf_engine.fold import RunState
from wf_engine.states import RunStatus, StepState

_OBSERVED_FROM_RUNNING = {StepState.SUCCEEDED, StepState.FAILED, StepState.CANCELLED}
_POLICY_FIELDS = ("to", "final", "retry_delay_sec", "retry_at")


class VerifyError(IllegalTransition):
    """A record the engine would not have written from the state before it."""


def check_record(state: RunState, record: Record) -> None:
    """Raise ``VerifyError`` if ``record`` is not what the engine would do in ``state``."""
    kind = record["type"]
    if kind == "run_finished":
        _check_decided(state, record, FinishRun(RunStatus(record["state"])))
    elif kind == "step":
        _check_step(state, record)


def _check_step(state: RunState, record: Record) -> None:
    step_id = record["step"]
    if not state.workflow.has_step(step_id):
        return  # the fold names it
    index = state.workflow.index_of(step_id)
    status = state.steps[index]
    source, target = StepState(record["from"]), StepState(record["to"])
    if source is not status.state:
        return  # the fold names it
    if source is StepState.RUNNING and target is StepState.READY:
        if state.runner_generation <= status.started_by:
            _fail(record, f"step {step_id!r} interrupted, but its runner never changed")
    elif source is StepState.RUNNING and target in _OBSERVED_FROM_RUNNING:
        _check_outcome(state, record, index)
    else:
        _check_decided(state, record, Transition(index, target, record.get("reason")))


def _check_outcome(state: RunState, record: Record, index: int) -> None:
    if record["to"] == StepState.CANCELLED.value:
        if not state.stopping:
            _fail(record, f"step {record['step']!r} cancelled while the run was not stopping")
        return
    reason = record.get("reason")
    result = AttemptResult(
        step=index,
        attempt=record["attempt"],
        exit_code=record.get("exit_code"),
        timed_out=reason == "timeout",
        spawn_error=record.get("error") if reason == "spawn_error" else None,
    )
    _, expected = attempt_finished(state, result, _ts(record))
    for key in _POLICY_FIELDS:
        if expected.get(key) != record.get(key):
            _fail(
                record,
                f"step {record['step']!r}: {key} is {record.get(key)!r}, "
                f"the retry policy gives {expected.get(key)!r}",
            )


def _check_decided(state: RunState, record: Record, command: Transition | FinishRun) -> None:
    if command not in decide(state, _ts(record)):
        _fail(record, f"the engine would not decide {_describe(state, command)} here")


def _describe(state: RunState, command: Transition | FinishRun) -> str:
    if isinstance(command, FinishRun):
        return f"run_finished {command.status.value}"
    current = state.steps[command.step].state.value
    return f"{state.step_id(command.step)} {current} -> {command.to.value}"


def _ts(record: Record) -> int:
    try:
        return clock.from_iso(record["ts"])
    except (KeyError, TypeError, ValueError):
        _fail(record, "missing or malformed ts")
        raise AssertionError("unreachable") from None


def _fail(record: Record, message: str) -> None:
    raise VerifyError(record.get("seq"), f"verify failed: {message}")
