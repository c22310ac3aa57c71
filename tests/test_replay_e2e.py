"""``wf replay``: deterministic, and ``--verify`` catches every kind of tampering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_wf import RunResult, TaskKit, WfHarness, dag, step
from wf_engine.log.eventlog import encode_record


@pytest.fixture
def finished_run(wf: WfHarness, wf_tasks: TaskKit) -> RunResult:
    workflow = dag(
        "replayed",
        [
            step("a", wf_tasks("ok")),
            step("flaky", wf_tasks("fail-first", "1"), ["a"], retries=1, retry_backoff_sec=0.01),
            step("b", wf_tasks("ok"), ["a"]),
            step("c", wf_tasks("ok"), ["flaky", "b"]),
        ],
    )
    result = wf.run(workflow, "--max-parallel", "1")
    assert result.returncode == 0
    return result


def _lines(result: RunResult) -> list[bytes]:
    with open(result.paths.events, "rb") as log:
        return log.read().splitlines(keepends=True)


def _write(result: RunResult, lines: list[bytes]) -> None:
    with open(result.paths.events, "wb") as log:
        log.write(b"".join(lines))


def _reseal(line: bytes, **changes: object) -> bytes:
    """A forged line: changed fields, with a freshly computed, valid checksum."""
    record = json.loads(line)
    del record["crc"]
    record.update(changes)
    return encode_record(record)


def test_replay_is_byte_identical_and_matches_status(
    wf: WfHarness, finished_run: RunResult
) -> None:
    run_id = str(finished_run.run_id)
    outputs = {wf.cli("replay", run_id).stdout for _ in range(3)}
    assert len(outputs) == 1
    json_outputs = {wf.cli("replay", run_id, "--json").stdout for _ in range(3)}
    assert len(json_outputs) == 1
    replayed = json.loads(json_outputs.pop())
    status = finished_run.status
    assert status is not None
    assert replayed["state"] == status["state"] == "SUCCEEDED"
    assert replayed["steps"] == status["steps"]
    assert [r["seq"] for r in replayed["timeline"]] == list(range(1, len(finished_run.events) + 1))


def test_verify_passes_on_a_real_log(wf: WfHarness, finished_run: RunResult) -> None:
    done = wf.cli("replay", str(finished_run.run_id), "--verify")
    assert done.returncode == 0, done.stderr
    assert "verified" in done.stderr


def test_until_shows_the_state_at_that_point(wf: WfHarness, finished_run: RunResult) -> None:
    events = finished_run.events
    first_success = next(r["seq"] for r in events if r.get("to") == "SUCCEEDED")
    done = wf.cli("replay", str(finished_run.run_id), "--until", str(first_success), "--json")
    assert done.returncode == 0
    document = json.loads(done.stdout)
    assert document["until"] == first_success
    assert document["state"] == "RUNNING"
    assert document["steps"]["a"]["state"] == "SUCCEEDED"
    assert document["steps"]["c"]["state"] == "PENDING"


def test_verify_catches_a_removed_line(wf: WfHarness, finished_run: RunResult) -> None:
    lines = _lines(finished_run)
    del lines[5]
    _write(finished_run, lines)
    for command in (["replay", "--verify"], ["replay"], ["status"]):
        done = wf.cli(command[0], str(finished_run.run_id), *command[1:])
        assert done.returncode == 4
        assert "line 6" in done.stderr and "seq gap" in done.stderr


def test_verify_catches_an_edited_line(wf: WfHarness, finished_run: RunResult) -> None:
    lines = _lines(finished_run)
    lines[4] = lines[4].replace(b'"attempt":1', b'"attempt":2')
    _write(finished_run, lines)
    before = Path(finished_run.paths.events).read_bytes()
    done = wf.cli("replay", str(finished_run.run_id), "--verify")
    assert done.returncode == 4
    assert "line 5" in done.stderr and "checksum" in done.stderr
    assert Path(finished_run.paths.events).read_bytes() == before


def test_verify_catches_a_forged_illegal_transition(wf: WfHarness, finished_run: RunResult) -> None:
    lines = _lines(finished_run)
    index = next(i for i, line in enumerate(lines) if b'"to":"SUCCEEDED"' in line)
    lines[index] = _reseal(lines[index], to="SKIPPED")
    _write(finished_run, lines)
    done = wf.cli("replay", str(finished_run.run_id), "--verify")
    assert done.returncode == 4
    assert f"seq {index + 1}" in done.stderr and "illegal transition" in done.stderr


def test_verify_catches_a_decision_the_engine_would_not_make(
    wf: WfHarness, finished_run: RunResult
) -> None:
    # Retry due time moved one hour later: the recorded FAILED -> READY came too early.
    lines = _lines(finished_run)
    index = next(i for i, line in enumerate(lines) if b'"retry_at"' in line)
    record = json.loads(lines[index])
    forged_at = record["retry_at"][:11] + "23:59:59.999999Z"
    lines[index] = _reseal(lines[index], retry_at=forged_at)
    _write(finished_run, lines)
    plain = wf.cli("replay", str(finished_run.run_id))
    assert plain.returncode == 0  # every transition is legal ...
    done = wf.cli("replay", str(finished_run.run_id), "--verify")
    assert done.returncode == 4  # ... but one is not a decision the engine makes
    assert "verify failed" in done.stderr and "seq" in done.stderr
