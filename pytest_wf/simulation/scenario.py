"""What a simulated run runs: a workflow, each step's scripted behaviour, options, a cancel.

Everything is drawn from one ``random.Random(seed)``, so the seed alone names the scenario
(``Scenario.from_seed``). A step's script says what each of its attempts does, indexed by the
failures the step has used up so far, not by attempt number: an attempt that a crash interrupted
uses up no retry, so the attempt after it must behave as the interrupted one would have. That is
what lets a crashed and resumed run be compared with the uncrashed one step by step.

One scenario in three is followed by ``wf rerun`` of its finished run (``RerunSpec``), drawn from
a stream of its own (so adding reruns left every seed's first run as it was): maybe ``--from``,
maybe ``--only``, maybe with steps a user fixed first (their command changed, so the plan runs
them again, and now they succeed), maybe a cancel of the rerun.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from wf_engine.core.model import Workflow
from wf_engine.core.validation import workflow_from_data

#: Seconds a scripted attempt may last: from "at once" to longer than most timeouts drawn.
_DURATIONS = (0.001, 0.05, 0.3, 1.0, 4.0)
_TIMEOUTS = (0.5, 2.0, 8.0)
_BACKOFFS = (0.1, 0.5, 2.0)
_GRACES = (0.2, 1.0, 3.0)
MAX_STEPS = 7
#: Share of scenarios whose run is rerun once finished.
RERUN_SHARE = 1 / 3


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt does once started."""

    #: Exit status when it ends by itself; ``None``: it runs until it is signalled (a hang).
    exit_code: int | None
    duration_sec: float
    #: SIGTERM changes nothing; only the SIGKILL after the grace period ends it.
    ignores_term: bool = False
    #: The process cannot be started at all (a missing program): reported as ``SpawnFailed``.
    spawn_error: bool = False

    def describe(self) -> str:
        if self.spawn_error:
            return "spawn error"
        term = ", ignores SIGTERM" if self.ignores_term else ""
        if self.exit_code is None:
            return f"hangs{term}"
        return f"exit {self.exit_code} after {self.duration_sec}s{term}"


@dataclass(frozen=True, slots=True)
class StepScript:
    """A step's attempts, indexed by the failures the step has used up before each one."""

    outcomes: tuple[Outcome, ...]

    def outcome(self, failures: int) -> Outcome:
        """The behaviour of the attempt that follows ``failures`` failed ones (last repeats)."""
        return self.outcomes[min(failures, len(self.outcomes) - 1)]


#: A fixed step's script in the rerun: it succeeds at once.
FIXED_SCRIPT = StepScript((Outcome(0, 0.05),))


