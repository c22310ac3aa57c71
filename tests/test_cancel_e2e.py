"""Cancel: from another process, by Ctrl-C or SIGTERM, with the runner alive or dead."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from fault_injection.crash import crash_env
from pytest_wf import TaskKit, WfHarness, dag, process_alive, step, wait_until


def _hard_workflow(wf_tasks: TaskKit, tmp_path: Path) -> dict:
    return dag(
        "hard_to_stop",
        [
            step("gc", wf_tasks("hang-with-grandchild", "--pidfile", str(tmp_path / "gc.pid"))),
            step("stubborn", wf_tasks("ignore-term", "600")),
            step("waiting", wf_tasks("ok"), ["gc"]),
            step("retrying", wf_tasks("fail"), retries=3, retry_backoff_sec=60),
        ],
        max_parallel=4,
    )


def test_cancel_a_live_run_kills_everything(
    wf: WfHarness, wf_tasks: TaskKit, tmp_path: Path
) -> None:
    running = wf.start(_hard_workflow(wf_tasks, tmp_path))
    running.wait_for(
        lambda events: (
            sum(r["type"] == "spawned" for r in events) >= 3
            and any(r.get("to") == "FAILED" for r in events)
        )
    )
    wait_until(lambda: (tmp_path / "gc.pid").exists() and wf_tasks.pids("ready"), 30, "tasks")
    pids = [*wf_tasks.pids("start", "gc"), *wf_tasks.pids("start", "stubborn")]
    pids.append(int((tmp_path / "gc.pid").read_text()))
    assert all(process_alive(pid) for pid in pids)

    started = time.monotonic()
    cancel = wf.cancel(running.run_id, "--grace", "1")
    elapsed = time.monotonic() - started
    assert cancel.returncode == 0, cancel.stderr
    assert "CANCELLED" in cancel.stdout
    assert not any(process_alive(pid) for pid in pids)
    assert elapsed < 1 + 5  # grace + generous slack for a loaded 2-core machine

    result = running.wait()
    assert result.returncode == 3
    assert result.state == "CANCELLED"
    assert {name: s["state"] for name, s in result.steps.items()} == {
        "gc": "CANCELLED",
        "stubborn": "CANCELLED",
        "waiting": "CANCELLED",
        "retrying": "CANCELLED",
    }
    kinds = [r["type"] for r in result.events]
    assert "cancel_requested" in kinds and kinds[-1] == "run_finished"


def test_cancel_is_idempotent_and_refuses_finished_runs(wf: WfHarness, wf_tasks: TaskKit) -> None:
    running = wf.start(dag("twice", [step("hang", wf_tasks("hang"), kill_grace_sec=1)]))
    running.wait_for_step("hang", "RUNNING")
    assert wf.cancel(running.run_id).returncode == 0
    again = wf.cancel(running.run_id)
    assert again.returncode == 0 and "CANCELLED" in again.stdout
    assert running.wait().returncode == 3

    done = wf.run(dag("done", [step("a", ["true"])]))
    refused = wf.cancel(str(done.run_id))
    assert refused.returncode == 1
    assert "already finished: SUCCEEDED" in refused.stderr


def test_cancel_no_wait_returns_at_once(wf: WfHarness, wf_tasks: TaskKit) -> None:
    running = wf.start(dag("nowait", [step("hang", wf_tasks("hang"), kill_grace_sec=1)]))
    running.wait_for_step("hang", "RUNNING")
    done = wf.cancel(running.run_id, "--no-wait")
    assert done.returncode == 0 and "cancel requested" in done.stdout
    assert running.wait().returncode == 3


def test_cancel_a_run_whose_runner_is_dead(
    wf: WfHarness, wf_tasks: TaskKit, tmp_path: Path
) -> None:
    pidfile = tmp_path / "gc.pid"
    workflow = dag(
        "orphaned",
        [
            step("gc", wf_tasks("hang-with-grandchild", "--pidfile", str(pidfile))),
            step("later", wf_tasks("ok"), ["gc"]),
        ],
    )
    running = wf.start(workflow)
    running.wait_for(lambda events: any(r["type"] == "spawned" for r in events))
    wait_until(pidfile.exists, 30, "grandchild")
    pids = [*wf_tasks.pids("start", "gc"), int(pidfile.read_text())]
    running.kill()
    assert wf.status(running.run_id)["runner_alive"] is False

    cancel = wf.cancel(running.run_id, "--grace", "1")
    assert cancel.returncode == 0, cancel.stderr
    assert not any(process_alive(pid) for pid in pids)
    status = wf.status(running.run_id)
    assert status["state"] == "CANCELLED"
    assert status["steps"]["gc"]["state"] == "CANCELLED"
    assert status["steps"]["later"]["state"] == "CANCELLED"
    assert wf_tasks.starts("gc") == 1  # never started again on the way to CANCELLED


def test_cancel_after_a_crash_before_anything_spawned(wf: WfHarness, wf_tasks: TaskKit) -> None:
    workflow = dag("early", [step("a", wf_tasks("ok")), step("b", wf_tasks("ok"), ["a"])])
    run_id = wf.new_run_id("early")
    assert wf.run(workflow, run_id=run_id, env=crash_env(4)).returncode == -signal.SIGKILL
    assert wf.cancel(run_id).returncode == 0
    assert wf.status(run_id)["state"] == "CANCELLED"
    assert wf_tasks.starts("b") == 0


def test_sigterm_cancels_like_wf_cancel(wf: WfHarness, wf_tasks: TaskKit) -> None:
    running = wf.start(dag("term", [step("hang", wf_tasks("hang"), kill_grace_sec=1)]))
    running.wait_for_step("hang", "RUNNING")
    running.signal(signal.SIGTERM)
    result = running.wait()
    assert result.returncode == 3
    assert result.state == "CANCELLED"
    assert "Traceback" not in result.stderr


def test_second_ctrl_c_skips_the_grace_period(wf: WfHarness, wf_tasks: TaskKit) -> None:
    workflow = dag(
        "stubborn", [step("stubborn", wf_tasks("ignore-term", "600"), kill_grace_sec=300)]
    )
    running = wf.start(workflow)
    wait_until(lambda: wf_tasks.pids("ready"), 30, "task ready")
    pid = wf_tasks.pids("start", "stubborn")[0]
    running.signal(signal.SIGINT)
    running.wait_for(lambda events: any(r["type"] == "cancel_requested" for r in events))
    assert process_alive(pid)  # SIGTERM ignored, and the grace period is 300 s
    running.signal(signal.SIGINT)
    result = running.wait(timeout=60)
    assert result.returncode == 3
    assert not process_alive(pid)
    assert result.steps["stubborn"]["state"] == "CANCELLED"
