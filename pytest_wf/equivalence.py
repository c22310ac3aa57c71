"""The two promises a user's CI can check on any workflow: replay and resume change nothing.

``assert_replay_equivalent(harness, run)``: folding the log gives the state the runner held live,
``wf replay`` prints the same bytes every time, and ``wf replay --verify`` accepts every record.

``assert_resume_equivalent(harness, workflow, crash_point)``: a run SIGKILLed at the crash point
(for ``power_loss``, then stripped of what it never fsynced) and resumed ends in the same step
states as an uninterrupted run, and each step ran as often as it may:

* exactly once after a durable success: a step whose SUCCEEDED was durable before the crash
  never executes again (not even a process start the log does not show: every attempt an
  engine starts is journaled by ``fault_injection.executions``);
* at least once otherwise: a step runs again only for the attempts the crash interrupted, and
  an interrupted attempt never uses up a retry (per step, attempts and executions are at most
  the uncrashed run's plus the interruptions).

``assert_rerun_resume_equivalent(harness, origin, crash_point)`` is the same check for ``wf
rerun ORIGIN``: the rerun crashed at any record and resumed ends as an uncrashed rerun of the
same origin, and a step it carried over (``reused``) never executes at all.

On a mismatch the assertion says where the engine died (the record, its step and transition),
which step ran more often than it may, the first divergent event, the state diff, per-step
attempts and executions of both runs, the steps' stderr tails, the run folders kept, and one
command that reproduces that single crash point.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from fault_injection.crash import POINTS, CrashReport
from pytest_wf.harness import Execution, RunResult, WfHarness, WorkflowSpec

__all__ = [
    "COMPARED",
    "CrashPoint",
    "EquivalenceError",
    "ResumeOutcome",
    "StepTally",
    "assert_replay_equivalent",
    "assert_rerun_resume_equivalent",
    "assert_resume_equivalent",
    "crash_points",
    "describe_record",
    "first_divergence",
    "state_diff",
]


class CrashPoint(NamedTuple):
    """``(seq, point)``: kill the engine at record ``seq``, at ``point`` (a tuple as well)."""

    seq: int
    point: str


#: Fields of a step compared between runs (timings and pids legitimately differ).
COMPARED = ("state", "exit_code", "reason", "final")
#: Lines of stderr shown per step and run in a failure message.
_TAIL_LINES = 5


class EquivalenceError(AssertionError):
    """A replay or resume that did not give the same answer; the message shows where.

    ``crash`` is where the engine died, for a resume check that got that far.
    """

    def __init__(self, message: str, crash: CrashReport | None = None) -> None:
        super().__init__(message)
        self.crash = crash


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


def describe_record(record: Mapping[str, Any]) -> str:
    """``record 12: step 'deploy' RUNNING -> SUCCEEDED (attempt 1)``, or its type."""
    text = f"record {record.get('seq')}: "
    if record.get("type") == "step":
        text += f"step {record.get('step')!r} {record.get('from')} -> {record.get('to')}"
        if record.get("reason"):
            text += f" ({record['reason']})"
        return text + f", attempt {record.get('attempt')}"
    if record.get("type") == "spawned":
        return text + f"spawned step {record.get('step')!r}, attempt {record.get('attempt')}"
    return text + str(record.get("type"))


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
class StepTally:
    """How often one step ran in one run."""

    #: Attempts the log records (``RUNNING`` transitions), interrupted ones included.
    attempts: int
    #: Attempt processes the engines really started.
    executions: int
    #: Attempts a crash interrupted (``RUNNING -> READY``, ``reason: interrupted``).
    interrupted: int = 0


@dataclass(frozen=True)
class ResumeOutcome:
    """What ``assert_resume_equivalent`` compared (returned for further assertions)."""

    reference: RunResult
    resumed: RunResult
    #: Whether the engine was really killed (False: the run ended before the crash point).
    crashed: bool
    #: Where it died (``fault_injection.crash.CrashReport``), when it did.
    crash: CrashReport | None = None
    #: Per step: (uncrashed run, crashed and resumed run).
    tallies: Mapping[str, tuple[StepTally, StepTally]] = field(default_factory=dict)


def assert_resume_equivalent(
    harness: WfHarness,
    workflow: WorkflowSpec,
    crash_point: tuple[int, str],
    *options: str,
    reference: RunResult | None = None,
    env: Mapping[str, str] | None = None,
    reproduce: str | None = None,
) -> ResumeOutcome:
    """Crash at ``crash_point`` = ``(seq, point)``, resume, compare with an uncrashed run.

    With ``power_loss`` the run folder is cut down to what the engine had fsynced before the
    resume (``WfHarness.crash``), so "durably SUCCEEDED" means in the log that survived the cut.
    ``env`` is added to the environment of every ``wf`` process (the reference run's too, when
    it is made here). ``reproduce`` replaces the last line of a failure (how to run this point
    again; by default the current pytest node, else the ``wf`` commands by hand).
    """
    __tracebackhide__ = True
    reference = reference or harness.run(workflow, *options, env=env)
    seq, point = crash_point
    path = harness.workflow_file(workflow)
    crashed = harness.crash(path, seq, point, *options, env=env)
    command = ["run", os.fspath(path), "--run-id", _REPRO_ID, *options]
    how = reproduce or _reproduce(harness, command, seq, point, env)
    return _compare_resumed(harness, reference, crashed, crash_point, env, how)


def assert_rerun_resume_equivalent(
    harness: WfHarness,
    origin: str,
    crash_point: tuple[int, str],
    *options: str,
    workflow: WorkflowSpec | None = None,
    from_steps: Sequence[str] = (),
    only: Sequence[str] = (),
    reference: RunResult | None = None,
    env: Mapping[str, str] | None = None,
    reproduce: str | None = None,
) -> ResumeOutcome:
    """Crash ``wf rerun ORIGIN`` at ``crash_point``, resume it, compare with an uncrashed rerun.

    The selection (``workflow``, ``from_steps``, ``only``, ``options``) is the same for both
    reruns, as ``WfHarness.rerun`` takes it; the origin is only read, so one origin serves a
    whole matrix. On top of what ``assert_resume_equivalent`` checks, a carried-over step must
    never have executed, before the crash or after it.
    """
    __tracebackhide__ = True
    selection: dict[str, Any] = {"workflow": workflow, "from_steps": from_steps, "only": only}
    reference = reference or harness.rerun(origin, *options, env=env, **selection)
    seq, point = crash_point
    crashed = harness.crash_rerun(origin, seq, point, *options, env=env, **selection)
    command = ["rerun", origin, "--run-id", _REPRO_ID, *options]
    if workflow is not None:
        command += ["--workflow", os.fspath(harness.workflow_file(workflow))]
    command += [arg for name in from_steps for arg in ("--from", name)]
    command += [arg for name in only for arg in ("--only", name)]
    how = reproduce or _reproduce(harness, command, seq, point, env)
    return _compare_resumed(harness, reference, crashed, crash_point, env, how)


def _compare_resumed(
    harness: WfHarness,
    reference: RunResult,
    crashed: RunResult,
    crash_point: tuple[int, str],
    env: Mapping[str, str] | None,
    reproduce: str,
) -> ResumeOutcome:
    """Resume ``crashed`` to its end and hold it to ``reference`` (the module docstring)."""
    __tracebackhide__ = True
    seq, point = crash_point
    killed = crashed.returncode == -signal.SIGKILL
    where = f"crash at seq {seq} ({point})"
    if not killed and crashed.state in (None, "RUNNING"):
        raise EquivalenceError(
            f"{where}: the crash run exited {crashed.returncode} instead: "
            f"{_tail(crashed.stderr, 10)}",
            crashed.crash,
        )
    if crashed.status is None:  # killed before its first batch was durable: nothing to resume
        return ResumeOutcome(reference, crashed, killed, crashed.crash)
    prefix = crashed.events
    run_id = str(crashed.run_id)
    resumed = harness.resume_until_finished(run_id, env=env) if killed else crashed
    events = resumed.events
    executions = harness.executions(run_id)
    tallies = _tallies(reference, resumed, events, executions)
    problems = [
        *_carried_over_executed(events, executions),
        *_reruns_after_success(prefix, events, executions),
        *_repeated_attempts(executions),
        *_over_budget(tallies),
    ]
    expected = _comparable(reference.steps, COMPARED)
    actual = _comparable(resumed.steps, COMPARED)
    states_differ = expected != actual or reference.state != resumed.state
    if states_differ or problems:
        lines = [f"{where}: resumed run is {resumed.state}, uncrashed run {reference.state}"]
        if crashed.crash is not None:
            lines.append(f"the engine died at {_death(crashed.crash)}")
        lines += problems
        if states_differ:
            lines += _ran_more_often(tallies, expected, actual)
            lines.append(f"first divergent event: {first_divergence(reference.events, events)}")
            lines.append(f"state diff:\n{state_diff(expected, actual)}")
        lines.append(_tally_table(tallies))
        lines += _stderr_tails(harness, reference, resumed, expected, actual, tallies)
        lines.append(f"runs kept:\n  uncrashed: {reference.paths.root}")
        lines.append(f"  crashed and resumed: {resumed.paths.root}")
        lines.append(reproduce)
        raise EquivalenceError("\n".join(lines), crashed.crash)
    return ResumeOutcome(reference, resumed, killed, crashed.crash, tallies)


def _death(crash: CrashReport) -> str:
    record = crash.record or {"seq": crash.seq, "type": "?"}
    first, last = crash.batch
    batch = f"record {first}" if first == last else f"records {first}-{last}"
    fate = {
        "before_write": "never written",
        "before_sync": "written, not fsynced",
        "power_loss": "written, not fsynced, then the power cut",
        "after_sync": "durable, not yet acted on",
    }.get(crash.point, crash.point)
    text = f"{describe_record(record)}; its commit batch ({batch}): {fate}"
    if len(crash.records) > 1:
        text += " (" + "; ".join(_brief(r) for r in crash.records) + ")"
    return text


def _brief(record: Mapping[str, Any]) -> str:
    """``'deploy' RUNNING -> SUCCEEDED``, ``spawned 'deploy'``, ``run_finished``."""
    if record.get("type") == "step":
        return f"{record.get('step')!r} {record.get('from')} -> {record.get('to')}"
    if record.get("type") == "spawned":
        return f"spawned {record.get('step')!r}"
    return str(record.get("type"))


def _tallies(
    reference: RunResult,
    resumed: RunResult,
    events: Sequence[Mapping[str, Any]],
    executions: Sequence[Execution],
) -> dict[str, tuple[StepTally, StepTally]]:
    ref_events = reference.events
    spawn_errors = {
        (e["step"], e.get("attempt")) for e in events if e.get("reason") == "spawn_error"
    }
    tallies: dict[str, tuple[StepTally, StepTally]] = {}
    for name in sorted(set(reference.steps) | set(resumed.steps)):
        before = StepTally(
            attempts=int(reference.steps.get(name, {}).get("attempts", 0)),
            executions=sum(1 for e in ref_events if e["type"] == "spawned" and e["step"] == name),
        )
        ran = [x for x in executions if x.step == name and (name, x.attempt) not in spawn_errors]
        if not executions:  # no journal: what the log shows
            ran_count = sum(1 for e in events if e["type"] == "spawned" and e["step"] == name)
        else:
            ran_count = len(ran)
        after = StepTally(
            attempts=int(resumed.steps.get(name, {}).get("attempts", 0)),
            executions=ran_count,
            interrupted=sum(
                1 for e in events if e.get("reason") == "interrupted" and e.get("step") == name
            ),
        )
        tallies[name] = (before, after)
    return tallies


def _reruns_after_success(
    prefix: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    executions: Sequence[Execution],
) -> list[str]:
    """Exactly once: what SUCCEEDED durably before the crash must not execute after it."""
    durable = {str(e["step"]): e["seq"] for e in prefix if e.get("to") == "SUCCEEDED"}
    problems: dict[str, str] = {}
    for run in executions:
        if run.after_crash and run.step in durable and run.step not in problems:
            problems[run.step] = (
                f"step {run.step!r} SUCCEEDED durably before the crash (seq "
                f"{durable[run.step]}) and executed again after it (attempt {run.attempt}): "
                "a step that SUCCEEDED durably before a crash must never execute again"
            )
    for event in events[len(prefix) :]:
        name = str(event.get("step"))
        if event.get("to") == "RUNNING" and name in durable and name not in problems:
            problems[name] = (
                f"step {name!r} SUCCEEDED durably before the crash (seq {durable[name]}) and "
                f"was started again after it (seq {event['seq']}): a step that SUCCEEDED "
                "durably before a crash must never execute again"
            )
    return list(problems.values())


def _carried_over_executed(
    events: Sequence[Mapping[str, Any]], executions: Sequence[Execution]
) -> list[str]:
    """A rerun's reused step was carried over from its origin: it must never execute."""
    reused = {str(e["step"]) for e in events if e.get("reason") == "reused"}
    ran = sorted({run.step for run in executions if run.step in reused})
    return [
        f"step {name!r} was carried over from the origin (reused) and executed all the same"
        for name in ran
    ]


