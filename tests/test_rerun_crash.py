"""A rerun crashed at any record and resumed ends as an uncrashed rerun of the same origin.

The crash matrix over a small rerun: every record of the reference rerun, killed right after
its batch is durable (``after_sync``) and by a power cut (``power_loss``: SIGKILL, then what was
not fsynced is dropped, which covers what ``before_write``/``before_sync`` lose, so those two
are left out to keep the test short). The origin is only read,
so one origin serves them all; the carried-over step must never execute, before or after the
crash, and no step that succeeded durably may run again.
"""

from __future__ import annotations

import pytest

from pytest_wf import RunResult, TaskKit, WfHarness, dag, step
from pytest_wf.equivalence import assert_rerun_resume_equivalent, crash_points


@pytest.fixture
def origin(wf: WfHarness, wf_tasks: TaskKit) -> RunResult:
    """a -> b -> c where b fails on its first execution only: the origin FAILED at b."""
    flow = dag(
        "crashed_rerun",
        [
            step("a", wf_tasks("ok")),
            step("b", wf_tasks("fail-first", "1"), ["a"]),
            step("c", wf_tasks("ok"), ["b"]),
        ],
    )
    result = wf.run(flow)
    assert result.returncode == 1, result.stderr
    return result


def test_every_crash_point_of_a_rerun_resumes_to_the_same_end(
    wf: WfHarness, wf_tasks: TaskKit, origin: RunResult
) -> None:
    origin_id = str(origin.run_id)
    reference = wf.rerun(origin_id)
    assert reference.returncode == 0, reference.stderr
    assert reference.steps["a"]["reason"] == "reused"
    points = crash_points(reference, ("after_sync", "power_loss"))
    assert len(points) == 2 * len(reference.events)
    for crash_point in points:
        outcome = assert_rerun_resume_equivalent(wf, origin_id, crash_point, reference=reference)
        assert outcome.resumed.state in (None, "SUCCEEDED")
    assert wf_tasks.starts("a") == 1  # carried over by every rerun, never executed again
