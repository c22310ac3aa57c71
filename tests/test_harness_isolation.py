"""Isolation: references keyed by everything that changes a run, whatever the test order; run
ids unique in a session; ``env=`` wherever a run starts; ``pathlib.Path`` out; handles on a
step's processes; and teardown that leaves no process behind however a test ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_wf import (
    StepProcess,
    TaskKit,
    WfHarness,
    dag,
    group_gone,
    process_alive,
    step,
    wait_until,
)
from pytest_wf.equivalence import assert_resume_equivalent

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _checkout_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pytest and ``wf`` processes started here run this checkout's code."""
    paths = [str(REPO), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=300)


# -- references: keyed by workflow, options and environment, in any order -----------------------

ORDERED = """
import pytest

from pytest_wf import dag, step

# One workflow whose outcome depends on the environment only.
FLOW = dag("mode", [step("check", 'test "$MODE" = a')])


def test_a_by_argument(wf_resume_equivalent):
    outcome = wf_resume_equivalent(FLOW, (3, "after_sync"), env={"MODE": "a"})
    assert outcome.reference.state == "SUCCEEDED" == outcome.resumed.state


def test_b_by_argument(wf_resume_equivalent):
    outcome = wf_resume_equivalent(FLOW, (3, "after_sync"), env={"MODE": "b"})
    assert outcome.reference.state == "FAILED" == outcome.resumed.state


def test_a_by_monkeypatch(wf_resume_equivalent, monkeypatch):
    monkeypatch.setenv("MODE", "a")
    outcome = wf_resume_equivalent(FLOW, (4, "before_write"))
    assert outcome.reference.state == "SUCCEEDED" == outcome.resumed.state


def test_b_by_monkeypatch(wf_resume_equivalent, monkeypatch):
    monkeypatch.setenv("MODE", "b")
    outcome = wf_resume_equivalent(FLOW, (4, "before_write"))
    assert outcome.reference.state == "FAILED" == outcome.resumed.state


def test_b_by_option(wf_resume_equivalent, monkeypatch):
    monkeypatch.setenv("MODE", "b")
    outcome = wf_resume_equivalent(FLOW, (3, "before_sync"), "--fail-fast")
    assert outcome.reference.state == "FAILED" == outcome.resumed.state
"""

REVERSING_CONFTEST = """
import os


def pytest_collection_modifyitems(items):
    # Stands in for pytest-randomly when it is not installed: the same tests, another order.
    if os.environ.get("WF_TEST_ORDER") == "reversed":
        items.reverse()
"""


@pytest.mark.parametrize("order", ["forward", "reversed"])
def test_references_are_keyed_by_the_environment_in_any_order(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, order: str
) -> None:
    pytester.makepyfile(test_ordered=ORDERED)
    pytester.makeconftest(REVERSING_CONFTEST)
    monkeypatch.setenv("WF_TEST_ORDER", order)
    monkeypatch.delenv("MODE", raising=False)
    result = run(pytester, "-v", "-p", "no:randomly")
    result.assert_outcomes(passed=5)
    names = [line.split("::")[1].split()[0] for line in result.stdout.lines if " PASSED" in line]
    assert names[0] == ("test_a_by_argument" if order == "forward" else "test_b_by_option")


