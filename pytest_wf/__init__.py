"""pytest_wf: test workflows and the wf engine itself from any pytest suite.

The fixtures live in ``pytest_wf.plugin`` (registered through the ``pytest11`` entry point); the
pieces they are built from (``WfHarness``, ``TaskKit``, ``dag``, ``step``) work without pytest.
"""

from __future__ import annotations

from pytest_wf.harness import (
    RunningWf,
    RunResult,
    TaskKit,
    WfHarness,
    dag,
    process_alive,
    step,
    wait_until,
)

__all__ = [
    "RunResult",
    "RunningWf",
    "TaskKit",
    "WfHarness",
    "dag",
    "process_alive",
    "step",
    "wait_until",
]
