"""What a simulated run runs: a workflow, each step's scripted behaviour, options, a cancel.

Everything is drawn from one ``random.Random(seed)``, so the seed alone names the scenario
(``Scenario.from_seed``). A step's script says what each of its attempts does, indexed by the
failures the step has used up so far, not by attempt number: an attempt that a crash interrupted
uses up no retry, so the attempt after it must behave as the interrupted one would have. That is
what lets a crashed and resumed run be compared with the uncrashed one step by step.
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

    def describe(self) -> str:
        """The scenario in a few lines, for a failure report: options, then a line a step."""
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
    cancel_at = round(rnd.uniform(0.0, 6.0), 3) if rnd.random() < 0.2 else None
    return Scenario(
        seed=seed,
        workflow=workflow,
        scripts=tuple(scripts),
        max_parallel=rnd.randint(1, 4),
        fail_fast=rnd.random() < 0.15,
        cancel_at_sec=cancel_at,
        cancel_grace_sec=rnd.choice((None, 0.0, 0.5)) if cancel_at is not None else None,
    )


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
