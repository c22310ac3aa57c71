"""Resume after a crash: no finished step reruns, no step runs twice at once, nothing leaks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fault_injection.crash import crash_env
from fault_injection.logfaults import (
    append_garbage,
    append_zeros,
    batch_boundaries,
    lose_unsynced,
    tear,
)
from pytest_wf import TaskKit, WfHarness, dag, process_alive, step, wait_until
from pytest_wf.equivalence import ResumeOutcome
from wf_engine.log.eventlog import LogScan, read_log
from wf_engine.plugins.manager import Plugins
from wf_engine.runtime.store import RunStore
from wf_engine.runtime.takeover import resume_run

REPO = Path(__file__).resolve().parent.parent
PIPELINE = REPO / "examples" / "image_pipeline" / "workflow.json"


def test_sigkill_while_a_step_runs_then_resume(
    wf: WfHarness, wf_tasks: TaskKit, tmp_path: Path
) -> None:
    pidfile = tmp_path / "gc.pid"
    workflow = dag(
        "killed",
        [
            step("first", wf_tasks("ok")),
            step("slow", wf_tasks("hang-with-grandchild", "--pidfile", str(pidfile)), ["first"]),
            step("last", wf_tasks("ok"), ["slow"]),
        ],
    )
    running = wf.start(workflow)
    running.wait_for(
        lambda events: any(r["type"] == "spawned" and r["step"] == "slow" for r in events)
    )
    wait_until(pidfile.exists, 30, "grandchild pid file")
    orphan = wf_tasks.pids("start", "slow")[0]
    grandchild = int(pidfile.read_text())
    running.kill()

    status = wf.status(running.run_id)
    assert status["state"] == "RUNNING"
    assert status["runner_alive"] is False
    assert status["steps"]["slow"]["state"] == "RUNNING"
    assert process_alive(orphan) and process_alive(grandchild)

    resumed = wf.start_resume(running.run_id)
    wait_until(lambda: len(wf_tasks.pids("start", "slow")) == 2, 30, "slow to run again")
    assert not process_alive(orphan) and not process_alive(grandchild)
    cancel = wf.cancel(running.run_id, "--grace", "1")
    assert cancel.returncode == 0, cancel.stderr
    result = resumed.wait()
    assert result.returncode == 3
    assert "killing leftover process group" in result.stderr
    assert wf_tasks.starts("first") == 1
    assert wf_tasks.starts("slow") == 2
    events, _ = read_log(str(RunStore(wf.home).paths(running.run_id).events))
    interrupted = [r for r in events if r.get("reason") == "interrupted"]
    assert [(r["step"], r["from"], r["to"]) for r in interrupted] == [("slow", "RUNNING", "READY")]
    assert [r["seq"] for r in events] == list(range(1, len(events) + 1))


def _counts(events: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in events:
        if record["type"] == "step" and record["to"] == "RUNNING":
            counts[record["step"]] = counts.get(record["step"], 0) + 1
    return counts


def _check_converged(events: list[dict]) -> None:
    """Finished, all SUCCEEDED; a step that SUCCEEDED never started again."""
    assert events[-1]["type"] == "run_finished" and events[-1]["state"] == "SUCCEEDED"
    succeeded: set[str] = set()
    for record in events:
        if record["type"] != "step":
            continue
        assert record["step"] not in succeeded, f"{record['step']} ran again after SUCCEEDED"
        if record["to"] == "SUCCEEDED":
            succeeded.add(record["step"])
    interrupted = {r["step"] for r in events if r.get("reason") == "interrupted"}
    for step_id, starts in _counts(events).items():
        assert starts <= 1 + (step_id in interrupted), (step_id, starts)


@pytest.fixture(scope="module", autouse=True)
def _clean_pipeline_output() -> Iterator[None]:
    yield
    shutil.rmtree(PIPELINE.parent / "out", ignore_errors=True)


@pytest.mark.wf_crash_matrix(points=("before_write", "before_sync", "after_sync"), depth=26)
def test_crash_at_every_event_of_the_example_pipeline(
    wf_resume_equivalent: Callable[..., ResumeOutcome], wf_crash_point: tuple[int, str]
) -> None:
    outcome = wf_resume_equivalent(PIPELINE, wf_crash_point, "--max-parallel", "2")
    if outcome.resumed.status is not None:  # else: killed before the run was created
        _check_converged(outcome.resumed.events)


def _crashed_run(wf: WfHarness, wf_tasks: TaskKit | None, seq: int) -> str:
    """A run of a 3-step chain killed right after record ``seq`` became durable.

    Steps are task-kit commands (to count executions), or plain ``true`` (fast) without a kit.
    """
    commands = [wf_tasks("ok") if wf_tasks else ["true"] for _ in range(3)]
    workflow = dag(
        "torn",
        [
            step("a", commands[0]),
            step("b", commands[1], ["a"]),
            step("c", commands[2], ["b"]),
        ],
        max_parallel=1,
    )
    run_id = wf.new_run_id("torn")
    result = wf.run(workflow, run_id=run_id, env=crash_env(seq))
    assert result.returncode == -signal.SIGKILL
    return run_id


def test_torn_tail_at_every_byte_of_the_last_batch(wf: WfHarness) -> None:
    store = RunStore(wf.home)
    template_id = _crashed_run(wf, None, 8)
    template = Path(store.paths(template_id).events).read_bytes()
    boundaries = batch_boundaries(store.paths(template_id).events)
    last_start = boundaries[-2]
    plugins = Plugins.load(entry_points=False)
    for offset in range(last_start, len(template)):
        run_id = wf.new_run_id("tear")
        paths = store.create(run_id)
        Path(paths.events).write_bytes(template)
        cut = tear(paths.events, offset)
        notes: list[str] = []
        runner = resume_run(store, run_id, plugins, notes.append)
        assert runner is not None
        assert runner.execute().value == "SUCCEEDED"
        events, torn = read_log(paths.events)
        assert torn is None
        assert [r["seq"] for r in events] == list(range(1, len(events) + 1))
        _check_converged(events)
        if offset > last_start:
            assert any("torn tail" in note for note in notes), offset
            backup = Path(f"{paths.events}.torn-{last_start}")
            assert backup.read_bytes() == template[last_start:offset]
        assert cut == template[offset:]


@pytest.mark.parametrize("damage", [append_zeros, append_garbage])
def test_zeros_or_garbage_after_the_last_record_are_cut(
    wf: WfHarness, wf_tasks: TaskKit, damage: object
) -> None:
    run_id = _crashed_run(wf, wf_tasks, 6)
    paths = RunStore(wf.home).paths(run_id)
    size = os.path.getsize(paths.events)
    damage(paths.events)  # type: ignore[operator]
    status = wf.cli("status", run_id)
    assert status.returncode == 0 and "torn tail" in status.stderr
    resumed = wf.resume(run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert "torn tail" in resumed.stderr
    assert os.path.exists(f"{paths.events}.torn-{size}")
    _check_converged(read_log(paths.events)[0])


def test_damage_before_the_last_batch_is_refused_everywhere(
    wf: WfHarness, wf_tasks: TaskKit
) -> None:
    run_id = _crashed_run(wf, wf_tasks, 8)
    paths = RunStore(wf.home).paths(run_id)
    lines = Path(paths.events).read_bytes().splitlines(keepends=True)
    lines[2] = lines[2][: len(lines[2]) // 2] + b"\n"  # a torn line that is not at the tail
    Path(paths.events).write_bytes(b"".join(lines))
    before = Path(paths.events).read_bytes()
    for command in (["status"], ["replay"], ["replay", "--verify"], ["resume"], ["cancel"]):
        done = wf.cli(command[0], run_id, *command[1:])
        assert done.returncode == 4, (command, done.stderr)
        assert "line 3" in done.stderr and "Traceback" not in done.stderr
    assert Path(paths.events).read_bytes() == before
    listing = json.loads(wf.cli("list", "--json").stdout)
    assert listing[0]["state"] == "UNREADABLE"


def test_two_concurrent_resumes_one_wins(wf: WfHarness, wf_tasks: TaskKit) -> None:
    workflow = dag(
        "contended",
        [
            step("a", wf_tasks("ok")),
            step("slow", wf_tasks("sleep", "1.5"), ["a"]),
            step("z", wf_tasks("ok"), ["slow"]),
        ],
    )
    run_id = wf.new_run_id("contended")
    crashed = wf.run(workflow, run_id=run_id, env=crash_env(4))  # right after a's RUNNING
    assert crashed.returncode == -signal.SIGKILL
    first, second = (
        subprocess.Popen(
            wf.command("resume", run_id), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    )
    results = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in (first, second)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refusal = next(err for code, err in results if code == 2)
    assert "owned by another live runner" in refusal
    for label in ("a", "slow", "z"):
        assert wf_tasks.starts(label) <= 1 + (label == "a")
    assert wf_tasks.starts("slow") == 1
    status = wf.status(run_id)
    assert status["state"] == "SUCCEEDED"


def test_run_with_existing_run_id_resumes_it(wf: WfHarness, wf_tasks: TaskKit) -> None:
    workflow = dag("again", [step("a", wf_tasks("ok")), step("b", wf_tasks("ok"), ["a"])])
    run_id = wf.new_run_id("again")
    assert wf.run(workflow, run_id=run_id, env=crash_env(6)).returncode == -signal.SIGKILL
    result = wf.run(workflow, run_id=run_id)
    assert result.returncode == 0
    assert "resuming" in result.stderr
    assert wf_tasks.starts("a") == 1 and wf_tasks.starts("b") == 1
    again = wf.run(workflow, run_id=run_id)
    assert again.returncode == 0 and "already finished" in again.stderr
    assert wf_tasks.starts("b") == 1


def test_resume_all_continues_every_interrupted_run(wf: WfHarness, wf_tasks: TaskKit) -> None:
    workflow = dag("many", [step("a", wf_tasks("ok")), step("b", wf_tasks("ok"), ["a"])])
    ids = [wf.new_run_id("many") for _ in range(3)]
    for run_id in ids:
        assert wf.run(workflow, run_id=run_id, env=crash_env(5)).returncode == -signal.SIGKILL
    done = wf.cli("resume", "--all")
    assert done.returncode == 0, done.stderr
    assert all(wf.status(run_id)["state"] == "SUCCEEDED" for run_id in ids)


def test_scan_of_a_resumed_log_has_one_runner_per_ownership(
    wf: WfHarness, wf_tasks: TaskKit
) -> None:
    run_id = _crashed_run(wf, wf_tasks, 5)
    assert wf.resume(run_id).returncode == 0
    records = list(LogScan(RunStore(wf.home).paths(run_id).events))
    assert [r["type"] for r in records].count("runner_started") == 2


@pytest.mark.parametrize("seed", range(8))
def test_lost_unsynced_writes_are_a_torn_tail(wf: WfHarness, seed: int) -> None:
    """Power cut before the fsync: any subset of the unsynced batch's pages may be lost."""
    workflow = dag("unsynced", [step("a", ["true"]), step("b", ["true"], ["a"])], max_parallel=1)
    run_id = wf.new_run_id("unsynced")
    crashed = wf.run(workflow, run_id=run_id, env=crash_env(6, "before_sync"))
    assert crashed.returncode == -signal.SIGKILL
    events = RunStore(wf.home).paths(run_id).events
    boundaries = batch_boundaries(events)
    lose_unsynced(events, synced_size=boundaries[-2], seed=seed)
    resumed = wf.resume(run_id)
    assert resumed.returncode == 0, resumed.stderr
    records, torn = read_log(events)
    assert torn is None
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    _check_converged(records)
