"""pytest_wf: test workflows and the wf engine itself from any pytest suite.

The fixtures live in ``pytest_wf.plugin`` (registered through the ``pytest11`` entry point); the
pieces they are built from (``WfHarness``, ``TaskKit``, ``dag``, ``step``) work without pytest.
"""

from __future__ import annotations

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

__all__ = [
    "Execution",
    "RunFiles",
    "RunResult",
    "RunningWf",
    "StepProcess",
    "TaskKit",
    "WfHarness",
    "dag",
    "group_gone",
    "process_alive",
    "step",
    "wait_until",
]
