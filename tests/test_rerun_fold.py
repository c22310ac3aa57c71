"""A rerun's carried-over steps in the fold and in ``replay --verify`` (docs/log-format.md,
"Reruns"): legal only in the rerun's opening, and each reuse one its origin allowed."""

from __future__ import annotations

from typing import Any

import pytest

from wf_engine.core import clock
from wf_engine.core.events import decode
from wf_engine.core.fold import RunState, fold_records
from wf_engine.core.rerun import carry_over, plan_rerun, reuse_refusal
from wf_engine.core.states import StepState
from wf_engine.core.verify import verify_log
from wf_engine.errors import CorruptLog, IllegalTransition

TS = clock.to_iso(clock.from_iso("2026-01-01T00:00:00.000000Z"))
OPTIONS = {"max_parallel": 2, "fail_fast": False, "base_dir": "/flows"}


def _steps(command_b: str = "true") -> list[dict[str, Any]]:
    return [
        {"id": "a", "command": "true", "depends_on": []},
        {"id": "b", "command": command_b, "depends_on": ["a"]},
        {"id": "c", "command": "true", "depends_on": ["b"]},
    ]


class Log:
    """Records as the engine writes them, each with its commit batch."""

    def __init__(self, origin: str | None = "o", steps: list[dict[str, Any]] | None = None) -> None:
        self.records: list[dict[str, Any]] = []
        created: dict[str, Any] = {
            "run_id": "r",
            "workflow": {"workflow_id": "w", "steps": steps or _steps()},
            "options": OPTIONS,
        }
        if origin is not None:
            created["origin_run_id"] = origin
        self.batch = 1
        self.add("run_created", **created)
        self.add("runner_started", pid=1)

    def add(self, kind: str, **fields: Any) -> None:
        seq = len(self.records) + 1
        self.records.append({"seq": seq, "type": kind, "ts": TS, "batch": self.batch, **fields})

    def step(self, step: str, source: str, target: str, attempt: int = 0, **fields: Any) -> None:
        self.add("step", step=step, attempt=attempt, **{"from": source, "to": target}, **fields)

    def next_batch(self) -> None:
        self.batch = len(self.records) + 1

    def fold(self) -> RunState:
        return fold_records(self.records)

    def verify(self, origin: RunState | None = None) -> None:
        verify_log([(r, decode(r)) for r in self.records], "events.jsonl", origin)


def _origin(b_succeeded: bool) -> RunState:
    """A finished run ``o``: a succeeded; b succeeded or failed for good (c then skipped)."""
    log = Log(origin=None)
    log.records[0]["run_id"] = "o"
    log.next_batch()
    log.step("a", "PENDING", "READY")
    log.step("a", "READY", "RUNNING", 1)
    log.step("a", "RUNNING", "SUCCEEDED", 1, exit_code=0, reason="exit")
    log.step("b", "PENDING", "READY")
    log.step("b", "READY", "RUNNING", 1)
    if b_succeeded:
        log.step("b", "RUNNING", "SUCCEEDED", 1, exit_code=0, reason="exit")
        log.step("c", "PENDING", "READY")
        log.step("c", "READY", "RUNNING", 1)
        log.step("c", "RUNNING", "SUCCEEDED", 1, exit_code=0, reason="exit")
        log.add("run_finished", state="SUCCEEDED")
    else:
        log.step("b", "RUNNING", "FAILED", 1, exit_code=1, reason="exit", final=True)
        log.step("c", "PENDING", "SKIPPED", reason="dependency_failed")
        log.add("run_finished", state="FAILED")
    return log.fold()


def test_carried_over_steps_open_a_rerun_and_count_as_succeeded() -> None:
    log = Log()
    log.step("a", "PENDING", "SUCCEEDED", reason="reused")
    state = log.fold()
    a = state.steps[0]
    assert (a.state, a.attempt, a.reason, a.exit_code) == (StepState.SUCCEEDED, 0, "reused", None)
    assert state.origin_run_id == "o"
    assert list(state.unblocked) == [1]  # b may start: its dependency succeeded
    log.next_batch()
    log.step("b", "PENDING", "READY")
    assert not log.fold().opening