def _repeated_attempts(executions: Sequence[Execution]) -> list[str]:
    seen: set[tuple[str, int]] = set()
    problems = []
    for run in executions:
        key = (run.step, run.attempt)
        if key in seen:
            problems.append(f"attempt {run.attempt} of step {run.step!r} was started twice")
        seen.add(key)
    return problems


def _over_budget(tallies: Mapping[str, tuple[StepTally, StepTally]]) -> list[str]:
    """At least once, never more: the crash adds only its interruptions, and costs no retry."""
    problems = []
    for name, (before, after) in tallies.items():
        if after.attempts > before.attempts + after.interrupted:
            problems.append(
                f"step {name!r} made {after.attempts} attempts, {after.interrupted} of them "
                f"interrupted by the crash; the uncrashed run made {before.attempts}: an "
                "interrupted attempt must not use up a retry"
            )
        if after.executions > before.executions + after.interrupted:
            problems.append(
                f"step {name!r} executed {_times(after.executions)}; the uncrashed run "
                f"executed it {_times(before.executions)} and the crash interrupted it "
                f"{_times(after.interrupted)}"
            )
    return problems


def _ran_more_often(
    tallies: Mapping[str, tuple[StepTally, StepTally]],
    expected: Mapping[str, Any],
    actual: Mapping[str, Any],
) -> list[str]:
    """Name the step that ran again and then ended differently: the usual culprit."""
    lines = []
    for name, (before, after) in tallies.items():
        if after.executions > before.executions and expected.get(name) != actual.get(name):
            lines.append(
                f"step {name!r} ran {_times(after.executions)} (the uncrashed run: "
                f"{_times(before.executions)}): the crash interrupted it and resume ran it "
                f"again, and then it ended {actual.get(name, {}).get('state')} instead of "
                f"{expected.get(name, {}).get('state')}; a step must be safe to run again "
                "(idempotent): interrupted steps run again from the start"
            )
    return lines


