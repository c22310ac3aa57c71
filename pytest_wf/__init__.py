"""pytest_wf: test workflows and the wf engine itself from any pytest suite.

The fixtures live in ``pytest_wf.plugin`` (registered through the ``pytest11`` entry point); the
pieces they are built from (``WfHarness``, ``TaskKit``, ``dag``, ``step``) work without pytest.
``explore`` and ``SimulationFailure`` are the simulation tier's entry (``pytest_wf.simulation``),
imported on first use: a suite that does not simulate does not load the runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_wf.harness import (
    Execution,
    RunFiles,
    RunningWf,
    RunResult,
    TaskKit,
    WfHarness,
    dag,
    step,
    wait_until,
)
from pytest_wf.processes import StepProcess, group_gone, process_alive

if TYPE_CHECKING:
    from pytest_wf.simulation import SimulationFailure, explore

__all__ = [
    "Execution",
    "RunFiles",
    "RunResult",
    "RunningWf",
    "SimulationFailure",
    "StepProcess",
    "TaskKit",
    "WfHarness",
    "dag",
    "explore",
    "group_gone",
    "process_alive",
    "step",
    "wait_until",
]


def __getattr__(name: str) -> Any:
    if name in ("explore", "SimulationFailure"):
        from pytest_wf import simulation

        return getattr(simulation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
