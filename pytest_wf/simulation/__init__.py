"""The deterministic simulation tier: the real runner, in-process, in virtual time, crashed
everywhere, every failure replayable from one seed.

Where the crash matrix (``pytest_wf.matrix``) kills real ``wf`` processes running real steps,
this tier runs the engine's own ``Runner``, ``Commit``, ``EventLog`` encoding, reader, fold and
``replay --verify`` against a simulated world: scripted steps (exit codes per attempt, durations,
hangs until a timeout, deafness to SIGTERM, spawn errors), a virtual clock, ``wf cancel``, and a
runner that dies before a write, before an fsync, after it, or with the power; and, one scenario
in three, ``wf rerun`` of the finished run, crashed everywhere in turn. A whole history
takes milliseconds, so every crash state of thousands of generated workflows can be checked::

    from pytest_wf.simulation import explore

    exploration = explore(seed=42)  # raises SimulationFailure naming the seed
    print(exploration.crash_states)

``python -m pytest_wf.simulation --seed 42`` replays one seed; docs/pytest-plugin.md, section
"Simulation tier", says what is simulated and what is not.
"""

from __future__ import annotations

from .exploration import (
    Exploration,
    Planner,
    SimulationFailure,
    crash_plans,
    explore,
    reproduce_command,
)
from .history import Crash, History, MemorySink, RerunOf, Simulator
from .scenario import Outcome, RerunSpec, Scenario, StepScript
from .world import SimulatedCrash, SimulatedExecutor, World

__all__ = [
    "Crash",
    "Exploration",
    "History",
    "MemorySink",
    "Outcome",
    "Planner",
    "RerunOf",
    "RerunSpec",
    "Scenario",
    "SimulatedCrash",
    "SimulatedExecutor",
    "SimulationFailure",
    "Simulator",
    "StepScript",
    "World",
    "crash_plans",
    "explore",
    "reproduce_command",
]
