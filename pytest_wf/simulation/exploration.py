"""Explore one seed: the uncrashed history, then a crashed and resumed one per crash state.

A *crash state* is one commit batch of the uncrashed run's log and one way to die there: before
its write, after its write (a SIGKILL: the page cache keeps the batch, so dying before its fsync
and after it leave the same log and the same processes, and the next writer's first fsync makes
it durable: one state), or a power cut at its fsync (a seeded subset of its pages lost, every
process gone). Records of one batch are written and synced together, so crashing at any of them
is the same state; each is explored once. One history in four crashes a second time while
resuming, at any of the four points, a few records later. Every choice comes from the seed, and
a failure says it with the one command that replays exactly that exploration.

When the scenario has a rerun, the uncrashed run's final state is its origin: ``plan_rerun``
plans it (a refused selection: no rerun), and the rerun is explored the same way, every batch of
its own log at every point, its crash details drawn from a stream of their own.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fault_injection.crash import POINTS
from wf_engine.core import clock
from wf_engine.core.fold import RunState
from wf_engine.core.model import Workflow
from wf_engine.core.records import Record
from wf_engine.core.rerun import RerunPlan, RerunRefused, plan_rerun

from .checks import check_log, compare
from .history import BASE_DIR, Crash, History, RerunOf, Simulator
from .scenario import Scenario
from .world import SimulatedExecutor

#: ``plan_rerun``'s signature: origin, definition, base dir, ``--from``, ``--only``.
Planner = Callable[[RunState, Workflow, str, Sequence[str], Sequence[str]], RerunPlan]

#: The first crash's points that lead to distinct states (see the module docstring).
DISTINCT_POINTS = ("before_write", "after_sync", "power_loss")
#: Virtual seconds between a runner's death and the resume: at once, or after leftovers ended.
_RESTARTS = (0.0, 0.5, 5.0)
#: Share of histories that crash again while resuming.
_SECOND_CRASH = 0.25
#: Virtual µs between the origin's end and the rerun's creation.
_RERUN_AFTER_US = 60_000_000
#: Where the scratch folder goes when the machine has a memory file system: rewriting a log
#: there costs microseconds, where truncating one on a disk file system can cost a millisecond.
_MEMORY_FS = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def reproduce_command(seed: int) -> str:
    return f"python -m pytest_wf.simulation --seed {seed}"


class SimulationFailure(AssertionError):
    """A history broke a property; the message names the seed and how to replay it."""

    def __init__(self, seed: int, history: History, reference: History | None) -> None:
        self.seed = seed
        self.history = history
        crashes = ", then ".join(c.describe() for c in history.happened) or "no crash"
        which = "" if history.rerun is None else ", the rerun"
        lines = [f"simulation seed {seed}{which}: {crashes}"]
        source = reference or history
        for crash in history.happened[:1]:
            lines.append(f"  record {crash.seq}: {_describe(source.records, crash.seq)}")
        lines.extend(f"  {violation}" for violation in history.violations)
        lines.append(f"scenario: {history.scenario.describe()}")
        if history.rerun is not None:
            lines.append(f"rerun of {history.rerun.plan.origin_run_id}: {history.rerun.describe()}")
        lines.append(f"reproduce: {reproduce_command(seed)}")
        super().__init__("\n".join(lines))


@dataclass(frozen=True, slots=True)
class Exploration:
    """What one seed explored: the uncrashed run (and rerun), and the crash states checked.

    ``batches`` and ``crash_states`` count both runs' logs.
    """

    seed: int
    scenario: Scenario
    reference: History
    batches: int
    crash_states: int
    #: The uncrashed rerun, its plan in ``rerun.rerun``; ``None``: no rerun (or one refused).
    rerun: History | None = None


def explore(
    seed: int,
    executor: type[SimulatedExecutor] = SimulatedExecutor,
    scratch: Path | None = None,
    planner: Planner = plan_rerun,
) -> Exploration:
    """Check every crash state of the scenario of ``seed``; raise ``SimulationFailure``.

    ``executor`` replaces the simulated executor, ``planner`` the rerun's ``plan_rerun`` (a
    test models a faulty one with either); ``scratch`` is where the log is written to be read
    back (a temporary folder by default).
    """
    if scratch is None:
        with tempfile.TemporaryDirectory(prefix="wf-sim-", dir=_MEMORY_FS) as folder:
            return explore(seed, executor, Path(folder), planner)
    scenario = Scenario.from_seed(seed)
    final_log = scratch / "final.jsonl"
    reference, batches, count = _explore_run(
        seed, Simulator(scenario, scratch, executor), final_log
    )
    rerun = _rerun_of(scenario, reference, planner)
    if rerun is None:
        return Exploration(seed, scenario, reference, batches, count)
    rerun_scenario, rerun_of = rerun
    simulator = Simulator(rerun_scenario, scratch, executor, rerun_of)
    rerun_reference, rerun_batches, rerun_count = _explore_run(seed, simulator, final_log)
    return Exploration(
        seed,
        scenario,
        reference,
        batches + rerun_batches,
        count + rerun_count,
        rerun_reference,
    )


def _explore_run(seed: int, simulator: Simulator, final_log: Path) -> tuple[History, int, int]:
    """The uncrashed history of ``simulator``'s run, then every crash state of its log:
    (the uncrashed history, its batches, the crash states checked)."""
    reference = simulator.run()
    check_log(reference, final_log)
    if reference.violations:
        raise SimulationFailure(seed, reference, None)
    count = 0
    for plan in crash_plans(seed, reference.records, rerun=simulator.rerun is not None):
        history = simulator.run(plan)
        check_log(history, final_log)
        compare(reference, history)
        if history.violations:
            raise SimulationFailure(seed, history, reference)
        count += 1
    return reference, len(_batches(reference.records)), count


def _rerun_of(
    scenario: Scenario, origin: History, planner: Planner
) -> tuple[Scenario, RerunOf] | None:
    """``wf rerun`` of the finished ``origin`` as the scenario says: the rerun's own scenario
    and plan; ``None``: the scenario has no rerun, or the plan refuses its selection (``wf
    rerun`` would exit 2, creating nothing)."""
    rerun = scenario.rerun_scenario()
    if rerun is None or scenario.rerun is None or origin.state is None:
        return None
    spec = scenario.rerun
    try:
        plan = planner(origin.state, rerun.workflow, BASE_DIR, spec.from_steps, spec.only_steps)
    except RerunRefused:
        return None
    ended_us = clock.from_iso(origin.records[-1]["ts"])
    return rerun, RerunOf(origin.state, plan, ended_us + _RERUN_AFTER_US, spec)


def crash_plans(
    seed: int, records: Sequence[Record], rerun: bool = False
) -> Iterator[tuple[Crash, ...]]:
    """Every batch at every point, in log order; the faults' details drawn from ``seed`` (a
    stream of their own for the rerun's log)."""
    rnd = random.Random(f"wf-simulation-faults-{seed}" + ("-rerun" if rerun else ""))
    for first, last in _batches(records):
        for point in DISTINCT_POINTS:
            crash = Crash(
                rnd.randint(first, last), point, rnd.getrandbits(32), rnd.choice(_RESTARTS)
            )
            if rnd.random() >= _SECOND_CRASH:
                yield (crash,)
                continue
            again = Crash(
                crash.seq + rnd.randint(1, 12),
                rnd.choice(POINTS),
                rnd.getrandbits(32),
                rnd.choice(_RESTARTS),
            )
            yield crash, again


def _batches(records: Sequence[Record]) -> list[tuple[int, int]]:
    return [
        (r["batch"], r["batch"] + r["batch_size"] - 1) for r in records if r["seq"] == r["batch"]
    ]


def _describe(records: Sequence[Record], seq: int) -> str:
    record = next((r for r in records if r["seq"] == seq), None)
    if record is None:
        return "(not in the uncrashed log)"
    if record["type"] == "step":
        return (
            f"step {record['step']!r} {record['from']} -> {record['to']}, "
            f"attempt {record['attempt']}"
        )
    if record["type"] == "spawned":
        return f"spawned step {record['step']!r}, attempt {record['attempt']}"
    return str(record["type"])
