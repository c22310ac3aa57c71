"""Plugins cannot change a run's outcome: whatever they raise, whatever they hand back.

The facade (``wf_engine.plugins.manager.Plugins``) is tested in this process with plugin
objects; the rest through the real CLI, with the misbehaving plugins of ``tests/plugins/``
loaded by module name (``-p`` or ``$WF_PLUGINS``), as a user would load them.
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_wf import RunResult, WfHarness, dag, step
from tests.plugins.base_exit import RAISES
from wf_engine import hookimpl
from wf_engine.plugins.manager import BadHookValue, Plugins

REPO = Path(__file__).resolve().parent.parent
BASE_EXIT = "tests.plugins.base_exit"

#: A root, a step that fails its first attempt and is retried, a sibling and a join.
WORKFLOW = dag(
    "safety",
    [
        step("a", ["true"]),
        step("flaky", 'test "$WF_ATTEMPT" -ge 2', ["a"], retries=1, retry_backoff_sec=0.05),
        step("c", "echo c", ["a"]),
        step("d", ["true"], ["flaky", "c"]),
    ],
    max_parallel=2,
)
FAILING = dag("failing", [step("a", ["true"]), step("b", "exit 5", ["a"])])

#: Every hook of ``tests.plugins.base_exit`` (all of them) and the one line each must produce.
ALL_HOOKS = [
    "wf_add_cli_commands",
    "wf_run_started",
    "wf_event_appended",
    "wf_step_transition",
    "wf_run_finished",
    "wf_step_env",
    "wf_step_command",
    "wf_log_before_write",
    "wf_log_before_sync",
]


@pytest.fixture(autouse=True)
def no_plugin_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process facade tests load only the plugins they pass."""
    for name in ("WF_PLUGINS", "WF_DISABLED_PLUGINS", "WF_TRACE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)


def load(*plugins: object) -> Plugins:
    return Plugins.load(internal=[(f"p{i}", p) for i, p in enumerate(plugins)], entry_points=False)


def plugin_env(**extra: str) -> dict[str, str]:
    """Environment for a ``wf`` process that imports plugins from ``tests/plugins``."""
    path = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path), **extra}


def run_plain(wf: WfHarness, workflow: dict[str, Any], *options: str, **env: str) -> RunResult:
    """``wf run`` with its progress output (``wf.run`` adds ``--json``, which turns it off)."""
    run_id = wf.new_run_id()
    args = ["run", wf.workflow_file(workflow), "--run-id", run_id, *options]
    done = wf.cli(*args, env=plugin_env(**env))
    status = wf.status(run_id)
    return RunResult(done.returncode, done.stdout, done.stderr, run_id, wf.home, status=status)


def failure_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("wf: ")]


def step_records(result: RunResult, name: str) -> list[dict[str, Any]]:
    return [r for r in result.events if r["type"] == "step" and r["step"] == name]


# -- the facade, in this process ---------------------------------------------------------------


class Raises:
    """Raises ``error`` in ``wf_event_appended`` and in both log hooks."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    @hookimpl
    def wf_event_appended(self) -> None:
        raise self.error

    @hookimpl
    def wf_log_before_write(self) -> None:
        raise self.error

    @hookimpl
    def wf_log_before_sync(self) -> None:
        raise self.error


class Seen:
    """Counts the ``wf_event_appended`` calls that reach it."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def wf_event_appended(self) -> None:
        self.calls += 1


class Answers:
    """Answers ``wf_step_command`` with ``argv`` and sets ``env[name] = value``."""

    def __init__(self, argv: Any = None, name: Any = None, value: Any = None) -> None:
        self.argv, self.name, self.value = argv, name, value

    @hookimpl
    def wf_step_command(self) -> Any:
        return self.argv

    @hookimpl
    def wf_step_env(self, env: dict[Any, Any]) -> None:
        if self.name is not None:
            env[self.name] = self.value