def test_references_are_keyed_by_the_environment_in_random_order(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pytest_randomly", reason="pytest-randomly is not installed")
    pytester.makepyfile(test_ordered=ORDERED)
    monkeypatch.delenv("MODE", raising=False)
    orders = set()
    for seed in ("1", "2", "3"):
        result = run(pytester, "-v", f"--randomly-seed={seed}")
        result.assert_outcomes(passed=5)
        orders.add(tuple(line for line in result.stdout.lines if " PASSED" in line))
    assert len(orders) > 1  # the seeds really gave other orders


# -- run ids, paths, env= ------------------------------------------------------------------------


def _harness(root: Path, name: str) -> WfHarness:
    (root / name / "home").mkdir(parents=True)
    (root / name / "work").mkdir()
    return WfHarness(root / name / "home", root / name / "work")


def test_run_ids_are_unique_across_harnesses(tmp_path: Path) -> None:
    first, second = _harness(tmp_path, "one"), _harness(tmp_path, "two")
    try:
        flow = dag("ids", [step("a", 'echo "$WF_RUN_ID" >> "$SEEN"')])
        seen = tmp_path / "seen.txt"
        for harness in (first, second, first, second):
            assert harness.run(flow, env={"SEEN": str(seen)}).state == "SUCCEEDED"
        ids = seen.read_text().split()
        assert len(ids) == 4 == len(set(ids))
        assert len({first.new_run_id(), second.new_run_id(), first.new_run_id()}) == 3
    finally:
        first.close()
        second.close()


def test_no_harness_tag_is_the_prefix_of_another(tmp_path: Path) -> None:
    """Teardown kills by tag prefix: harness 1 must never take harness 12's processes."""
    tags = [WfHarness(tmp_path / "home", tmp_path / "work").tag for _ in range(30)]
    assert not [(a, b) for a in tags for b in tags if a != b and b.startswith(a)]


def test_env_is_accepted_wherever_a_run_starts(wf: WfHarness) -> None:
    flow = dag("env", [step("a", 'echo "$WHO" >> "seen-$WF_RUN_ID.txt"')])

    def seen(run_id: str | None) -> list[str]:
        return (wf.workdir / f"seen-{run_id}.txt").read_text().split()

    assert seen(wf.run(flow, env={"WHO": "run"}).run_id) == ["run"]
    crashed = wf.crash(flow, 4, "after_sync", env={"WHO": "crash"})  # a's RUNNING is durable
    assert crashed.returncode == -signal.SIGKILL and crashed.crash is not None
    resumed = wf.resume_until_finished(str(crashed.run_id), env={"WHO": "resume"})
    assert resumed.state == "SUCCEEDED" and seen(crashed.run_id)[-1] == "resume"
    running = wf.start(flow, env={"WHO": "start"})
    assert running.wait().state == "SUCCEEDED" and seen(running.run_id) == ["start"]
    cut = wf.crash(flow, 4, "after_sync")
    assert wf.start_resume(str(cut.run_id), env={"WHO": "start_resume"}).wait().state == (
        "SUCCEEDED"
    )
    assert seen(cut.run_id)[-1] == "start_resume"
    again = wf.crash(flow, 4, "after_sync")
    assert wf.resume(str(again.run_id), env={"WHO": "resume1"}).state == "SUCCEEDED"
    assert wf.cli("status", str(again.run_id), env={"WHO": "x"}).returncode == 0
    outcome = assert_resume_equivalent(wf, flow, (4, "after_sync"), env={"WHO": "check"})
    assert seen(outcome.resumed.run_id)[-1] == "check"
    assert seen(outcome.reference.run_id) == ["check"]


def test_paths_are_pathlib_and_relative_workflows_resolve_against_the_cwd(
    wf: WfHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "project"
    elsewhere.mkdir()
    (elsewhere / "flow.json").write_text(json.dumps(dag("rel", [step("a", ["true"])])))
    monkeypatch.chdir(elsewhere)
    assert wf.workflow_file("flow.json") == elsewhere / "flow.json"
    run = wf.run("flow.json")  # the wf process runs in wf.workdir, the path is the test's
    assert run.state == "SUCCEEDED", run.stderr
    assert isinstance(wf.home, Path) and isinstance(run.home, Path) and run.home == wf.home
    assert isinstance(run.paths.root, Path) and run.paths.events.is_file()
    assert run.paths.events == wf.home / "runs" / str(run.run_id) / "events.jsonl"
    assert isinstance(run.paths.step_dir("a"), Path)
    assert isinstance(wf.workflow_file(dag("d", [step("a", ["true"])])), Path)
    assert isinstance(TaskKit("records.jsonl").record, Path)
    assert isinstance(wf.start("flow.json").paths.events, Path)


# -- handles on a running step ---------------------------------------------------------------------


def test_a_running_steps_pid_group_and_group_gone(wf: WfHarness, wf_tasks: TaskKit) -> None:
    pidfile = wf.workdir / "grandchild.pid"
    flow = dag("held", [step("a", wf_tasks("hang-with-grandchild", "--pidfile", str(pidfile)))])
    running = wf.start(flow)
    process = running.step_process("a")
    assert isinstance(process, StepProcess) and process.pgid == process.pid
    wait_until(pidfile.exists, 30, "the grandchild")
    grandchild = int(pidfile.read_text())
    assert os.getpgid(grandchild) == process.pgid  # the step's group holds its children
    assert process.alive() and not process.group_gone() and not group_gone(process.pgid)
    assert wf.cancel(running.run_id, "--grace", "1").returncode == 0
    wait_until(process.group_gone, 30, "the step's group to go")
    assert not process_alive(grandchild) and running.wait().state == "CANCELLED"
    [recorded] = wf.run(dag("quick", [step("q", ["true"])])).step_processes("q")
    assert recorded.step == "q" and recorded.attempt == 1 and recorded.group_gone()


# -- teardown leaves nothing behind ----------------------------------------------------------------

ENDINGS = """
import signal
import subprocess

import pytest

from pytest_wf import TaskKit, dag, process_alive, step, wait_until

KIT = TaskKit({records!r})
HELD = dag("held", [step("a", KIT("hang-with-grandchild", "--pidfile", {pidfile!r}))])


def grandchildren(count):
    wait_until(lambda: len(KIT.pids("grandchild")) == count, 60, "the grandchild")


def test_fails_while_a_step_runs(wf):
    wf.start(HELD).step_process("a")
    grandchildren(1)
    assert False, "the test fails; its step still runs"


def test_a_command_times_out(wf):
    with pytest.raises(subprocess.TimeoutExpired):
        wf.run(HELD, timeout=3)
    grandchildren(2)
    raise AssertionError("timed out; the engine was killed, its step is an orphan now")


def test_a_crash_leaves_the_step_running(wf):
    crashed = wf.crash(HELD, 5, "after_sync")  # the engine dies once the step was spawned
    assert crashed.returncode == -signal.SIGKILL
    grandchildren(3)


def test_zz_nothing_is_left():
    pids = KIT.pids("start") + KIT.pids("grandchild")
    assert len(pids) == 6  # three steps, each with its grandchild
    assert [pid for pid in pids if process_alive(pid)] == []
"""


def _endings(pytester: pytest.Pytester, body: str = ENDINGS) -> tuple[TaskKit, Path]:
    records, pidfile = pytester.path / "records.jsonl", pytester.path / "grandchild.pid"
    pytester.makepyfile(test_endings=body.format(records=str(records), pidfile=str(pidfile)))
    return TaskKit(records), pidfile


def test_teardown_kills_what_failing_and_timed_out_tests_left(pytester: pytest.Pytester) -> None:
    kit, _ = _endings(pytester)
    result = run(pytester, "-v")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*test_zz_nothing_is_left PASSED*"])
    pids = kit.pids("start") + kit.pids("grandchild")
    assert len(pids) == 6 and not any(process_alive(pid) for pid in pids)


INTERRUPTED = """
import time
from pathlib import Path

from pytest_wf import TaskKit, dag, step, wait_until

KIT = TaskKit({records!r})
HELD = dag("held", [step("a", KIT("hang-with-grandchild", "--pidfile", {pidfile!r}))])


def test_interrupted(wf):
    wf.crash(HELD, 5, "after_sync")
    running = wf.start(HELD)
    running.step_process("a")
    wait_until(lambda: len(KIT.pids("grandchild")) == 2, 60, "both grandchildren")
    Path({pidfile!r} + ".ready").write_text("ready")
    time.sleep(300)
"""


def test_ctrl_c_leaves_no_process_behind(pytester: pytest.Pytester) -> None:
    kit, pidfile = _endings(pytester, INTERRUPTED)
    ready = Path(f"{pidfile}.ready")
    inner = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_endings.py"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: ready.exists() or inner.poll() is not None, 120, "the test to start")
        assert inner.poll() is None, inner.communicate()[0]
        pids = kit.pids("start") + kit.pids("grandchild")
        assert len(pids) == 4 and all(process_alive(pid) for pid in pids)
        inner.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
        output, _ = inner.communicate(timeout=120)
    finally:
        if inner.poll() is None:
            inner.kill()
            inner.communicate()
    assert "KeyboardInterrupt" in output, output
    pids = kit.pids("start") + kit.pids("grandchild")
    wait_until(lambda: not any(process_alive(pid) for pid in pids), 10, "nothing left")


def test_harness_close_kills_every_group_it_left(tmp_path: Path) -> None:
    harness = _harness(tmp_path, "h")
    kit = TaskKit(tmp_path / "records.jsonl")
    pidfile = tmp_path / "gc.pid"
    flow = dag("held", [step("a", kit("hang-with-grandchild", "--pidfile", str(pidfile)))])
    crashed = harness.crash(flow, 5, "after_sync")
    assert crashed.returncode == -signal.SIGKILL
    wait_until(pidfile.exists, 30, "the grandchild")
    [process] = crashed.step_processes("a")
    leftovers = harness.leftovers()
    assert int(pidfile.read_text()) in leftovers and process.pid in leftovers
    harness.close()
    assert harness.leftovers() == [] and process.group_gone()
