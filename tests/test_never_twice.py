"""Never two attempts of a step at once, and no process of a run left behind.

Each test takes one way an old attempt can hide from a resuming runner (its lock file and the
whole ``steps/`` folder gone, descriptors closed, a daemon that left the group, a runner that
stopped responding, a failed write right after a spawn) and checks what a user cares about: the
old processes are dead before the step runs again, and no two executions of a step overlapped
(the task kit's overlap detector, see ``fault_injection.task``).
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import sys
from pathlib import Path

import pytest

from fault_injection.disk import disk_fault_env
from pytest_wf import WfHarness
from pytest_wf.harness import TaskKit, dag, process_alive, step, wait_until
from wf_engine.runtime import procinfo

REPO = Path(__file__).resolve().parent.parent


def first_attempt_then_ok(tasks: TaskKit, behaviour: str, *args: str) -> str:
    """A shell command: ``behaviour`` on attempt 1, a quick success on every later attempt."""
    first = " ".join(tasks(behaviour, *args))
    later = " ".join(tasks("ok"))
    return f'if [ "$WF_ATTEMPT" = 1 ]; then exec {first}; else exec {later}; fi'


def marked_processes(run_dir: Path) -> list[procinfo.MarkedProcess]:
    """Live processes carrying any attempt mark of the run."""
    return procinfo.find_marked(procinfo.run_mark(str(run_dir)) + "/")


def wait_ready(tasks: TaskKit, label: str) -> int:
    """Pid of the first execution of ``label`` once it recorded ``ready`` (or ``start``)."""
    pids = wait_until(
        lambda: tasks.pids("ready", label) or tasks.pids("start", label), 60, f"{label} to start"
    )
    return int(pids[0])


@pytest.mark.parametrize("lost", ["steps folder", "pid journal"])
def test_resume_kills_the_old_attempt_whatever_file_was_lost(
    wf: WfHarness, wf_tasks: TaskKit, lost: str
) -> None:
    workflow = dag("lost", [step("slow", first_attempt_then_ok(wf_tasks, "hang"))])
    running = wf.start(workflow)
    running.wait_for_step("slow", "RUNNING")
    old = wait_ready(wf_tasks, "slow")
    running.kill()
    if lost == "steps folder":
        shutil.rmtree(running.paths.root / "steps")
    else:
        os.unlink(running.paths.root / "steps" / ".pids")

    result = wf.resume(running.run_id)

    assert result.state == "SUCCEEDED", result.stderr
    assert not process_alive(old)
    assert "killing leftover" in result.stderr
    assert wf_tasks.starts("slow") == 2
    wf_tasks.assert_no_overlap()


def test_an_attempt_that_closed_its_descriptors_is_still_found(
    wf: WfHarness, wf_tasks: TaskKit
) -> None:
    workflow = dag("closed", [step("quiet", first_attempt_then_ok(wf_tasks, "close-fds-hang"))])
    running = wf.start(workflow)
    old = wait_ready(wf_tasks, "quiet")
    running.kill()

    result = wf.resume(running.run_id)

    assert result.state == "SUCCEEDED", result.stderr
    assert not process_alive(old)
    wf_tasks.assert_no_overlap()


@pytest.mark.parametrize("close_fds", [False, True], ids=["keeps-fds", "closes-fds"])
def test_a_daemon_is_killed_when_its_step_ends_and_reported(
    wf: WfHarness, wf_tasks: TaskKit, close_fds: bool
) -> None:
    options = ["--close-fds"] if close_fds else []
    # A grace period far longer than the test may take: the step must not wait for it.
    workflow = dag(
        "daemon", [step("spawner", wf_tasks("daemonize", "600", *options), kill_grace_sec=600)]
    )

    result = wf.run(workflow, timeout=90)

    assert result.state == "SUCCEEDED", result.stderr
    finished = [r for r in result.events if r["type"] == "step" and r["to"] == "SUCCEEDED"]
    leaked = finished[0]["leaked_pids"]
    assert len(leaked) == 1
    assert not process_alive(leaked[0])
    assert marked_processes(Path(result.paths.root)) == []
    logs = wf.cli("logs", result.run_id or "", "spawner")
    assert f"left the step's process group but still carried its mark: {leaked[0]}" in logs.stderr


def test_a_failed_write_after_a_spawn_kills_that_attempt(wf: WfHarness, wf_tasks: TaskKit) -> None:
    workflow = dag("full", [step("a", first_attempt_then_ok(wf_tasks, "hang"))])
    result = wf.run(workflow, env=disk_fault_env("advisory", "ENOSPC", 1))

    assert result.returncode == 4
    assert "steps/.pids: cannot write: No space left on device" in result.stderr
    assert "Traceback" not in result.stderr
    wait_until(lambda: not marked_processes(Path(result.paths.root)), 10, "attempt to die")

    resumed = wf.resume(result.run_id or "")
    assert resumed.state == "SUCCEEDED", resumed.stderr
    wf_tasks.assert_no_overlap()


@pytest.mark.parametrize("at", ["run_started", "first_write"])
def test_sigterm_during_start_up_cancels_the_run(wf: WfHarness, at: str) -> None:
    env = {"PYTHONPATH": str(REPO), "WF_TEST_SIGTERM_AT": at}
    workflow = dag("startup", [step("a", [sys.executable, "-c", "pass"])])

    result = wf.run(workflow, "-p", "tests.plugins.sigterm_self", env=env)

    assert result.returncode == 3, result.stderr
    assert result.state == "CANCELLED"
    assert result.status is not None and not result.status["runner_alive"]


def test_sigterm_while_plugins_load_creates_nothing(wf: WfHarness) -> None:
    env = {"PYTHONPATH": str(REPO), "WF_TEST_SIGTERM_AT": "import"}
    workflow = dag("early", [step("a", [sys.executable, "-c", "pass"])])

    result = wf.run(workflow, "-p", "tests.plugins.sigterm_self", env=env)

    assert result.returncode == 3
    assert "nothing was created" in result.stderr
    assert not os.path.exists(result.paths.root)


def test_sigterm_during_detach_cancels_the_run(wf: WfHarness) -> None:
    env = {"PYTHONPATH": str(REPO), "WF_TEST_SIGTERM_AT": "run_started"}
    workflow = dag("detached", [step("a", [sys.executable, "-c", "pass"])])
    path = wf.workflow_file(workflow)

    done = wf.cli(
        "run", path, "--detach", "--run-id", "d1", "-p", "tests.plugins.sigterm_self", env=env
    )

    assert done.returncode == 3, done.stderr
    assert wf.status("d1")["state"] == "CANCELLED"


def test_cancel_of_a_stopped_runner_says_so_and_force_takes_over(
    wf: WfHarness, wf_tasks: TaskKit
) -> None:
    workflow = dag("stopped", [step("a", wf_tasks("hang"), kill_grace_sec=1)])
    running = wf.start(workflow)
    old = wait_ready(wf_tasks, "a")
    running.signal(signal.SIGSTOP)

    refused = wf.cli("cancel", running.run_id, "--grace", "0", timeout=60)
    assert refused.returncode == 2
    assert "has not acted on the cancel" in refused.stderr
    assert "--force" in refused.stderr
    assert process_alive(old)

    forced = wf.cli("cancel", running.run_id, "--grace", "0", "--force", timeout=60)
    assert forced.returncode == 0, forced.stderr
    assert wf.status(running.run_id)["state"] == "CANCELLED"
    assert not process_alive(old)
    running.process.wait(timeout=10)


@pytest.mark.parametrize("grace", ["inf", "nan", "-1", "1e10"])
def test_cancel_refuses_a_grace_it_cannot_act_on(
    wf: WfHarness, wf_tasks: TaskKit, grace: str
) -> None:
    running = wf.start(dag("g", [step("a", wf_tasks("hang"))]))
    running.wait_for(
        lambda events: bool(events) and events[-1]["type"] == "spawned", what="the spawn recorded"
    )
    before = Path(running.paths.events).read_bytes()

    done = wf.cli("cancel", running.run_id, "--grace", grace)

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert Path(running.paths.events).read_bytes() == before
    assert wf.cli("cancel", running.run_id, "--grace", "0").returncode == 0


def _mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_run_store_is_private_by_default(wf: WfHarness, wf_tasks: TaskKit) -> None:
    result = wf.run(dag("private", [step("a", wf_tasks("fail"))]))
    paths = result.paths

    assert _mode(Path(wf.home) / "runs") == 0o700
    assert _mode(paths.root) == 0o700
    assert _mode(paths.step_dir("a")) == 0o700
    for path in (paths.events, paths.runner_lock, paths.attempt_file("a", 1, "err")):
        assert _mode(path) == 0o600, path


def test_a_store_umask_widens_permissions(wf: WfHarness, wf_tasks: TaskKit) -> None:
    result = wf.run(dag("shared", [step("a", wf_tasks("ok"))]), env={"WF_STORE_UMASK": "022"})

    assert _mode(result.paths.root) == 0o755
    assert _mode(result.paths.events) == 0o644
    bad = wf.run(dag("bad", [step("a", wf_tasks("ok"))]), env={"WF_STORE_UMASK": "rw"})
    assert bad.returncode == 2
    assert "WF_STORE_UMASK" in bad.stderr
