"""Every record type of the log as a frozen dataclass, and the one codec between them and JSON.

The engine builds, folds and inspects typed events; only the log (and the hooks, whose documented
contract is plain dicts) sees JSON. ``encode`` gives a record's type and payload in the very order
of members the log has always had, so a record the engine wrote re-encodes to the same bytes
(``tests/golden``): the order *is* the format, since the checksum covers it. ``decode`` is the
only way back, and it trusts nothing: it checks every member against the one table of shapes
(``wf_engine.core.records``) before building an event, so the fold, ``replay --verify`` and the
renderers can read attributes without guarding.

A ``step`` record is two things. A *decided* transition (``decide`` chose it, or a take-over
recorded an interruption) carries ``step, from, to, attempt[, reason]``. An *observed* attempt
end carries its ``exit_code`` (``null`` when the process never started) between ``attempt`` and
``to``, then the retry policy's verdict. The ``exit_code`` member tells them apart on reading:
with it a record decodes to ``AttemptEnded``, without it to ``StepTransition``.

Members a reader does not use are dropped on decoding (a newer writer may add some); so are
``null`` where the engine writes nothing: decoding then encoding is the identity on every record
the engine writes, not on hand-forged ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wf_engine.core import clock
from wf_engine.core.records import SCHEMAS, Record, Schema, check_members
from wf_engine.core.states import RunStatus, StepState
from wf_engine.errors import IllegalTransition


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Options fixed when the run is created and stored in ``run_created``."""

    max_parallel: int
    fail_fast: bool
    #: Absolute folder of the workflow file: steps' default working directory.
    base_dir: str
    #: What runs the attempts when it is not ``local`` (``dask``), and the scheduler it
    #: connects to (``None``: a LocalCluster of its own), so ``wf resume`` uses the same.
    executor: str | None = None
    scheduler: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "max_parallel": self.max_parallel,
            "fail_fast": self.fail_fast,
            "base_dir": self.base_dir,
        }
        # Omitted for a local run, so its log is byte for byte what it was before executors.
        if self.executor is not None:
            data["executor"] = self.executor
        if self.scheduler is not None:
            data["scheduler"] = self.scheduler
        return data


@dataclass(frozen=True, slots=True)
class RunCreated:
    """The first record: the whole definition, so the log alone can rebuild the run."""

    run_id: str
    #: The definition as written (``Workflow.to_json()``); the fold validates it into a Workflow.
    #: Kept as JSON so that a log re-encodes to its own bytes whatever wrote the definition.
    workflow: dict[str, Any] = field(hash=False)
    options: RunOptions
    #: The run this one reruns (``wf rerun``); ``None`` for any other run, and then not written,
    #: so the logs of runs that are not reruns keep their bytes.
    origin_run_id: str | None = None


@dataclass(frozen=True, slots=True)
class RunnerStarted:
    """A runner took ownership: the fold counts generations (an interruption needs a new one)."""

    pid: int
    argv: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class StepTransition:
    """A decided transition: ``decide`` chose it, or a take-over found the step interrupted."""

    step: str
    from_: StepState
    to: StepState
    attempt: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptEnded:
    """An observed attempt end, with the retry policy's verdict on a failure."""

    step: str
    attempt: int
    exit_code: int | None
    to: StepState
    reason: str | None
    from_: StepState = StepState.RUNNING
    #: Why the process could not start (``spawn_error`` only).
    error: str | None = None
    #: A FAILED attempt with no retry left; else ``retry_delay_sec`` and ``retry_at`` say when.
    final: bool = False
    retry_delay_sec: float | None = None
    #: When the retry falls due, in microseconds (spelled as ``ts`` is in the log).
    retry_at: int | None = None
    stderr_tail: str | None = None
    #: Processes that left the attempt's group, found by its mark and killed when it ended.
    leaked_pids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Spawned:
    """An attempt's process exists: what identifies it, so no later reader signals a stranger."""

    step: str
    attempt: int
    pid: int
    pgid: int
    start_id: str | None


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """The run is stopping (``wf cancel`` or a signal); ``grace_sec`` overrides steps' grace."""

    source: str | None = None
    pid: int | None = None
    grace_sec: float | None = None


@dataclass(frozen=True, slots=True)
class RunFinished:
    """Always the last record."""

    state: RunStatus


Event = (
    RunCreated
    | RunnerStarted
    | StepTransition
    | AttemptEnded
    | Spawned
    | CancelRequested
    | RunFinished
)


def type_of(event: Event) -> str:
    """The record type ``event`` is written as."""
    return _TYPES[type(event)]


