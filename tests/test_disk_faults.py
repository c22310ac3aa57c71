"""A failing disk (EIO, ENOSPC on write or fsync) stops the runner cleanly; resume continues."""

from __future__ import annotations

import os

import pytest

from fault_injection.disk import disk_fault_env
from pytest_wf import TaskKit, WfHarness, dag, process_alive, step
from wf_engine.log.eventlog import read_log


@pytest.mark.parametrize("operation", ["write", "sync"])
@pytest.mark.parametrize("error", ["EIO", "ENOSPC"])
def test_failing_disk_stops_cleanly_and_resume_finishes(
    wf: WfHarness, wf_tasks: TaskKit, operation: str, error: str
) -> None:
    workflow = dag(
        "disk",
        [
            step("a", wf_tasks("ok")),
            step("long", wf_tasks("sleep", "1.5")),
            step("b", wf_tasks("ok"), ["a"]),
            step("c", wf_tasks("ok"), ["b"]),
        ],
        max_parallel=2,
    )
    run_id = wf.new_run_id("disk")
    # The failing call comes once "a" and "long" have started: the 3rd log write (the batch of
    # `spawned` records), or the 6th fsync (4 before: 3 new folders and the first batch).
    call = 3 if operation == "write" else 6
    failed = wf.run(workflow, run_id=run_id, env=disk_fault_env(operation, error, call))
    assert failed.returncode == 4, failed.stderr
    assert "cannot record events" in failed.stderr
    assert os.strerror(getattr(__import__("errno"), error)) in failed.stderr
    assert "Traceback" not in failed.stderr
    for pid in wf_tasks.pids("start"):
        assert not process_alive(pid), "a step outlived the runner that stopped"

    status = wf.cli("status", run_id, "--json")
    assert status.returncode == 0, status.stderr
    records_before, _ = read_log(failed.paths.events)

    # The disk is fine again: a new process (without the fault) resumes the run.
    resumed = wf.cli("resume", run_id, "--plugin", "fault_injection.crash", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    records_after, torn = read_log(failed.paths.events)
    assert torn is None
    assert records_after[: len(records_before)] == records_before
    assert wf.status(run_id)["state"] == "SUCCEEDED"
    assert wf_tasks.starts("c") == 1