def _times(count: int) -> str:
    return {0: "never", 1: "once", 2: "twice"}.get(count, f"{count} times")


def _tally_table(tallies: Mapping[str, tuple[StepTally, StepTally]]) -> str:
    rows = [("step", "attempts", "executions")]
    for name, (before, after) in tallies.items():
        attempts = f"{before.attempts} | {after.attempts}"
        if after.interrupted:
            attempts += f" ({after.interrupted} interrupted)"
        rows.append((name, attempts, f"{before.executions} | {after.executions}"))
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    lines = ["per step (uncrashed | crashed and resumed):"]
    for name, attempts, executions in rows:
        lines.append(f"  {name:<{widths[0]}}  {attempts:<{widths[1]}}  {executions}")
    return "\n".join(lines)


def _stderr_tails(
    harness: WfHarness,
    reference: RunResult,
    resumed: RunResult,
    expected: Mapping[str, Any],
    actual: Mapping[str, Any],
    tallies: Mapping[str, tuple[StepTally, StepTally]],
) -> list[str]:
    """The last lines each differing step wrote to stderr, in both runs (``wf logs``)."""
    names = [
        name
        for name, (before, after) in tallies.items()
        if expected.get(name) != actual.get(name)
        or after.executions > before.executions
        or after.attempts > before.attempts + after.interrupted
    ]
    lines = []
    for name in names[:3]:
        for label, run in (("uncrashed", reference), ("resumed", resumed)):
            attempts = int(run.steps.get(name, {}).get("attempts", 0))
            if attempts < 1:
                lines.append(f"  {name}, {label} run: never started")
                continue
            logs = harness.cli("logs", str(run.run_id), name, "--attempt", str(attempts))
            own = [line for line in logs.stderr.splitlines() if not line.startswith("wf: ")]
            text = "\n      ".join(own[-_TAIL_LINES:]) or "(nothing)"
            lines.append(f"  {name}, {label} run, attempt {attempts}: {text}")
    return ["stderr tails:", *lines] if lines else []