def encode(event: Event) -> tuple[str, dict[str, Any]]:
    """``event`` as its record type and payload, members in the order the log has always had."""
    payload: dict[str, Any]
    match event:
        case StepTransition():
            payload = {
                "step": event.step,
                "from": _SPELLING[event.from_],
                "to": _SPELLING[event.to],
                "attempt": event.attempt,
            }
            if event.reason is not None:
                payload["reason"] = event.reason
        case AttemptEnded():
            payload = {
                "step": event.step,
                "from": _SPELLING[event.from_],
                "attempt": event.attempt,
                "exit_code": event.exit_code,
                "to": _SPELLING[event.to],
                "reason": event.reason,
            }
            if event.error is not None:
                payload["error"] = event.error
            if event.final:
                payload["final"] = True
            if event.retry_delay_sec is not None:
                payload["retry_delay_sec"] = event.retry_delay_sec
            if event.retry_at is not None:
                payload["retry_at"] = clock.to_iso(event.retry_at)
            if event.stderr_tail is not None:
                payload["stderr_tail"] = event.stderr_tail
            if event.leaked_pids:
                payload["leaked_pids"] = list(event.leaked_pids)
        case Spawned():
            payload = {
                "step": event.step,
                "attempt": event.attempt,
                "pid": event.pid,
                "pgid": event.pgid,
                "start_id": event.start_id,
            }
        case RunnerStarted():
            payload = {"pid": event.pid}
            if event.argv is not None:
                payload["argv"] = list(event.argv)
        case CancelRequested():
            members = {"source": event.source, "pid": event.pid, "grace_sec": event.grace_sec}
            payload = {name: value for name, value in members.items() if value is not None}
        case RunFinished():
            payload = {"state": event.state.value}
        case RunCreated():
            payload = {
                "run_id": event.run_id,
                "workflow": event.workflow,
                "options": event.options.to_json(),
            }
            if event.origin_run_id is not None:
                payload["origin_run_id"] = event.origin_run_id
    return _TYPES[type(event)], payload


def decode(record: Record) -> Event:
    """The event a record holds; ``MalformedRecord`` or ``IllegalTransition`` if it holds none.

    Shapes are checked first (``check_members``: the messages name the member and what it must
    be), then the values only a closed set allows (states), so every event built is well typed.
    Whether it makes sense for the run (a known step, a legal transition) is the fold's to say.
    The envelope is not read, except ``seq`` to name the record in an error.

    Readers decode every record of a log, so this is one dictionary lookup for the record type's
    schema and builder, the schema's fast test (``Schema.holds``), and the builder; only a
    record the fast test does not vouch for is checked member by member.
    """
    kind = record.get("type")
    codec = _CODECS.get(kind) if type(kind) is str else None
    if codec is None:
        raise IllegalTransition(record.get("seq"), f"unknown record type {kind!r}")
    schema, build = codec
    if not schema.holds(record):
        check_members(record)
    return build(record)


def _run_created(record: Record) -> RunCreated:
    raw = record["options"]
    options = RunOptions(
        raw["max_parallel"],
        raw["fail_fast"],
        raw["base_dir"],
        raw.get("executor"),
        raw.get("scheduler"),
    )
    return RunCreated(record["run_id"], record["workflow"], options, record.get("origin_run_id"))


def _runner_started(record: Record) -> RunnerStarted:
    argv = record.get("argv")
    return RunnerStarted(record["pid"], tuple(argv) if argv is not None else None)


def _step(record: Record) -> StepTransition | AttemptEnded:
    source, target = _STEP_STATES.get(record["from"]), _STEP_STATES.get(record["to"])
    if source is None or target is None:
        raise IllegalTransition(record.get("seq"), "step record with an unknown state")
    if "exit_code" not in record:
        reason = record.get("reason")
        return StepTransition(record["step"], source, target, record["attempt"], reason)
    get = record.get
    retry_at = get("retry_at")
    return AttemptEnded(  # positional, in field order: one in four records is one of these
        record["step"],
        record["attempt"],
        record["exit_code"],
        target,
        get("reason"),
        source,
        get("error"),
        get("final", False),
        get("retry_delay_sec"),
        clock.from_iso(retry_at) if retry_at is not None else None,
        get("stderr_tail"),
        tuple(get("leaked_pids", ())),
    )


def _spawned(record: Record) -> Spawned:
    return Spawned(
        record["step"], record["attempt"], record["pid"], record["pgid"], record.get("start_id")
    )


def _cancel_requested(record: Record) -> CancelRequested:
    return CancelRequested(record.get("source"), record.get("pid"), record.get("grace_sec"))


def _run_finished(record: Record) -> RunFinished:
    state = _RUN_STATES.get(record["state"])
    if state is None:
        raise IllegalTransition(record.get("seq"), f"run_finished with state {record['state']!r}")
    return RunFinished(state)


#: States by their spelling in the log, and back: what ``StepState(text)`` and ``state.value``
#: give, without the enum's machinery (a call, a descriptor), since every step record needs them.
_STEP_STATES: dict[str, StepState] = {state.value: state for state in StepState}
_SPELLING: dict[StepState, str] = {state: state.value for state in StepState}
_RUN_STATES: dict[str, RunStatus] = {state.value: state for state in RunStatus}
_TYPES: dict[type, str] = {
    RunCreated: "run_created",
    RunnerStarted: "runner_started",
    StepTransition: "step",
    AttemptEnded: "step",
    Spawned: "spawned",
    CancelRequested: "cancel_requested",
    RunFinished: "run_finished",
}
_DECODERS: dict[str, Callable[[Record], Event]] = {
    "run_created": _run_created,
    "runner_started": _runner_started,
    "step": _step,
    "spawned": _spawned,
    "cancel_requested": _cancel_requested,
    "run_finished": _run_finished,
}
#: Per record type, the schema its members must fit and the builder of its event.
_CODECS: dict[str, tuple[Schema, Callable[[Record], Event]]] = {
    kind: (SCHEMAS[kind], build) for kind, build in _DECODERS.items()
}