class RaisingWrapper:
    """A wrapper around ``wf_run_finished`` and ``wf_log_before_sync`` raising ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    @hookimpl(wrapper=True)
    def wf_run_finished(self) -> Generator[None, None, None]:
        yield
        raise self.error

    @hookimpl(wrapper=True)
    def wf_log_before_sync(self) -> Generator[None, None, None]:
        raise self.error
        yield


STEP_RECORD = {"seq": 1, "type": "step", "step": "a", "from": "PENDING", "to": "READY"}
FINISHED_RECORD = {"seq": 2, "type": "run_finished", "state": "SUCCEEDED"}


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (SystemExit(0), "SystemExit: 0"),
        (KeyboardInterrupt(), "KeyboardInterrupt"),
        (GeneratorExit(), "GeneratorExit"),
    ],
)
def test_a_base_exception_is_reported_once_and_the_repeats_counted(
    error: BaseException, shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = Seen()
    plugins = load(seen, Raises(error))  # registered last: asked first
    for _ in range(5):
        plugins.event_appended("r", STEP_RECORD)
    assert seen.calls == 5  # the other plugin got every call
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"wf: plugin 'p1' failed in wf_event_appended: {shown}"]
    plugins.report_suppressed()
    plugins.report_suppressed()  # once only
    assert capsys.readouterr().err.splitlines() == [
        "wf: plugin failures not shown above: 'p1' in wf_event_appended 4 more"
    ]


def test_no_summary_when_nothing_was_suppressed(capsys: pytest.CaptureFixture[str]) -> None:
    plugins = load(Raises(SystemExit(3)))
    plugins.event_appended("r", STEP_RECORD)
    plugins.report_suppressed()
    assert capsys.readouterr().err == "wf: plugin 'p0' failed in wf_event_appended: SystemExit: 3\n"


def test_a_raising_wrapper_cannot_leave_the_facade(capsys: pytest.CaptureFixture[str]) -> None:
    plugins = load(RaisingWrapper(SystemExit(0)))
    plugins.event_appended("r", FINISHED_RECORD)
    plugins.log_before_sync("r", [])
    assert capsys.readouterr().err.splitlines() == [
        "wf: plugin 'p0' failed in wf_run_finished: SystemExit: 0",
        "wf: plugin 'p0' failed in wf_log_before_sync: SystemExit: 0",
    ]


@pytest.mark.parametrize("plugin", [Raises, RaisingWrapper], ids=["impl", "wrapper"])
def test_log_hooks_let_an_oserror_through_and_report_anything_else(
    plugin: type[Raises | RaisingWrapper], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(OSError, match="disk"):
        load(plugin(OSError(errno.EIO, "disk"))).log_before_sync("r", [])
    plugins = load(plugin(ValueError("not a disk")))
    plugins.log_before_sync("r", [])
    assert "failed in wf_log_before_sync: ValueError: not a disk" in capsys.readouterr().err


def test_the_reporter_survives_a_closed_or_missing_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = io.StringIO()
    closed.close()
    plugins = load(Raises(SystemExit(0)))
    for stderr in (closed, None):
        monkeypatch.setattr("sys.stderr", stderr)
        plugins.event_appended("r", STEP_RECORD)
        plugins.log_before_write("r", [])
        plugins.report_suppressed()


def test_step_command_keeps_or_replaces_the_argv() -> None:
    assert load(Answers()).step_command("r", "a", 1, ["true"]) == ["true"]
    assert load(Answers(["nice", "true"])).step_command("r", "a", 1, ["true"]) == ["nice", "true"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ("echo hi", "wf_step_command returned 'echo hi' (str), not a non-empty list of strings"),
        (("echo",), "wf_step_command returned ('echo',) (tuple), not a non-empty list of strings"),
        ([], "wf_step_command returned [] (an empty list), not a non-empty list of strings"),
        (["echo", 3], "wf_step_command returned argv[1] = 3 (int), not a string"),
        (["a\0b"], r"wf_step_command returned argv[0] = 'a\x00b', which contains a NUL character"),
        (["\ud800"], "wf_step_command returned argv[0] = '\\ud800', which cannot be encoded"),
        (["x" * 200 + "\0"], "wf_step_command returned argv[0] = 'xxxxx"),
    ],
)
def test_step_command_refuses_an_argv_it_cannot_exec(argv: Any, message: str) -> None:
    with pytest.raises(BadHookValue) as raised:
        load(Answers(argv)).step_command("r", "a", 1, ["true"])
    assert str(raised.value).startswith(message)
    assert len(str(raised.value)) < 160  # the bad value is shortened


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("N", 3, "wf_step_env set env['N'] to 3 (int), not a string"),
        ("N", None, "wf_step_env set env['N'] to None (NoneType), not a string"),
        ("N", "a\0b", r"wf_step_env set env['N'] to 'a\x00b', which contains a NUL character"),
        ("N", "\ud800", "wf_step_env set env['N'] to '\\ud800', which cannot be encoded"),
        ("", "1", "wf_step_env added the variable name '', which is empty"),
        ("A=B", "1", "wf_step_env added the variable name 'A=B', which contains '='"),
        ("A\0B", "1", "wf_step_env added the variable name 'A\\x00B', which contains a NUL"),
        (3, "1", "wf_step_env added the variable name 3 (int), not a string"),
    ],
)
def test_step_env_refuses_a_variable_it_cannot_exec(name: Any, value: Any, message: str) -> None:
    with pytest.raises(BadHookValue) as raised:
        load(Answers(name=name, value=value)).step_env("r", "a", 1, {"PATH": "/bin"})
    assert str(raised.value).startswith(message)


def test_step_env_blames_plugins_only_for_what_they_changed() -> None:
    env = {"OLD": "a\0b", "PATH": "/bin"}  # not the plugin's doing: the engine checks its own
    load(Answers(name="NEW", value="fine")).step_env("r", "a", 1, env)
    assert env["NEW"] == "fine"


# -- BaseExceptions through the real CLI ---------------------------------------------------------


@pytest.mark.parametrize("raised", sorted(RAISES))
def test_a_plugin_raising_base_exceptions_in_every_hook_changes_nothing(
    wf: WfHarness, raised: str
) -> None:
    result = run_plain(wf, WORKFLOW, WF_PLUGINS=BASE_EXIT, WF_TEST_RAISE=raised)
    assert result.returncode == 0, result.stderr
    assert result.state == "SUCCEEDED"
    assert {s["state"] for s in result.steps.values()} == {"SUCCEEDED"}
    assert "Traceback" not in result.stderr
    lines = failure_lines(result.stderr)
    name = raised.split("(")[0]
    for hook in ALL_HOOKS:
        reports = [line for line in lines if f"failed in {hook}: {name}" in line]
        assert len(reports) == 1, (hook, lines)
        assert reports[0].startswith(f"wf: plugin '{BASE_EXIT}' failed in {hook}: {name}")
    (summary,) = [line for line in lines if "not shown above" in line]
    assert f"'{BASE_EXIT}' in wf_event_appended {len(result.events) - 1} more" in summary
    assert len(lines) == len(ALL_HOOKS) + 1
    assert result.stdout.splitlines()[-1] == f"run {result.run_id} SUCCEEDED"
    assert wf.cli("replay", "--verify", str(result.run_id)).returncode == 0


@pytest.mark.parametrize("raised", ["SystemExit(0)", "SystemExit(3)"])
@pytest.mark.parametrize("hook", ["wf_step_transition", "wf_run_finished"])
def test_sys_exit_in_a_hook_keeps_the_exit_code_of_a_failed_run(
    wf: WfHarness, raised: str, hook: str
) -> None:
    result = run_plain(wf, FAILING, "-p", BASE_EXIT, WF_TEST_RAISE=raised, WF_TEST_RAISE_IN=hook)
    assert (result.returncode, result.state) == (1, "FAILED"), result.stderr
    assert result.step_state("b") == "FAILED"
    expected = f"wf: plugin '{BASE_EXIT}' failed in {hook}: SystemExit: {raised[-2]}"
    assert failure_lines(result.stderr)[0] == expected
    assert "Traceback" not in result.stderr


def test_raising_wrappers_are_caught_by_the_facade(wf: WfHarness) -> None:
    result = run_plain(wf, WORKFLOW, "-p", "tests.plugins.raising_wrappers")
    assert result.returncode == 0, result.stderr
    assert result.state == "SUCCEEDED"
    assert "Traceback" not in result.stderr
    assert "Warning" not in result.stderr  # pluggy's teardown warning would repeat the report
    plugin = "wf: plugin 'tests.plugins.raising_wrappers' failed in"
    assert failure_lines(result.stderr)[:-1] == [
        f"{plugin} wf_log_before_write: ValueError: not an OSError, batch 1",
        f"{plugin} wf_event_appended: RuntimeError: teardown at seq 1",
        f"{plugin} wf_step_transition: SystemExit: 0",
        f"{plugin} wf_step_command: KeyboardInterrupt",
    ]
    assert "not shown above" in failure_lines(result.stderr)[-1]
    assert wf.cli("logs", str(result.run_id), "c").stdout == "c\n"  # the argv was kept


def test_a_value_error_in_a_log_hook_is_reported_and_the_run_goes_on(wf: WfHarness) -> None:
    env = plugin_env(WF_TEST_LOG_RAISE="ValueError")
    result = wf.run(WORKFLOW, "-p", "tests.plugins.log_raise", env=env)
    assert result.returncode == 0, result.stderr
    assert result.state == "SUCCEEDED"
    assert failure_lines(result.stderr) == [
        "wf: plugin 'tests.plugins.log_raise' failed in wf_log_before_sync: "
        "ValueError: a plugin bug at batch 3"
    ]


def test_an_oserror_in_a_log_hook_stops_the_runner_like_a_failed_fsync(wf: WfHarness) -> None:
    env = plugin_env(WF_TEST_LOG_RAISE="OSError")
    result = wf.run(WORKFLOW, "-p", "tests.plugins.log_raise", env=env)
    assert result.returncode == 4, result.stderr
    assert "injected fsync failure" in result.stderr
    assert "Traceback" not in result.stderr
    assert wf.resume_until_finished(str(result.run_id)).state == "SUCCEEDED"


# -- values the engine cannot exec ---------------------------------------------------------------

RETRIED = dag("retried", [step("s", "echo ran", retries=1, retry_backoff_sec=0.05)])


@pytest.mark.parametrize(
    ("variable", "kind", "message"),
    [
        ("WF_TEST_BAD_ENV", "int", "wf_step_env set env['N'] to 3 (int), not a string"),
        ("WF_TEST_BAD_ENV", "equals", "wf_step_env added the variable name 'A=B', which contains"),
        ("WF_TEST_BAD_ARGV", "str", "wf_step_command returned 'echo hello' (str), not a non-"),
        ("WF_TEST_BAD_ARGV", "nul", "wf_step_command returned argv[1] = 'a\\x00b', which "),
    ],
)
def test_a_bad_hook_value_fails_the_attempt_as_a_spawn_error(
    wf: WfHarness, variable: str, kind: str, message: str
) -> None:
    result = wf.run(RETRIED, "-p", "tests.plugins.bad_values", env=plugin_env(**{variable: kind}))
    assert result.returncode == 0, result.stderr
    assert result.state == "SUCCEEDED"
    assert "Traceback" not in result.stderr
    failed = [r for r in step_records(result, "s") if r["to"] == "FAILED"]
    assert len(failed) == 1
    assert (failed[0]["attempt"], failed[0]["reason"]) == (1, "spawn_error")
    assert failed[0]["error"].startswith(message)
    assert wf.cli("logs", str(result.run_id), "s").stdout == "ran\n"  # attempt 2 ran as written


def test_a_bad_hook_value_without_retries_fails_the_run(wf: WfHarness) -> None:
    result = wf.run(
        FAILING, "-p", "tests.plugins.bad_values", env=plugin_env(WF_TEST_BAD_ENV="nul")
    )
    assert (result.returncode, result.state) == (1, "FAILED"), result.stderr
    (failed,) = [r for r in step_records(result, "a") if r["to"] == "FAILED"]
    assert failed["reason"] == "spawn_error"
    assert failed["final"] is True
    assert result.step_state("b") != "SUCCEEDED"
    assert wf.cli("replay", "--verify", str(result.run_id)).returncode == 0
