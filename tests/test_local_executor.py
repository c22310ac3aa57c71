"""The local executor as a user sees it: what a step's output, its processes and the run store
look like, through real runs (docs/workflows.md, "How a step runs")."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from pytest_wf import WfHarness
from pytest_wf.harness import dag, process_alive, step, wait_until
from wf_engine.runtime import procinfo
from wf_engine.runtime.launch import direct_argv


def sh(command: str) -> list[str]:
    return ["/bin/sh", "-c", command]


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("true", ["true"]),
        ("sleep  1", ["sleep", "1"]),
        ("python3 -m pip --version", ["python3", "-m", "pip", "--version"]),
        ("./build.sh --out=dist", ["./build.sh", "--out=dist"]),
        ("make -j4 all", ["make", "-j4", "all"]),
    ],
)
def test_plain_words_are_exec_without_a_shell(command: str, words: list[str]) -> None:
    assert direct_argv(sh(command)) == words


@pytest.mark.parametrize(
    "command",
    [
        "echo hi",  # the shell's echo differs from /bin/echo
        "cd build",
        "FOO=1 make",
        "ls *.txt",
        "a && b",
        "a; b",
        "cat < in",
        "echo $HOME",
        "grep 'x y' f",
        'grep "x" f',
        "a \\\n b",
        "exit 3",
        "",
        "   ",
        "test -f x",
        "echo `date`",
        "a | b",
        "~/bin/tool",
        "tab\tseparated",
    ],
)
def test_anything_the_shell_would_interpret_goes_through_the_shell(command: str) -> None:
    assert direct_argv(sh(command)) is None


def test_only_the_engine_s_own_shell_form_is_rewritten() -> None:
    assert direct_argv(["/bin/sh", "-c", "true", "extra"]) is None
    assert direct_argv(["bash", "-c", "true"]) is None
    assert direct_argv(["true"]) is None


def test_a_silent_step_leaves_nothing_in_the_run_store(wf: WfHarness) -> None:
    result = wf.run(dag("quiet", [step("a", "true"), step("b", "echo out; echo err >&2")]))

    assert result.state == "SUCCEEDED", result.stderr
    steps = Path(result.paths.root) / "steps"
    assert not (steps / "a").exists()
    assert (steps / "b" / "1.out").read_text() == "out\n"
    assert (steps / "b" / "1.err").read_text() == "err\n"


def test_a_plain_command_runs_without_a_shell(wf: WfHarness) -> None:
    running = wf.start(dag("direct", [step("a", "sleep 300")]))
    try:
        running.wait_for_step("a", "RUNNING")
        spawned = wait_until(lambda: _spawned(running.paths.events, "a"), 30, "spawned record")
        assert Path(f"/proc/{spawned['pid']}/comm").read_text().strip() == "sleep"
    finally:
        wf.cli("cancel", running.run_id, "--grace", "0")


def test_a_missing_program_fails_as_the_shell_would_make_it(wf: WfHarness) -> None:
    result = wf.run(dag("missing", [step("a", "no-such-program-anywhere --flag")]))

    assert result.state == "FAILED"
    ended = next(r for r in result.events if r["type"] == "step" and r["to"] == "FAILED")
    assert ended["exit_code"] == 127
    assert "no-such-program-anywhere" in ended["stderr_tail"]
    assert "not found" in ended["stderr_tail"]


def test_shell_syntax_still_means_the_shell(wf: WfHarness) -> None:
    result = wf.run(dag("shell", [step("a", 'x=7; echo "value $x" | tr a-z A-Z')]))

    assert result.state == "SUCCEEDED", result.stderr
    assert wf.cli("logs", result.run_id or "", "a").stdout == "VALUE 7\n"


def test_large_output_is_kept_whole(wf: WfHarness) -> None:
    size = 50 * 1024 * 1024
    command = [sys.executable, "-c", f"import sys; sys.stdout.buffer.write(b'x' * {size})"]
    result = wf.run(dag("big", [step("a", command)]))

    assert result.state == "SUCCEEDED", result.stderr
    assert (Path(result.paths.root) / "steps" / "a" / "1.out").stat().st_size == size


def test_output_read_before_the_engine_died_is_kept(wf: WfHarness) -> None:
    command = sh("echo first; echo to-err >&2; exec sleep 300")
    running = wf.start(dag("kept", [step("a", command)]))
    out = Path(running.paths.root) / "steps" / "a" / "1.out"
    wait_until(lambda: out.exists() and out.read_text() == "first\n", 30, "first line")
    running.kill()

    assert out.read_text() == "first\n"
    assert (out.parent / "1.err").read_text() == "to-err\n"
    resumed = wf.cli("cancel", running.run_id, "--grace", "0")
    assert resumed.returncode == 0, resumed.stderr


def test_a_process_that_shed_its_mark_and_group_is_found_by_its_output_pipe(
    wf: WfHarness, tmp_path: Path
) -> None:
    """``env -i`` drops WF_ATTEMPT_KEY, ``setsid`` leaves the group; the inherited stdout
    still ties the process to the attempt, live and at take-over."""
    pidfile = tmp_path / "escaped.pid"
    script = (
        f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
    )
    escape = f'env -i setsid {sys.executable} -c "{script}" &'
    result = wf.run(dag("escape", [step("a", sh(f"{escape} sleep 0.2"))]), timeout=60)

    assert result.state == "SUCCEEDED", result.stderr
    escaped = int(wait_until(lambda: pidfile.exists() and pidfile.read_text(), 10, "pid file"))
    ended = next(r for r in result.events if r["type"] == "step" and r["to"] == "SUCCEEDED")
    assert ended["leaked_pids"] == [escaped]
    assert not process_alive(escaped)


def test_take_over_kills_a_process_found_only_by_its_output_pipe(
    wf: WfHarness, tmp_path: Path
) -> None:
    pidfile = tmp_path / "escaped.pid"
    script = (
        f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
    )
    command = f'env -i setsid {sys.executable} -c "{script}" & exec sleep 300'
    running = wf.start(dag("escape-resume", [step("a", sh(command), retries=1)]))
    escaped = int(wait_until(lambda: pidfile.exists() and pidfile.read_text(), 30, "pid file"))
    assert procinfo.find_marked(procinfo.run_mark(running.paths.root) + "/")
    running.kill()

    cancelled = wf.cli("cancel", running.run_id, "--grace", "0")

    assert cancelled.returncode == 0, cancelled.stderr
    assert f"killing leftover process {escaped}" in cancelled.stderr
    assert not process_alive(escaped)


def test_a_signal_to_a_step_reaches_its_whole_group(wf: WfHarness, tmp_path: Path) -> None:
    marker = tmp_path / "child-term"
    child = f"trap 'touch {marker}; exit 0' TERM; sleep 300 & wait"
    result = wf.run(
        dag("group", [step("a", sh(f'sh -c "{child}" & sleep 300'), timeout_sec=1)]),
        timeout=60,
    )

    assert result.state == "FAILED"
    assert marker.exists()  # the whole group got SIGTERM first, so the child could clean up


def _write_pid_and_sleep(pidfile: Path) -> str:
    return f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(300)"


def _spawned(events: str | os.PathLike[str], step_id: str) -> dict[str, object] | None:
    for line in Path(events).read_text().splitlines():
        record = json.loads(line)
        if record["type"] == "spawned" and record["step"] == step_id:
            return dict(record)
    return None
