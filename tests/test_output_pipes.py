"""Quiet pipes: a reader that goes away, or a closed stdout/stderr, changes nothing but the output.

``wf run … | head -2``, ``wf status RUN | head -1``, ``wf run … >&-`` and ``2>&-``: no traceback,
no error line per transition, the exit code that reports the run's state (or the command's normal
result), and a run that goes on to its normal end. Real pipes and real closed file descriptors:
shell pipelines, or a ``Popen`` whose read end the test closes early.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pytest_wf import WfHarness, dag, step

REPO = Path(__file__).resolve().parent.parent
BOOM = "tests.plugins.boom"

#: A chain of short steps, so that most transitions come after the reader has gone.
CHAIN = dag(
    "chain",
    [
        step("a", "sleep 0.1"),
        step("b", "sleep 0.1", ["a"]),
        step("c", "echo c; sleep 0.1", ["b"]),
        step("d", ["true"], ["c"]),
    ],
)
FAILING = dag("failing", [step("a", "sleep 0.1"), step("b", "exit 5", ["a"])])
#: workflow -> (the run's final state, the exit code reporting it)
OUTCOMES = {"chain": ("SUCCEEDED", 0), "failing": ("FAILED", 1)}


def plugin_env() -> dict[str, str]:
    """Environment for a ``wf`` process that can import ``tests/plugins``."""
    path = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path)}


def shell(wf: WfHarness, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``bash -c script`` with ``$WF`` the ``wf`` command line and ``$@`` its arguments."""
    env = wf.env(plugin_env())
    env["WF"] = shlex.join(wf.command())
    return subprocess.run(
        ["bash", "-c", script, "wf", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=wf.workdir,
        timeout=120,
        check=False,
    )


def reader_leaves(
    wf: WfHarness, args: list[str], lines: int, merge: bool = False
) -> tuple[int, str]:
    """``wf ARGS`` with stdout on a pipe the test closes after reading ``lines`` lines.

    Returns the exit code and stderr (empty when ``merge`` puts stderr on the same pipe).
    """
    process = subprocess.Popen(
        wf.command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge else subprocess.PIPE,
        text=True,
        env=wf.env(plugin_env()),
        cwd=wf.workdir,
    )
    assert process.stdout is not None
    for _ in range(lines):
        assert process.stdout.readline()
    process.stdout.close()
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr or ""


def assert_quiet(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert "Broken pipe" not in stderr and "BrokenPipeError" not in stderr
    assert "Exception ignored" not in stderr


def assert_finished(wf: WfHarness, run_id: str, state: str) -> None:
    """The run reached ``state`` in its log, every step ran to its end, and the log is whole."""
    status = wf.status(run_id)
    assert status["state"] == state
    assert "RUNNING" not in {s["state"] for s in status["steps"].values()}
    assert wf.cli("replay", "--verify", run_id).returncode == 0


def workflow_args(wf: WfHarness, workflow: dict[str, Any], *options: str) -> tuple[list[str], str]:
    run_id = wf.new_run_id()
    return ["run", wf.workflow_file(workflow), "--run-id", run_id, *options], run_id


# -- wf run ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("workflow", [CHAIN, FAILING], ids=["succeeded", "failed"])
def test_run_piped_into_head_goes_on_and_exits_with_the_run_state(
    wf: WfHarness, workflow: dict[str, Any]
) -> None:
    args, run_id = workflow_args(wf, workflow)
    done = shell(wf, '$WF "$@" | head -2; exit "${PIPESTATUS[0]}"', *args)
    state, code = OUTCOMES[workflow["workflow_id"]]
    assert done.returncode == code, done.stderr
    assert len(done.stdout.splitlines()) == 2
    assert_quiet(done.stderr)
    assert "plugin" not in done.stderr  # the progress reporter went quiet, it did not fail
    assert_finished(wf, run_id, state)


def test_run_whose_reader_leaves_at_once_still_runs_every_step(wf: WfHarness) -> None:
    args, run_id = workflow_args(wf, CHAIN)
    code, stderr = reader_leaves(wf, args, lines=1)
    assert code == 0, stderr
    assert_quiet(stderr)
    assert_finished(wf, run_id, "SUCCEEDED")
    assert {s["state"] for s in wf.status(run_id)["steps"].values()} == {"SUCCEEDED"}
    assert wf.cli("logs", run_id, "c").stdout == "c\n"


def test_run_json_into_a_closed_pipe_keeps_the_failed_exit_code(wf: WfHarness) -> None:
    args, run_id = workflow_args(wf, FAILING, "--json")
    code, stderr = reader_leaves(wf, args, lines=0)
    assert code == 1, stderr
    assert_quiet(stderr)
    assert_finished(wf, run_id, "FAILED")


def test_a_broken_pipe_on_stderr_is_quiet_too(wf: WfHarness) -> None:
    """``2>&1 | head -1`` with a plugin failing in every hook: its reports hit the dead pipe."""
    args, run_id = workflow_args(wf, CHAIN, "-p", BOOM)
    code, _ = reader_leaves(wf, args, lines=1, merge=True)
    assert code == 0
    assert_finished(wf, run_id, "SUCCEEDED")


@pytest.mark.parametrize("closed", [">&-", "2>&-", ">&- 2>&-"])
@pytest.mark.parametrize("workflow", [CHAIN, FAILING], ids=["succeeded", "failed"])
def test_run_with_closed_stdout_or_stderr(
    wf: WfHarness, workflow: dict[str, Any], closed: str
) -> None:
    """A closed fd is also a free fd: the engine must not let its log (or anything) take it."""
    args, run_id = workflow_args(wf, workflow, "-p", BOOM)
    done = shell(wf, f'$WF "$@" {closed}', *args)
    state, code = OUTCOMES[workflow["workflow_id"]]
    assert done.returncode == code, done.stderr
    assert_quiet(done.stderr)
    if "2>&-" not in closed:
        assert "wf: plugin 'tests.plugins.boom' failed in wf_run_started" in done.stderr
    if closed == "2>&-":
        assert done.stdout.splitlines()[-1] == f"run {run_id} {state}"
    assert_finished(wf, run_id, state)


# -- commands that report ------------------------------------------------------------------------


@pytest.fixture
def finished(wf: WfHarness) -> str:
    """A SUCCEEDED run whose step ``big`` printed far more than a pipe holds."""
    workflow = dag("big", [step("big", "yes line | head -c 500000"), step("c", "echo c")])
    result = wf.run(workflow)
    assert result.state == "SUCCEEDED", result.stderr
    return str(result.run_id)


@pytest.mark.parametrize(
    "command",
    [
        ["status", "{run}"],
        ["status", "{run}", "--json"],
        ["replay", "{run}", "--verify"],
        ["list"],
        ["logs", "{run}", "big"],
        ["graph", "{run}"],
    ],
    ids=lambda command: "-".join(command[::2]),
)
@pytest.mark.parametrize("reader", ["head -1", "closed at once", "closed stdout"])
def test_a_command_whose_output_is_cut_keeps_its_exit_code(
    wf: WfHarness, finished: str, command: list[str], reader: str
) -> None:
    args = [part.format(run=finished) for part in command]
    normal = wf.cli(*args)
    if reader == "head -1":
        done = shell(wf, '$WF "$@" | head -1; exit "${PIPESTATUS[0]}"', *args)
        code, stderr = done.returncode, done.stderr
        assert done.stdout == normal.stdout.splitlines(keepends=True)[0]
    elif reader == "closed at once":
        code, stderr = reader_leaves(wf, args, lines=0)
    else:
        done = shell(wf, '$WF "$@" >&-', *args)
        code, stderr = done.returncode, done.stderr
    assert code == normal.returncode, (normal.stderr, stderr)
    assert_quiet(stderr)
    assert stderr == normal.stderr