def _tail(text: str, count: int) -> str:
    return "\n".join(text.strip().splitlines()[-count:])


#: The run id of the crashed run, in the commands that reproduce a crash point by hand.
_REPRO_ID = "repro-1"


def _reproduce(
    harness: WfHarness,
    command: Sequence[str],
    seq: int,
    point: str,
    env: Mapping[str, str] | None,
) -> str:
    """One command for this crash point: the test itself, or the commands by hand
    (``command``, the ``wf`` arguments that create the crashed run ``_REPRO_ID``)."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    if current:
        node = current.rsplit(" (", 1)[0]
        return f"reproduce this point alone: python -m pytest {shlex.quote(node)}"
    variables = {"WF_PLUGINS": "fault_injection.crash", "WF_FAULT_CRASH_AT": str(seq)}
    variables["WF_FAULT_CRASH_POINT"] = point
    variables.update(env or {})
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in variables.items())
    wf = f"python -m wf_engine --home {shlex.quote(os.fspath(harness.home))}"
    return f"reproduce by hand: {prefix} {wf} {shlex.join(command)}; {wf} resume {_REPRO_ID}"


def crash_points(reference: RunResult, points: Iterable[str] = POINTS) -> list[CrashPoint]:
    """Every ``(seq, point)`` of an uncrashed run's log (at every point unless told which):
    the full crash matrix of a workflow."""
    total = len(reference.events)
    return [CrashPoint(seq, point) for point in points for seq in range(1, total + 1)]
