"""Tests for ``wf_engine.core.events``: the typed events and their one codec.

The order of a payload's members is part of the on-disk format (the checksum covers the bytes),
so these tests pin it, check that every event the engine builds reads back as itself, and that
every record of the golden logs (real logs written by earlier versions) re-encodes to its bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pytest

from wf_engine.core import clock
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
    encode,
)
from wf_engine.core.states import RunStatus, StepState
from wf_engine.errors import IllegalTransition, MalformedRecord
from wf_engine.log.eventlog import ENVELOPE_FIELDS, encode_record

GOLDEN = Path(__file__).resolve().parent / "golden"
T0 = clock.from_iso("2026-01-01T00:00:00.000000Z")
X, R = StepState.RUNNING, StepState.READY
WORKFLOW = {"workflow_id": "w", "steps": [{"id": "a", "command": "true", "depends_on": []}]}

#: One event of each kind (both kinds of step record, with and without their optional members),
#: and the keys of its payload in the order the log has always had them.
EVENTS: list[tuple[Event, str, list[str]]] = [
    (
        RunCreated("r", WORKFLOW, RunOptions(2, False, "/tmp")),
        "run_created",
        ["run_id", "workflow", "options"],
    ),
    (RunnerStarted(7, ("run", "w.json")), "runner_started", ["pid", "argv"]),
    (RunnerStarted(7), "runner_started", ["pid"]),
    (StepTransition("a", R, X, 1), "step", ["step", "from", "to", "attempt"]),
    (
        StepTransition("a", X, R, 1, "interrupted"),
        "step",
        ["step", "from", "to", "attempt", "reason"],
    ),
    (
        AttemptEnded("a", 1, 0, StepState.SUCCEEDED, "exit"),
        "step",
        ["step", "from", "attempt", "exit_code", "to", "reason"],
    ),
    (
        AttemptEnded(
            "a", 1, None, StepState.FAILED, "spawn_error", error="no such file", final=True
        ),
        "step",
        ["step", "from", "attempt", "exit_code", "to", "reason", "error", "final"],
    ),
    (
        AttemptEnded(
            "a",
            1,
            3,
            StepState.FAILED,
            "exit",
            retry_delay_sec=0.5,
            retry_at=T0 + 500_000,
            stderr_tail="oops\n",
            leaked_pids=(41, 42),
        ),
        "step",
        [
            "step",
            "from",
            "attempt",
            "exit_code",
            "to",
            "reason",
            "retry_delay_sec",
            "retry_at",
            "stderr_tail",
            "leaked_pids",
        ],
    ),
    (Spawned("a", 1, 10, 10, "linux:5"), "spawned", ["step", "attempt", "pid", "pgid", "start_id"]),
    (Spawned("a", 1, 10, 10, None), "spawned", ["step", "attempt", "pid", "pgid", "start_id"]),
    (CancelRequested("signal"), "cancel_requested", ["source"]),
    (CancelRequested("wf cancel", grace_sec=2.0), "cancel_requested", ["source", "grace_sec"]),
    (RunFinished(RunStatus.CANCELLED), "run_finished", ["state"]),
]


def as_record(event: Event, seq: int = 5) -> dict[str, Any]:
    kind, payload = encode(event)
    return {"seq": seq, "batch": seq, "batch_size": 1, "type": kind, "ts": "x", **payload}


@pytest.mark.parametrize(("event", "kind", "keys"), EVENTS, ids=lambda v: repr(v)[:40])
def test_every_event_encodes_in_the_logs_order_and_reads_back(
    event: Event, kind: str, keys: list[str]
) -> None:
    encoded_kind, payload = encode(event)
    assert (encoded_kind, list(payload)) == (kind, keys)
    assert payload.keys().isdisjoint(ENVELOPE_FIELDS)
    record = as_record(event)
    assert decode(record) == event
    # Through JSON and back, as a reader gets it: still the same event.
    line = encode_record(dict(record))
    assert decode(json.loads(line)) == event


def test_every_event_type_is_covered() -> None:
    assert {type(event) for event, _, _ in EVENTS} == set(get_args(Event))


def test_a_step_record_is_an_attempt_end_exactly_when_it_carries_exit_code() -> None:
    ended = as_record(AttemptEnded("a", 1, None, StepState.CANCELLED, "cancelled"))
    assert isinstance(decode(ended), AttemptEnded)
    del ended["exit_code"]
    assert decode(ended) == StepTransition("a", X, StepState.CANCELLED, 1, "cancelled")


def test_retry_at_is_microseconds_spelled_as_ts() -> None:
    event = AttemptEnded("a", 1, 1, StepState.FAILED, "exit", retry_delay_sec=1.0, retry_at=T0)
    assert encode(event)[1]["retry_at"] == "2026-01-01T00:00:00.000000Z"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "bogus"}, "unknown record type 'bogus'"),
        ({"type": None}, "unknown record type None"),
        ({"attempt": "1"}, "malformed step record: field 'attempt' must be an integer >= 0"),
        ({"step": None}, "malformed step record: field 'step' must be a string, not null"),
        ({"to": "DONE"}, "step record with an unknown state"),
        ({"from": "running"}, "step record with an unknown state"),
        (
            {"leaked_pids": [0]},
            "malformed step record: field 'leaked_pids' must be a list of integers from 1",
        ),
        ({"retry_at": "soon"}, "malformed step record: field 'retry_at' must be a time"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_decode_refuses_bad_members_naming_them(change: dict[str, Any], message: str) -> None:
    record = {**as_record(EVENTS[7][0]), **change}
    with pytest.raises(IllegalTransition, match=f"^seq 5: {message}"):
        decode(record)


def test_decode_refuses_a_missing_member_and_an_unknown_run_state() -> None:
    record = as_record(Spawned("a", 1, 10, 10, None))
    del record["pgid"]
    with pytest.raises(MalformedRecord, match="malformed spawned record: field 'pgid' missing"):
        decode(record)
    with pytest.raises(IllegalTransition, match="run_finished with state 'DONE'"):
        decode({**as_record(RunFinished(RunStatus.FAILED)), "state": "DONE"})


@pytest.mark.parametrize("name", sorted(path.name for path in GOLDEN.glob("*.jsonl")))
def test_every_golden_record_re_encodes_to_its_own_bytes(name: str) -> None:
    """Logs written before events were typed: decode then encode changes not one byte."""
    for line in (GOLDEN / name).read_bytes().splitlines(keepends=True):
        record = json.loads(line)
        kind, payload = encode(decode(record))
        envelope = {key: record[key] for key in ENVELOPE_FIELDS if key != "crc"}
        assert kind == record["type"]
        assert encode_record({**envelope, **payload}) == line