@pytest.mark.parametrize("case", ["not-a-rerun", "after-a-decision", "after-a-second-runner"])
def test_a_carry_over_outside_the_opening_is_refused(case: str) -> None:
    log = Log(origin=None) if case == "not-a-rerun" else Log()
    if case == "after-a-decision":
        log.step("b", "PENDING", "READY")
    elif case == "after-a-second-runner":
        log.add("runner_started", pid=2)
    log.step("a", "PENDING", "SUCCEEDED", reason="reused")
    with pytest.raises(IllegalTransition, match="legal only in a rerun's opening"):
        log.fold()


@pytest.mark.parametrize(
    ("target", "fields"),
    [
        ("SUCCEEDED", {"reason": "exit"}),
        ("SUCCEEDED", {"reason": "not_selected"}),
        ("SUCCEEDED", {"reason": "reused", "exit_code": 0}),
        ("SKIPPED", {"reason": "reused"}),
        ("READY", {"reason": "not_selected"}),
    ],
    ids=[
        "succeeded-by-exit",
        "succeeded-not-selected",
        "with-exit-code",
        "skipped-reused",
        "ready",
    ],
)
def test_a_carry_over_needs_its_own_reason(target: str, fields: dict[str, Any]) -> None:
    log = Log()
    log.step("a", "PENDING", target, **fields)
    with pytest.raises(IllegalTransition, match="a carried-over step goes to SUCCEEDED"):
        log.fold()


def test_not_selected_skips_doom_nothing_the_plan_keeps() -> None:
    log = Log()
    log.step("a", "PENDING", "SUCCEEDED", reason="reused")
    log.step("b", "PENDING", "SKIPPED", reason="not_selected")
    log.step("c", "PENDING", "SKIPPED", reason="not_selected")
    log.next_batch()
    log.add("run_finished", state="SUCCEEDED")
    assert log.fold().finished is not None
    log.verify()


def test_verify_wants_the_carry_overs_in_the_first_batch() -> None:
    log = Log()
    log.step("a", "PENDING", "SUCCEEDED", reason="reused")
    log.verify()
    log.records[-1]["batch"] = 3
    with pytest.raises(CorruptLog, match=r"line 3: .*outside the rerun's first commit batch"):
        log.verify()


def test_verify_holds_each_reuse_to_the_origin() -> None:
    log = Log()
    log.step("a", "PENDING", "SUCCEEDED", reason="reused")
    log.step("b", "PENDING", "SUCCEEDED", reason="reused")
    failed, succeeded = _origin(b_succeeded=False), _origin(b_succeeded=True)
    log.verify(succeeded)
    log.verify()  # without the origin: the log's own facts only
    with pytest.raises(CorruptLog, match="'b' reused from o, but it did not succeed in the origin"):
        log.verify(failed)


def test_reuse_refusal_names_a_changed_definition_and_a_wrong_origin() -> None:
    origin = _origin(b_succeeded=True)
    changed = Log(steps=_steps(command_b="false")).fold()
    assert reuse_refusal(changed, origin, "a") is None
    assert reuse_refusal(changed, origin, "b") == "definition changed since the origin"
    other = Log(origin="x").fold()
    assert "names 'x' as its origin, not 'o'" in str(reuse_refusal(other, origin, "a"))


def test_the_plan_becomes_the_opening_and_a_rerun_of_a_rerun_reuses_both() -> None:
    origin = _origin(b_succeeded=False)
    plan = plan_rerun(origin, origin.workflow, origin.options.base_dir)
    events = carry_over(plan)
    assert [(e.step, e.to, e.reason) for e in events] == [("a", StepState.SUCCEEDED, "reused")]
    log = Log()
    for event in events:
        log.step(event.step, "PENDING", event.to.value, reason=event.reason)
    log.next_batch()
    log.step("b", "PENDING", "READY")
    log.step("b", "READY", "RUNNING", 1)
    log.step("b", "RUNNING", "SUCCEEDED", 1, exit_code=0, reason="exit")
    log.step("c", "PENDING", "READY")
    log.step("c", "READY", "RUNNING", 1)
    log.step("c", "RUNNING", "FAILED", 1, exit_code=1, reason="exit", final=True)
    log.add("run_finished", state="FAILED")
    rerun = log.fold()
    again = plan_rerun(rerun, rerun.workflow, rerun.options.base_dir)
    assert again.to_json()["steps"] == {
        "a": {"action": "reuse", "why": "succeeded in the origin"},
        "b": {"action": "reuse", "why": "succeeded in the origin"},
        "c": {"action": "run", "why": "failed in the origin"},
    }
