"""``replay --verify``: re-run the engine's own policy over a log and check every record.

For each record, on the state folded from the records before it:

* the fold must accept it (a legal transition, attempts counting up, no seq gap — the reader
  already refuses gaps, duplicates and altered lines);
* a *decision* (PENDING->READY/SKIPPED, READY->RUNNING, FAILED->READY, cancelling an idle step,
  ``run_finished``) must be among what ``decide`` answers for that state at the record's ``ts``;
* an *observation* of an attempt's end must carry what the retry policy says for its exit
  (``final``, ``retry_delay_sec``, ``retry_at``); RUNNING->CANCELLED needs a stopping run and
  RUNNING->READY (interrupted) needs a runner that started after the attempt did.

The first divergence raises ``VerifyError`` naming the seq; ``verify_log`` names the file and line.

``decide`` answers with a whole stage of commands, and the engine writes them in that order, so
the ``Verifier`` checks a run of decisions against one answer instead of asking ``decide`` again
for each record: verifying a log costs what running it did, O(steps + edges).
"""

from __future__ import annotations

from collections.abc import Sequence

from wf_engine.core import clock
from wf_engine.core.decide import (
    AttemptResult,
    Command,
    FinishRun,
    Transition,
    attempt_finished,
    decide,
)
from wf_engine.core.fold import RunState, apply, initial_state
from wf_engine.core.states import RunStatus, StepState
from wf_engine.errors import CorruptLog, IllegalTransition
from wf_engine.log.eventlog import Record

_OBSERVED_FROM_RUNNING = {StepState.SUCCEEDED, StepState.FAILED, StepState.CANCELLED}
_POLICY_FIELDS = ("to", "final", "retry_delay_sec", "retry_at")


class VerifyError(IllegalTransition):
    """A record the engine would not have written from the state before it."""


class Verifier:
    """Checks records in log order; remembers the engine's last answer to reuse it."""

    def __init__(self) -> None:
        self._expected: list[Command] = []
        self._expected_at: int | None = None

    def check(self, state: RunState, record: Record) -> None:
        """Raise ``VerifyError`` if ``record`` is not what the engine would do in ``state``."""
        kind = record["type"]
        if kind == "run_finished":
            self._check_decided(state, record, FinishRun(RunStatus(record["state"])))
            return
        decided = _decision(state, record) if kind == "step" else None
        if decided is None:
            self._expected = []  # an observation changes the state decide saw
            return
        self._check_decided(state, record, decided)

    def _check_decided(self, state: RunState, record: Record, command: Command) -> None:
        now = _ts(record)
        if self._expected and self._expected_at == now and self._expected[0] == command:
            self._expected.pop(0)
            return
        answer = decide(state, now)
        if command not in answer:
            _fail(record, f"the engine would not decide {_describe(state, command)} here")
        answer.remove(command)
        self._expected, self._expected_at = answer, now


def verify_log(records: Sequence[Record], source: str) -> None:
    """Fold ``records`` again from scratch, checking each against the state before it.

    ``records`` are the log's committed records from line 1 on (as ``read_run`` keeps them,
    already checked by ``fold_records``), so the k-th is on line k of ``source``: a divergence is
    ``CorruptLog`` naming that file and line.
    """
    state = initial_state(records[0])
    verifier = Verifier()
    for line, record in enumerate(records[1:], start=2):
        try:
            verifier.check(state, record)
            apply(state, record)
        except IllegalTransition as exc:
            raise CorruptLog(source, line, str(exc)) from exc


def check_record(state: RunState, record: Record) -> None:
    """Check one record on its own (``Verifier`` is the fast way to check a whole log)."""
    Verifier().check(state, record)


def _decision(state: RunState, record: Record) -> Transition | None:
    """The decision a step record claims, or None for an observation (checked here)."""
    step_id = record.get("step")
    if not isinstance(step_id, str) or not state.workflow.has_step(step_id):
        return None  # the fold names it
    index = state.workflow.index_of(step_id)
    status = state.steps[index]
    try:
        source, target = StepState(record.get("from")), StepState(record.get("to"))
    except ValueError:
        return None  # the fold names it
    if source is not status.state:
        return None  # the fold names it
    if source is StepState.RUNNING and target is StepState.READY:
        if state.runner_generation <= status.started_by:
            _fail(record, f"step {step_id!r} interrupted, but its runner never changed")
        return None
    if source is StepState.RUNNING and target in _OBSERVED_FROM_RUNNING:
        _check_outcome(state, record, index)
        return None
    return Transition(index, target, record.get("reason"))


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