@dataclass(frozen=True, slots=True)
class RerunSpec:
    """``wf rerun`` of the scenario's finished run: the selection handed to ``plan_rerun``, the
    steps fixed before it, and a cancel of the rerun."""

    from_steps: tuple[str, ...] = ()
    only_steps: tuple[str, ...] = ()
    #: Steps whose command the user changed (a fix): the plan runs them, and they succeed.
    fixed: tuple[str, ...] = ()
    #: Virtual seconds after the rerun starts at which ``wf cancel`` is sent; ``None``: never.
    cancel_at_sec: float | None = None
    cancel_grace_sec: float | None = None

    def describe(self) -> str:
        words = ["wf rerun"]
        words += [f"--from {step}" for step in self.from_steps]
        words += [f"--only {step}" for step in self.only_steps]
        if self.fixed:
            words.append(
                f"after fixing {', '.join(self.fixed)} (now: {FIXED_SCRIPT.outcomes[0].describe()})"
            )
        if self.cancel_at_sec is not None:
            words.append(f"+ wf cancel at {self.cancel_at_sec}s (grace {self.cancel_grace_sec})")
        return " ".join(words)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One simulated workflow run, fully determined by ``seed``."""

    seed: int
    workflow: Workflow
    #: In step order.
    scripts: tuple[StepScript, ...]
    max_parallel: int
    fail_fast: bool
    #: Virtual seconds after the run starts at which ``wf cancel`` is sent; ``None``: never.
    cancel_at_sec: float | None = None
    cancel_grace_sec: float | None = None
    #: The rerun that follows the run's end; ``None``: none.
    rerun: RerunSpec | None = None

    @property
    def compares_steps(self) -> bool:
        """Whether each step's end is fixed by its script alone, whatever the timing.

        A cancel, or ``--fail-fast`` (which stops what happens to run), makes the end of some
        steps depend on when things happened, and a crash changes when.
        """
        return self.cancel_at_sec is None and not self.fail_fast

    @classmethod
    def from_seed(cls, seed: int) -> Scenario:
        return generate(random.Random(seed), seed)

    def rerun_scenario(self) -> Scenario | None:
        """The rerun as a scenario of its own: the fixed steps' command changed and their
        script a success, the origin's options (``wf rerun``'s defaults), the rerun's cancel;
        ``None`` when there is no rerun."""
        spec = self.rerun
        if spec is None:
            return None
        data = self.workflow.to_json()
        for step in data["steps"]:
            if step["id"] in spec.fixed:
                step["command"] = "true # fixed"
        scripts = tuple(
            FIXED_SCRIPT if step.id in spec.fixed else script
            for step, script in zip(self.workflow.steps, self.scripts, strict=True)
        )
        return Scenario(
            seed=self.seed,
            workflow=workflow_from_data(data, source=f"seed {self.seed}, rerun"),
            scripts=scripts,
            max_parallel=self.max_parallel,
            fail_fast=self.fail_fast,
            cancel_at_sec=spec.cancel_at_sec,
            cancel_grace_sec=spec.cancel_grace_sec,
        )

    def describe(self) -> str:
        """The scenario in a few lines, for a failure report: options, then a line a step, then
        the rerun that follows, if any."""
        cancel = (
            f", wf cancel at {self.cancel_at_sec}s (grace {self.cancel_grace_sec})"
            if self.cancel_at_sec is not None
            else ""
        )
        lines = [f"max_parallel {self.max_parallel}, fail_fast {self.fail_fast}{cancel}"]
        for step, script in zip(self.workflow.steps, self.scripts, strict=True):
            lines.append(
                f"  {step.id}: depends_on {list(step.depends_on)}, retries {step.retries}, "
                f"timeout {step.timeout_sec}, backoff {step.retry_backoff_sec}, grace "
                f"{step.kill_grace_sec}; attempts: "
                + "; ".join(outcome.describe() for outcome in script.outcomes)
            )
        if self.rerun is not None:
            lines.append(f"  then {self.rerun.describe()}")
        return "\n".join(lines)


def generate(rnd: random.Random, seed: int) -> Scenario:
    """A scenario drawn from ``rnd``: a DAG with fan-in and fan-out, retries, timeouts, hangs,
    steps that ignore SIGTERM or cannot start, and sometimes ``--fail-fast`` or a cancel."""
    count = rnd.randint(1, MAX_STEPS)
    density = rnd.choice((0.0, 0.25, 0.5))
    steps: list[dict[str, Any]] = []
    scripts: list[StepScript] = []
    for index in range(count):
        retries = rnd.choice((0, 0, 1, 2, 3))
        timeout = rnd.choice(_TIMEOUTS) if rnd.random() < 0.35 else None
        steps.append(
            {
                "id": f"s{index}",
                "command": "true",
                "depends_on": [f"s{j}" for j in range(index) if rnd.random() < density],
                "retries": retries,
                "timeout_sec": timeout,
                "retry_backoff_sec": rnd.choice(_BACKOFFS),
                "retry_backoff_max_sec": 4.0,
                "kill_grace_sec": rnd.choice(_GRACES),
            }
        )
        attempts = retries + 1 + rnd.randint(0, 1)
        scripts.append(StepScript(tuple(_outcome(rnd, timeout) for _ in range(attempts))))
    workflow = workflow_from_data({"workflow_id": "sim", "steps": steps}, source=f"seed {seed}")
    cancel_at = _cancel_at(rnd)
    return Scenario(
        seed=seed,
        workflow=workflow,
        scripts=tuple(scripts),
        max_parallel=rnd.randint(1, 4),
        fail_fast=rnd.random() < 0.15,
        cancel_at_sec=cancel_at,
        cancel_grace_sec=_grace(rnd, cancel_at),
        rerun=_rerun(random.Random(f"wf-simulation-rerun-{seed}"), workflow, scripts),
    )


def _cancel_at(rnd: random.Random) -> float | None:
    return round(rnd.uniform(0.0, 6.0), 3) if rnd.random() < 0.2 else None


def _grace(rnd: random.Random, cancel_at: float | None) -> float | None:
    return rnd.choice((None, 0.0, 0.5)) if cancel_at is not None else None


def _rerun(rnd: random.Random, workflow: Workflow, scripts: list[StepScript]) -> RerunSpec | None:
    """One time in three a rerun; its selections may be refused by the plan (then: no rerun).

    A step to fix is one whose script can fail: after the fix it succeeds.
    """
    if rnd.random() >= RERUN_SHARE:
        return None
    ids = [step.id for step in workflow.steps]
    can_fail = [
        step
        for step, script in zip(ids, scripts, strict=True)
        if any(outcome.exit_code != 0 for outcome in script.outcomes)
    ]
    from_steps = _some(rnd, ids, 1) if rnd.random() < 0.3 else ()
    only_steps = _some(rnd, ids, 2) if rnd.random() < 0.3 else ()
    fixed = _some(rnd, can_fail, len(can_fail)) if can_fail and rnd.random() < 0.5 else ()
    cancel_at = _cancel_at(rnd)
    return RerunSpec(from_steps, only_steps, fixed, cancel_at, _grace(rnd, cancel_at))


def _some(rnd: random.Random, ids: list[str], most: int) -> tuple[str, ...]:
    """1 to ``most`` of ``ids``, in definition order."""
    chosen = set(rnd.sample(ids, rnd.randint(1, min(most, len(ids)))))
    return tuple(step for step in ids if step in chosen)


def _outcome(rnd: random.Random, timeout: float | None) -> Outcome:
    """Mostly successes, often failures; a hang only where a timeout ends it."""
    duration = rnd.choice(_DURATIONS)
    roll = rnd.random()
    if roll < 0.04:
        return Outcome(None, 0.0, spawn_error=True)
    ignores_term = rnd.random() < 0.2
    if roll < 0.15 and timeout is not None:
        return Outcome(None, duration, ignores_term=ignores_term)
    if roll < 0.45:
        return Outcome(rnd.choice((1, 2, 3)), duration, ignores_term=ignores_term)
    return Outcome(0, duration, ignores_term=ignores_term)
