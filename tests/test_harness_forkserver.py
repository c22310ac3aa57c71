"""The forked ``wf`` commands behave as new interpreters do: exit codes, output, environment,
working folder, umask, a SIGKILL that really kills, and a clean end when the test process dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_wf import TaskKit, WfHarness, dag, process_alive, step, wait_until
from pytest_wf.forkserver import server_key

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["fork", "exec"])
def launched(request: pytest.FixtureRequest, tmp_path: Path) -> WfHarness:
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    harness = WfHarness(tmp_path / "home", tmp_path / "work", launch=request.param)
    request.addfinalizer(harness.close)
    return harness


PROBE = dag(
    "probe",
    [
        step(
            "look",
            'printf "%s\\n%s\\n%s\\n" "$PROBE" "$(pwd)" "$(umask)" > "$WF_RUN_DIR/seen.txt"; '
            'echo "to stderr" >&2',
        )
    ],
)


def test_fork_and_exec_give_the_same_command(launched: WfHarness) -> None:
    old = os.umask(0o027)
    try:
        run = launched.run(PROBE, env={"PROBE": "value"})
    finally:
        os.umask(old)
    assert run.returncode == 0 and run.state == "SUCCEEDED", run.stderr
    assert json.loads(run.stdout)["state"] == "SUCCEEDED"
    value, cwd, umask = (run.paths.root / "seen.txt").read_text().split()
    assert (value, cwd, umask) == ("value", str(launched.workdir), "0027")
    assert launched.cli("logs", str(run.run_id), "look").stderr.startswith("to stderr")
    assert launched.cli("--version").stdout.startswith("wf, version")
    invalid = launched.workdir / "bad.json"
    invalid.write_text("{")
    assert launched.cli("validate", str(invalid)).returncode == 2
    failed = launched.run(dag("f", [step("a", ["false"])]))
    assert failed.returncode == 1 and failed.state == "FAILED"
    assert launched.cli("status", "no-such-run").returncode == 2


def test_the_crash_kills_the_engine_for_real(launched: WfHarness, wf_tasks: TaskKit) -> None:
    flow = dag("held", [step("a", wf_tasks("hang"))])
    crashed = launched.crash(flow, 5, "after_sync")  # the engine dies once the step runs
    assert crashed.returncode == -signal.SIGKILL
    assert crashed.crash is not None and crashed.crash.record is not None
    assert crashed.crash.record["type"] == "spawned"
    [process] = crashed.step_processes("a")
    assert process.alive()  # in its own session, the step outlives its engine
    runner = crashed.events[1]["pid"]  # runner_started: the killed engine
    assert not process_alive(runner)
    cancelled = launched.cancel(str(crashed.run_id), "--grace", "1")
    assert cancelled.state == "CANCELLED", cancelled.stderr
    wait_until(process.group_gone, 30, "the step's group")


def test_a_command_past_its_timeout_is_killed(wf: WfHarness, wf_tasks: TaskKit) -> None:
    flow = dag("held", [step("a", wf_tasks("hang"))])
    with pytest.raises(subprocess.TimeoutExpired):
        wf.run(flow, timeout=1)
    wait_until(lambda: wf_tasks.pids("start"), 30, "the step")
    assert wf.leftovers()  # the step, orphaned
    wf.close()
    assert wf.leftovers() == [] and not process_alive(wf_tasks.pids("start")[0])


def test_servers_are_keyed_by_what_an_import_may_read() -> None:
    base = {"PATH": "/bin", "HOME": "/root", "PYTHONPATH": "/x", "WF_PORTABLE": ""}
    same = {**base, "WF_PLUGINS": "fault_injection.crash", "WF_FAULT_CRASH_AT": "3"}
    same |= {"CI_SUITE_SOURCE": "a.csv", "PYTEST_CURRENT_TEST": "t", "PYTEST_WF_TAG": "x"}
    assert server_key(same) == server_key(base)
    for name, value in [("WF_PORTABLE", "1"), ("PYTHONPATH", "/y"), ("LANG", "C"), ("TZ", "UTC")]:
        assert server_key({**base, name: value}) != server_key(base), name


def test_portable_mode_gets_a_server_of_its_own(wf: WfHarness, wf_tasks: TaskKit) -> None:
    """``WF_PORTABLE`` is read when the engine is imported: it must be in the server's key."""
    flow = dag("held", [step("a", wf_tasks("hang"))])
    crashed = wf.crash(flow, 5, "after_sync", env={"WF_PORTABLE": "1"})
    assert crashed.returncode == -signal.SIGKILL
    resumed = wf.cancel(str(crashed.run_id), "--grace", "1", env={"WF_PORTABLE": "1"})
    assert resumed.state == "CANCELLED", resumed.stderr
    from pytest_wf import forkserver

    keys = [dict(key[0]) for key in forkserver._SERVERS]
    assert {key.get("WF_PORTABLE") for key in keys} >= {"1"}


SCRIPT = """
import os, sys
from pytest_wf import TaskKit, WfHarness, dag, step, wait_until
root = sys.argv[1]
os.makedirs(root + "/home"); os.makedirs(root + "/work")
harness = WfHarness(root + "/home", root + "/work")
kit = TaskKit(root + "/records.jsonl")
flow = dag("held", [step("a", kit("hang"))])
crashed = harness.crash(flow, 5, "after_sync")  # starts the fork server, leaves a step
running = harness.start(flow)                     # a background engine and its step
running.step_process("a")
wait_until(lambda: len(kit.pids("start")) == 2, 60, "both steps")
print("ready", flush=True)
os._exit(0)  # no teardown, no atexit: as if killed
"""


def test_the_server_cleans_up_when_its_test_process_dies(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.stdout.strip() == "ready", done.stderr
    kit = TaskKit(tmp_path / "records.jsonl")
    pids = kit.pids("start")
    assert len(pids) == 2
    wait_until(lambda: not any(process_alive(pid) for pid in pids), 30, "the steps to be killed")


def test_idle_servers_past_the_limit_are_retired_without_touching_live_runs(
    wf: WfHarness, wf_tasks: TaskKit
) -> None:
    """Every environment gets a server; past ``MAX_SERVERS`` the least recently used idle one
    exits, and a run the test started in the background lives on."""
    from pytest_wf import forkserver

    running = wf.start(dag("bg", [step("hang", wf_tasks("hang"))]))
    running.wait_for_step("hang", "RUNNING")
    hang = running.step_process("hang")
    flow = dag("env", [step("a", wf_tasks("ok"))])
    for n in range(forkserver.MAX_SERVERS + 2):
        assert wf.run(flow, env={"LC_WF_TEST_SERVER": str(n)}).returncode == 0, n
    assert len(forkserver._SERVERS) <= forkserver.MAX_SERVERS
    assert process_alive(hang.pid) and running.process.poll() is None
    running.signal(signal.SIGTERM)
    assert running.wait().returncode == 3
