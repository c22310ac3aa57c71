"""The two promises a user's CI can check on any workflow: replay and resume change nothing.

``assert_replay_equivalent(harness, run)``: folding the log gives the state the runner held live,
``wf replay`` prints the same bytes every time, and ``wf replay --verify`` accepts every record.

``assert_resume_equivalent(harness, workflow, crash_point)``: a run SIGKILLed at the crash point
(for ``power_loss``, then stripped of what it never fsynced) and resumed ends in the same step
states as an uninterrupted run; no step that had durably SUCCEEDED runs again; a step starts at
most once more than it was interrupted.

On a mismatch the assertion shows the first divergent event and a diff of the step states.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_wf.harness import RunResult, WfHarness, WorkflowSpec

CrashPoint = tuple[int, str]
#: Fields of a step compared between runs (timings and pids legitimately differ).
COMPARED = ("state", "exit_code", "reason", "final")


class EquivalenceError(AssertionError):
    """A replay or resume that did not give the same answer; the message shows where."""


def _comparable(steps: Mapping[str, Mapping[str, Any]], fields: Iterable[str]) -> dict[str, Any]:
    keys = tuple(fields)
    return {name: {k: entry.get(k) for k in keys} for name, entry in steps.items()}


def state_diff(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> str:
    """``step: expected {...} != actual {...}`` for every step that differs."""
    lines = []
    for name in sorted(set(expected) | set(actual)):
        if expected.get(name) != actual.get(name):
            lines.append(f"  {name}: expected {expected.get(name)} != actual {actual.get(name)}")
    return "\n".join(lines) or "  (no step differs)"


def _transitions(events: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str, Any]]:
    """What happened to each step, without times, seqs and pids (which legitimately differ).

    An interruption is left out with the restart that follows it: an interrupted attempt and
    its rerun read as the one attempt an uncrashed run made.
    """
    kept: list[tuple[str, str, str, Any]] = []
    restarting: set[str] = set()
    for e in events:
        if e["type"] != "step":
            continue
        if e.get("reason") == "interrupted":
            restarting.add(e["step"])
        elif e["step"] in restarting and e["to"] == "RUNNING":
            restarting.discard(e["step"])
        else:
            kept.append((e["step"], e["from"], e["to"], e.get("reason")))
    return kept


def first_divergence(
    expected: Sequence[Mapping[str, Any]], actual: Sequence[Mapping[str, Any]]
) -> str:
    """The first step transition where two logs disagree, per step (order across steps varies)."""
    per_step: dict[str, tuple[list[Any], list[Any]]] = {}
    for index, events in enumerate((expected, actual)):
        for transition in _transitions(events):
            per_step.setdefault(transition[0], ([], []))[index].append(transition[1:])
    for name, (left, right) in per_step.items():
        for position in range(max(len(left), len(right))):
            a = left[position] if position < len(left) else None
            b = right[position] if position < len(right) else None
            if a != b:
                return f"step {name!r}, transition {position + 1}: expected {a}, got {b}"
    return "(no divergent transition)"


def assert_replay_equivalent(harness: WfHarness, run: RunResult) -> None:
    """Fold of the log == live final state; replay byte-identical; ``--verify`` passes."""
    __tracebackhide__ = True
    run_id = str(run.run_id)
    first = harness.cli("replay", run_id, "--json")
    second = harness.cli("replay", run_id, "--json")
    if first.returncode != 0:
        raise EquivalenceError(f"wf replay {run_id} exited {first.returncode}: {first.stderr}")
    if first.stdout != second.stdout:
        raise EquivalenceError(f"wf replay {run_id} printed different bytes on two calls")
    text = harness.cli("replay", run_id)
    if text.stdout != harness.cli("replay", run_id).stdout:
        raise EquivalenceError(f"wf replay {run_id} (text) printed different bytes on two calls")
    replayed = json.loads(first.stdout)
    if run.live is not None:
        live = _comparable(run.live["steps"], ("attempts", *COMPARED))
        folded = _comparable(replayed["steps"], ("attempts", *COMPARED))
        if live != folded or run.live["state"] != replayed["state"]:
            raise EquivalenceError(
                f"replay of {run_id} is {replayed['state']}, the live run was "
                f"{run.live['state']} (expected: live, actual: replayed)\n"
                f"state diff:\n{state_diff(live, folded)}"
            )
    verify = harness.cli("replay", run_id, "--verify")
    if verify.returncode != 0:
        raise EquivalenceError(f"wf replay --verify {run_id} failed: {verify.stderr.strip()}")


@dataclass(frozen=True)
class ResumeOutcome:
    """What ``assert_resume_equivalent`` compared (returned for further assertions)."""

    reference: RunResult
    resumed: RunResult
    crashed: bool


def assert_resume_equivalent(
    harness: WfHarness,
    workflow: WorkflowSpec,
    crash_point: CrashPoint,
    *options: str,
    reference: RunResult | None = None,
) -> ResumeOutcome:
    """Crash at ``crash_point`` = ``(seq, point)``, resume, compare with an uncrashed run.

    With ``power_loss`` the run folder is cut down to what the engine had fsynced before the
    resume (``WfHarness.crash``), so "durably SUCCEEDED" means in the log that survived the cut.
    """
    __tracebackhide__ = True
    reference = reference or harness.run(workflow, *options)
    seq, point = crash_point
    crashed = harness.crash(workflow, seq, point, *options)
    was_killed = crashed.returncode == -9
    if not was_killed and crashed.state in (None, "RUNNING"):
        raise EquivalenceError(f"crash run exited {crashed.returncode}: {crashed.stderr}")
    if crashed.status is None:  # killed before its first batch was durable: nothing to resume
        return ResumeOutcome(reference, crashed, was_killed)
    prefix = crashed.events
    resumed = harness.resume_until_finished(str(crashed.run_id)) if was_killed else crashed
    events = resumed.events
    where = f"crash at seq {seq} ({point})"
    expected = _comparable(reference.steps, COMPARED)
    actual = _comparable(resumed.steps, COMPARED)
    if expected != actual or reference.state != resumed.state:
        raise EquivalenceError(
            f"{where}: resumed run is {resumed.state}, uncrashed run {reference.state}\n"
            f"first divergent event: {first_divergence(reference.events, events)}\n"
            f"state diff:\n{state_diff(expected, actual)}"
        )
    _check_no_rerun(where, prefix, events)
    _check_attempt_budget(where, reference.events, events)
    return ResumeOutcome(reference, resumed, was_killed)


def _check_no_rerun(where: str, prefix: Sequence[Mapping[str, Any]], events: list[Any]) -> None:
    durable_successes = {e["step"] for e in prefix if e.get("to") == "SUCCEEDED"}
    for event in events[len(prefix) :]:
        if event.get("to") == "RUNNING" and event["step"] in durable_successes:
            raise EquivalenceError(
                f"{where}: step {event['step']!r} SUCCEEDED before the crash and ran again "
                f"(seq {event['seq']})"
            )


def _check_attempt_budget(where: str, reference: list[Any], events: list[Any]) -> None:
    def starts(log: list[Any]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for event in log:
            if event.get("to") == "RUNNING":
                counts[event["step"]] = counts.get(event["step"], 0) + 1
        return counts

    interrupted: dict[str, int] = {}
    for event in events:
        if event.get("reason") == "interrupted":
            interrupted[event["step"]] = interrupted.get(event["step"], 0) + 1
    expected, actual = starts(reference), starts(events)
    for name, count in actual.items():
        if count > expected.get(name, 0) + interrupted.get(name, 0):
            raise EquivalenceError(
                f"{where}: step {name!r} started {count} times; the uncrashed run started it "
                f"{expected.get(name, 0)} times and it was interrupted {interrupted.get(name, 0)}"
            )


def crash_points(reference: RunResult, points: Iterable[str] = ("after_sync",)) -> list[CrashPoint]:
    """Every ``(seq, point)`` of an uncrashed run's log: the full crash matrix of a workflow."""
    total = len(reference.events)
    return [(seq, point) for point in points for seq in range(1, total + 1)]
