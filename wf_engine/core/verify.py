"""``replay --verify``: re-run the engine's own policy over a log and check every record.

For each record, on the state folded from the records before it:

* the fold must accept it (a legal transition, attempts counting up, no seq gap — the reader
  already refuses gaps, duplicates and altered lines);
* a *decision* (PENDING->READY/SKIPPED, READY->RUNNING, FAILED->READY, cancelling an idle step,
  ``run_finished``) must be among what ``decide`` answers for that state at the record's ``ts``;
* an *observation* of an attempt's end must carry what the retry policy says for its exit
  (``final``, ``retry_delay_sec``, ``retry_at``); RUNNING->CANCELLED needs a stopping run and
  RUNNING->READY (interrupted) needs a runner that started after the attempt did;
* a rerun's carried-over step (``reused``, ``not_selected``) must be in the first commit batch
  (the fold already holds it to the opening) and, when the origin's state is given, each reuse
  must be one the origin allowed (``wf_engine.core.rerun.reuse_refusal``). Without the origin
  the log's own facts are checked and nothing more: the rerun's log is self-sufficient.

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
from wf_engine.core.events import AttemptEnded, Event, RunFinished, StepTransition, decode, encode
from wf_engine.core.fold import RunState, apply_event, initial_state
from wf_engine.core.records import Record
from wf_engine.core.rerun import reuse_refusal
from wf_engine.core.states import CARRY_OVER_REASONS, REUSED, StepState
from wf_engine.errors import CorruptLog, IllegalTransition

_OBSERVED_FROM_RUNNING = {StepState.SUCCEEDED, StepState.FAILED, StepState.CANCELLED}
#: Read per record: module globals, since ``StepState.X`` goes through the enum's metaclass.
_READY, _RUNNING, _CANCELLED = StepState.READY, StepState.RUNNING, StepState.CANCELLED
_PENDING, _SUCCEEDED = StepState.PENDING, StepState.SUCCEEDED
#: What the retry policy decides about an attempt's end, compared as the log spells them.
_POLICY_FIELDS = ("to", "final", "retry_delay_sec", "retry_at")


class VerifyError(IllegalTransition):
    """A record the engine would not have written from the state before it."""


class Verifier:
    """Checks events in log order; remembers the engine's last answer to reuse it."""

    def __init__(self) -> None:
        self._expected: list[Command] = []
        self._expected_at: int | None = None

    def check(self, state: RunState, event: Event, seq: int | None, now_us: int) -> None:
        """Raise ``VerifyError`` if ``event``, recorded at ``now_us``, is not what the engine
        would do in ``state``; ``seq`` names it."""
        decided: Command | None = None
        match event:
            case RunFinished():
                decided = FinishRun(event.state)
            case StepTransition() | AttemptEnded():
                decided = _decision(state, event, seq, now_us)
        if decided is None:
            self._expected = []  # an observation changes the state decide saw
            return
        if self._expected and self._expected_at == now_us and self._expected[0] == decided:
            self._expected.pop(0)
            return
        answer = decide(state, now_us)
        if decided not in answer:
            _fail(seq, f"the engine would not decide {_describe(state, decided)} here")
        answer.remove(decided)
        self._expected, self._expected_at = answer, now_us


def verify_log(
    entries: Sequence[tuple[Record, Event]], source: str, origin: RunState | None = None
) -> None:
    """Fold the log again from scratch, checking each event against the state before it.

    ``entries`` are the log's committed records from line 1 on, each with its event (as
    ``read_run`` keeps them, already decoded and checked by ``fold_records``), so the k-th is on
    line k of ``source``: a divergence is ``CorruptLog`` naming that file and line. ``origin``,
    the final state of the run a rerun names, if the caller could read it.
    """
    state = initial_state(entries[0][0])
    verifier = Verifier()
    ts: object = object()  # the records of a batch share one ts: parsed once per batch
    now_us = 0
    for line, (record, event) in enumerate(entries[1:], start=2):
        try:
            seq = record.get("seq")
            if record.get("ts") != ts:
                ts, now_us = record.get("ts"), _ts(record)
            if isinstance(event, StepTransition) and event.reason in CARRY_OVER_REASONS:
                _check_carry_over(state, record, event, origin)
            else:
                verifier.check(state, event, seq, now_us)
            apply_event(state, event, seq)
        except IllegalTransition as exc:
            raise CorruptLog(source, line, str(exc)) from exc


def _check_carry_over(
    state: RunState, record: Record, event: StepTransition, origin: RunState | None
) -> None:
    """A carried-over step: in the rerun's first batch, and a reuse the origin allowed."""
    seq = record.get("seq")
    if record.get("batch") != 1:
        _fail(seq, f"step {event.step!r} carried over outside the rerun's first commit batch")
    if origin is None or event.reason != REUSED or not state.workflow.has_step(event.step):
        return  # the fold names an unknown step
    refusal = reuse_refusal(state, origin, event.step)
    if refusal is not None:
        _fail(seq, f"step {event.step!r} reused from {origin.run_id}, but {refusal}")


def check_record(state: RunState, record: Record) -> None:
    """Check one record on its own (``Verifier`` is the fast way to check a whole log)."""
    Verifier().check(state, decode(record), record.get("seq"), _ts(record))


def _decision(
    state: RunState, event: StepTransition | AttemptEnded, seq: int | None, now_us: int
) -> Transition | None:
    """The decision a step event claims, or None for an observation (checked here).

    Told apart by the states, not by the event's type: a hand-made record that ends an attempt
    without an exit code is still held to the retry policy.
    """
    if not state.workflow.has_step(event.step):
        return None  # the fold names it
    index = state.workflow.index_of(event.step)
    source, target = event.from_, event.to
    if source is not state.steps[index].state:
        return None  # the fold names it
    if source is _PENDING and event.reason in CARRY_OVER_REASONS:
        return None  # a rerun's carried-over step: the fold holds it to the opening
    if source is _RUNNING and target is _READY:
        if isinstance(event, AttemptEnded) and event.reason == "interrupted":
            if not event.error:
                _fail(seq, f"step {event.step!r} interrupted by its executor without a reason")
            return None  # observed: the executor lost the attempt (a Dask worker left)
        if state.runner_generation <= state.steps[index].started_by:
            _fail(seq, f"step {event.step!r} interrupted, but its runner never changed")
        return None
    if source is _RUNNING and target in _OBSERVED_FROM_RUNNING:
        _check_outcome(state, event, index, seq, now_us)
        return None
    return Transition(index, target, event.reason)


def _check_outcome(
    state: RunState,
    event: StepTransition | AttemptEnded,
    index: int,
    seq: int | None,
    now_us: int,
) -> None:
    if event.to is _CANCELLED:
        if not state.stopping:
            _fail(seq, f"step {event.step!r} cancelled while the run was not stopping")
        return
    ended = event if isinstance(event, AttemptEnded) else None
    result = AttemptResult(
        step=index,
        attempt=event.attempt,
        exit_code=ended.exit_code if ended else None,
        timed_out=event.reason == "timeout",
        spawn_error=ended.error if ended and event.reason == "spawn_error" else None,
    )
    _, expected = encode(attempt_finished(state, result, now_us))
    _, recorded = encode(event)
    for key in _POLICY_FIELDS:
        if expected.get(key) != recorded.get(key):
            _fail(
                seq,
                f"step {event.step!r}: {key} is {recorded.get(key)!r}, "
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
        _fail(record.get("seq"), "missing or malformed ts")
        raise AssertionError("unreachable") from None


def _fail(seq: int | None, message: str) -> None:
    raise VerifyError(seq, f"verify failed: {message}")
