"""Hooks at every transition: each hookspec fired through the real ``wf`` CLI by a real plugin.

The plugins live in ``tests/plugins/`` and are loaded into ``wf`` subprocesses by module name
(``-p tests.plugins.recorder``, ``$WF_PLUGINS``), so every test puts the repository root on
``PYTHONPATH``. ``tests.plugins.recorder`` writes one JSON line per hook call into
``$WF_TEST_RECORD``; the tests compare those lines with the run's log.

Every test that fires a hook says so with ``@fires("wf_...")``; the meta-test at the end fails
when a hookspec has no such test or no ``### wf_...`` section in ``docs/hooks.md``.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest

from fault_injection.crash import crash_env
from pytest_wf import RunResult, WfHarness, dag, step, wait_until
from wf_engine.plugins import hookspecs

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "hooks.md"
RECORDER = "tests.plugins.recorder"

#: hook name -> the tests that fire it and check what it received (see ``fires``).
FIRED_BY: dict[str, list[Callable[..., Any]]] = {}
Test = TypeVar("Test", bound=Callable[..., Any])


def fires(*hooks: str) -> Callable[[Test], Test]:
    """Register the decorated test as one that fires ``hooks`` and checks their arguments."""

    def register(test: Test) -> Test:
        for hook in hooks:
            FIRED_BY.setdefault(hook, []).append(test)
        return test

    return register


def hookspec_names() -> list[str]:
    """Every hook ``wf_engine.plugins.hookspecs`` declares."""
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return sorted(
        name
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("wf_") and hasattr(function, marker)
    )


# -- helpers -------------------------------------------------------------------------------------


def plugin_env(record: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for a ``wf`` process that imports plugins from ``tests/plugins``."""
    path = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {"PYTHONPATH": os.pathsep.join(path), **extra}
    if record is not None:
        env["WF_TEST_RECORD"] = str(record)
    return env


def run_plain(
    wf: WfHarness, workflow: dict[str, Any], *options: str, env: Mapping[str, str]
) -> RunResult:
    """``wf run`` as a user types it: ``wf.run`` adds ``--json``, which turns progress off."""
    run_id = wf.new_run_id()
    done = wf.cli("run", wf.workflow_file(workflow), "--run-id", run_id, *options, env=env)
    status = wf.status(run_id)
    return RunResult(done.returncode, done.stdout, done.stderr, run_id, wf.home, status=status)


def read_calls(record: Path) -> list[dict[str, Any]]:
    """The recorder's lines, in call order ([] if it never ran)."""
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


def calls(record: Path, hook: str) -> list[dict[str, Any]]:
    return [call for call in read_calls(record) if call["hook"] == hook]


def appended(record: Path) -> list[dict[str, Any]]:
    """The events ``wf_event_appended`` received, in order."""
    return [call["event"] for call in calls(record, "wf_event_appended")]


def progress_lines(stdout: str) -> list[str]:
    """The lines ``wf.progress`` prints (``run … started``, ``…: A -> B``, ``run … STATE``)."""
    return [line for line in stdout.splitlines() if line.startswith("run ") or " -> " in line]


def merged(*envs: Mapping[str, str]) -> dict[str, str]:
    """Environments merged, with ``$WF_PLUGINS`` lists joined instead of replaced."""
    result: dict[str, str] = {}
    for env in envs:
        for key, value in env.items():
            if key == "WF_PLUGINS" and result.get(key):
                value = f"{result[key]},{value}"
            result[key] = value
    return result


def entry_points_env(site: Path, record: Path | None = None, **entry_points: str) -> dict[str, str]:
    """``plugin_env`` plus an installed distribution declaring ``entry_points`` (group wf_engine).

    A ``*.dist-info`` folder on ``PYTHONPATH`` is all ``importlib.metadata`` needs to find them,
    just as it finds the entry points of a ``pip install``-ed plugin.
    """
    info = site / "wf_test_plugins-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wf-test-plugins\nVersion: 0.1\n")
    lines = [f"{name} = {module}" for name, module in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(["[wf_engine]", *lines, ""]))
    env = plugin_env(record)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
    return env


@pytest.fixture
def record(tmp_path: Path) -> Path:
    return tmp_path / "hooks.jsonl"


#: A root; after it, a step that fails its first attempt and is retried, and a sibling; a join.
WORKFLOW = dag(
    "hooks",
    [
        step("a", ["true"]),
        step(
            "flaky",
            'echo "${WF_TEST_GREETING:-no greeting}"; test "$WF_ATTEMPT" -ge 2',
            ["a"],
            retries=1,
            retry_backoff_sec=0.05,
        ),
        step("c", "echo c", ["a"]),
        step("d", ["true"], ["flaky", "c"]),
    ],
    max_parallel=2,
)


# -- every event, in seq order, from one thread ---------------------------------------------------


@fires("wf_event_appended")
def test_p_plugin_receives_every_event_in_seq_order_equal_to_the_log(
    wf: WfHarness, record: Path
) -> None:
    result = wf.run(WORKFLOW, "-p", RECORDER, env=plugin_env(record))
    assert result.returncode == 0, result.stderr
    assert result.state == "SUCCEEDED"
    # The same dicts (envelope, payload and crc), in the same order: nothing missed or repeated.
    assert appended(record) == result.events
    assert [event["seq"] for event in appended(record)] == list(range(1, len(result.events) + 1))
    assert {call["run_id"] for call in read_calls(record)} == {result.run_id}


def test_every_hook_runs_in_the_one_scheduler_thread(wf: WfHarness, record: Path) -> None:
    result = wf.run(WORKFLOW, "-p", RECORDER, env=plugin_env(record))
    assert result.returncode == 0, result.stderr
    every = read_calls(record)
    assert {call["hook"] for call in every} >= set(hookspec_names()) - {"wf_add_cli_commands"}
    assert len({call["thread"] for call in every}) == 1
    assert all(call["main_thread"] for call in every)


@fires("wf_event_appended", "wf_step_transition", "wf_run_finished")
def test_hooks_never_see_a_transition_that_is_not_durable(wf: WfHarness, record: Path) -> None:
    """Each event hook reads ``events.jsonl`` when called: its record is there, as received."""
    result = wf.run(WORKFLOW, "-p", RECORDER, env=plugin_env(record))
    assert result.returncode == 0, result.stderr
    event_calls = [call for call in read_calls(record) if "in_log" in call]
    assert {call["hook"] for call in event_calls} == {
        "wf_event_appended",
        "wf_step_transition",
        "wf_run_finished",
    }
    violations = [call for call in event_calls if not call["in_log"]]
    assert violations == []


# -- a plugin that raises -------------------------------------------------------------------------


@pytest.mark.parametrize("boom_position", ["asked first", "asked last"])
def test_a_raising_plugin_leaves_the_run_succeeded_and_the_others_get_every_event(
    wf: WfHarness, record: Path, boom_position: str
) -> None:
    # pluggy asks the plugin registered last first: cover both orders.
    order = ["-p", RECORDER, "-p", "tests.plugins.boom"]
    if boom_position == "asked last":
        order = ["-p", "tests.plugins.boom", "-p", RECORDER]
    result = run_plain(wf, WORKFLOW, *order, env=plugin_env(record))

    assert result.returncode == 0, result.stderr
    assert result.state == "SUCCEEDED"
    assert {s["state"] for s in result.steps.values()} == {"SUCCEEDED"}
    # Each (plugin, hook) failure is reported the first time only; one line counts the rest.
    reports = [
        ("wf_run_started", f"boom in wf_run_started of {result.run_id}"),
        ("wf_event_appended", "boom at seq 1"),
        ("wf_step_transition", "boom in wf_step_transition of a"),
        ("wf_step_command", "boom in wf_step_command"),
        ("wf_step_env", "boom in wf_step_env"),
        ("wf_run_finished", "boom in wf_run_finished (SUCCEEDED)"),
    ]
    plugin = "wf: plugin 'tests.plugins.boom' failed in"
    *lines, summary = result.stderr.splitlines()
    assert lines == [f"{plugin} {hook}: PluginBoom: {message}" for hook, message in reports]
    assert summary.startswith("wf: plugin failures not shown above: ")
    events, transitions = len(result.events), len(result.transitions())
    assert f"'tests.plugins.boom' in wf_event_appended {events - 1} more" in summary
    assert f"'tests.plugins.boom' in wf_step_transition {transitions - 1} more" in summary
    assert "Traceback" not in result.stderr  # tracebacks only with WF_TRACE_PLUGINS=1
    # The other plugins (the recorder, the progress reporter) saw everything.
    assert appended(record) == result.events
    assert len(calls(record, "wf_step_transition")) == len(result.transitions())
    assert progress_lines(result.stdout)[-1] == f"run {result.run_id} SUCCEEDED"
    # The failing wf_step_command did not change what ran.
    assert wf.cli("logs", str(result.run_id), "c").stdout == "c\n"
    # The log is whole and every transition in it is legal.
    assert wf.cli("replay", "--verify", str(result.run_id)).returncode == 0


# -- each hook -------------------------------------------------------------------------------------


@fires("wf_run_started")
def test_run_started_says_whether_the_runner_resumed_the_run(wf: WfHarness, tmp_path: Path) -> None:
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    run_id = wf.new_run_id()
    crashed = wf.run(
        WORKFLOW, "-p", RECORDER, run_id=run_id, env=merged(plugin_env(first), crash_env(5))
    )
    assert crashed.returncode == -signal.SIGKILL
    resumed = wf.resume(run_id, "-p", RECORDER, env=plugin_env(second))
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.state == "SUCCEEDED"

    (started,) = calls(first, "wf_run_started")
    assert started["resumed"] is False
    assert started["run_id"] == run_id
    assert started["run_dir"] == str(resumed.paths.root)
    assert started["workflow_id"] == "hooks"
    (restarted,) = calls(second, "wf_run_started")
    assert restarted["resumed"] is True
    assert restarted["run_dir"] == str(resumed.paths.root)
    # wf_run_started comes before any event of its runner; the resumed runner starts with its
    # own runner_started record and then sees every record written after it.
    assert read_calls(second)[0]["hook"] != "wf_event_appended"
    resumed_events = appended(second)
    assert resumed_events[0]["type"] == "runner_started"
    assert resumed_events == resumed.events[resumed_events[0]["seq"] - 1 :]


@fires("wf_step_transition")
def test_step_transition_matches_every_step_record(wf: WfHarness, record: Path) -> None:
    result = wf.run(WORKFLOW, "-p", RECORDER, env=plugin_env(record))
    assert result.returncode == 0, result.stderr
    seen = [
        (call["seq"], call["step"], call["from_state"], call["to_state"])
        for call in calls(record, "wf_step_transition")
    ]
    logged = [
        (r["seq"], r["step"], r["from"], r["to"]) for r in result.events if r["type"] == "step"
    ]
    assert seen == logged
    # The retried attempt is in there: a failure that is not final, then READY again.
    assert ("flaky", "RUNNING", "FAILED") in result.transitions("flaky")
    assert ("flaky", "FAILED", "READY") in result.transitions("flaky")
    # Each transition fires right after wf_event_appended of the same record.
    order = [
        (call["hook"], call.get("seq") or call.get("event", {}).get("seq"))
        for call in read_calls(record)
        if call["hook"] in ("wf_event_appended", "wf_step_transition")
    ]
    for index, (hook, seq) in enumerate(order):
        if hook == "wf_step_transition":
            assert order[index - 1] == ("wf_event_appended", seq)


@fires("wf_run_finished")
@pytest.mark.parametrize(
    ("command", "state", "code"), [("true", "SUCCEEDED", 0), ("false", "FAILED", 1)]
)
def test_run_finished_fires_once_with_the_final_state(
    wf: WfHarness, record: Path, command: str, state: str, code: int
) -> None:
    result = wf.run(dag("end", [step("only", [command])]), "-p", RECORDER, env=plugin_env(record))
    assert result.returncode == code, result.stderr
    (finished,) = calls(record, "wf_run_finished")
    assert finished["state"] == state == result.state
    assert finished["event"] == result.events[-1]
    assert finished["event"]["type"] == "run_finished"
    assert read_calls(record)[-1]["hook"] == "wf_run_finished"


@fires("wf_run_finished")
def test_run_finished_fires_for_a_cancelled_run(wf: WfHarness, record: Path) -> None:
    running = wf.start(
        dag("cancel", [step("long", ["sleep", "30"])]), "-p", RECORDER, env=plugin_env(record)
    )
    running.wait_for_step("long", "RUNNING")
    assert wf.cancel(running.run_id, "--grace", "5").returncode == 0
    result = running.wait()
    assert result.state == "CANCELLED"
    (finished,) = calls(record, "wf_run_finished")
    assert finished["state"] == "CANCELLED"
    assert finished["event"] == result.events[-1]


@fires("wf_step_env")
def test_step_env_adds_a_variable_every_attempt_sees(wf: WfHarness, record: Path) -> None:
    result = wf.run(
        WORKFLOW, "-p", RECORDER, "-p", "tests.plugins.step_env", env=plugin_env(record)
    )
    assert result.returncode == 0, result.stderr
    run_id = str(result.run_id)
    first = wf.cli("logs", run_id, "flaky", "--attempt", "1")
    assert first.stdout == "hello flaky attempt 1\n"
    assert wf.cli("logs", run_id, "flaky").stdout == "hello flaky attempt 2\n"
    # Called once per attempt, with the environment the engine built (WF_RUN_ID and the rest).
    env_calls = [(c["step"], c["attempt"]) for c in calls(record, "wf_step_env")]
    assert sorted(env_calls) == [("a", 1), ("c", 1), ("d", 1), ("flaky", 1), ("flaky", 2)]
    assert all(call["has_run_id"] for call in calls(record, "wf_step_env"))
    # Without the plugin, the variable is not there.
    plain = wf.run(WORKFLOW)
    assert wf.cli("logs", str(plain.run_id), "flaky").stdout == "no greeting\n"


@fires("wf_step_command")
def test_step_command_wraps_the_argv_of_every_attempt(wf: WfHarness, record: Path) -> None:
    workflow = dag(
        "wrap",
        [
            step("shell", 'echo "wrapped=${WF_TEST_WRAPPED:-no}"'),
            step("argv", ["sh", "-c", 'echo "wrapped=${WF_TEST_WRAPPED:-no}"']),
        ],
    )
    # The recorder is loaded last, so it is asked first; it returns None and the wrapper decides.
    result = wf.run(
        workflow, "-p", "tests.plugins.wrap_command", "-p", RECORDER, env=plugin_env(record)
    )
    assert result.returncode == 0, result.stderr
    for step_id in ("shell", "argv"):
        assert wf.cli("logs", str(result.run_id), step_id).stdout == "wrapped=wrap_command\n"
    # Plugins get the argv the engine would run ...
    argvs = {call["step"]: call["argv"] for call in calls(record, "wf_step_command")}
    assert argvs == {
        "shell": ["/bin/sh", "-c", 'echo "wrapped=${WF_TEST_WRAPPED:-no}"'],
        "argv": ["sh", "-c", 'echo "wrapped=${WF_TEST_WRAPPED:-no}"'],
    }
    # ... and the definition in the log stays as written.
    created = result.events[0]
    assert [s["command"] for s in created["workflow"]["steps"]] == [
        workflow["steps"][0]["command"],
        workflow["steps"][1]["command"],
    ]


@fires("wf_step_command")
def test_step_command_is_firstresult_and_skips_none_and_failures(wf: WfHarness) -> None:
    workflow = dag(
        "first",
        [step("s", 'echo "wrapped=${WF_TEST_WRAPPED:-no} first=${WF_TEST_WRAPPED_FIRST:-no}"')],
    )
    plugins = ["wrap_command", "wrap_command_first", "pass_command"]
    options = [part for name in plugins for part in ("-p", f"tests.plugins.{name}")]
    result = wf.run(workflow, *options, env=plugin_env())
    assert result.returncode == 0, result.stderr
    # pass_command (tryfirst, loaded last) returned None; then the tryfirst wrapper decided, alone.
    assert wf.cli("logs", str(result.run_id), "s").stdout == "wrapped=no first=1\n"
    # boom (loaded last, so asked first) raises: reported, and the next plugin decides.
    options = ["-p", "tests.plugins.wrap_command", "-p", "tests.plugins.boom"]
    second = wf.run(workflow, *options, env=plugin_env())
    assert second.returncode == 0, second.stderr
    assert "wf: plugin 'tests.plugins.boom' failed in wf_step_command" in second.stderr
    assert wf.cli("logs", str(second.run_id), "s").stdout == "wrapped=wrap_command first=no\n"


@fires("wf_add_cli_commands")
def test_a_plugin_adds_a_subcommand(wf: WfHarness) -> None:
    env = plugin_env(WF_PLUGINS="tests.plugins.hello_cli")
    hello = wf.cli("hello", "plugins", env=env)
    assert hello.returncode == 0, hello.stderr
    assert hello.stdout == "hello, plugins, from a plugin\n"
    assert re.search(r"^\s+hello\s+Say hello", wf.cli("--help", env=env).stdout, re.M)
    # Not loaded, no command (and a usage error, exit 2).
    missing = wf.cli("hello", env=plugin_env())
    assert missing.returncode == 2
    assert "No such command 'hello'" in missing.stderr


@fires("wf_log_before_write", "wf_log_before_sync")
def test_log_hooks_see_every_batch_before_it_is_durable(wf: WfHarness, record: Path) -> None:
    result = wf.run(WORKFLOW, "-p", RECORDER, env=plugin_env(record))
    assert result.returncode == 0, result.stderr
    log_seqs = [r["seq"] for r in result.events]
    batches: dict[int, list[int]] = {}
    for r in result.events:
        batches.setdefault(r["batch"], []).append(r["seq"])
    for hook, in_file in [("wf_log_before_write", False), ("wf_log_before_sync", True)]:
        seen = calls(record, hook)
        assert [seq for call in seen for seq in call["seqs"]] == log_seqs
        assert [call["seqs"] for call in seen] == list(batches.values())
        # Not in the file before the write, in it (not yet fsynced) before the sync. The first
        # batch is written before wf_run_started tells the recorder where the log is.
        assert seen[0]["in_file"] is None
        assert {call["in_file"] for call in seen[1:]} == {in_file}
    # For each batch: before_write, before_sync, then the event hooks of its records.
    order = [call["hook"] for call in read_calls(record)]
    positions = {
        hook: [i for i, name in enumerate(order) if name == hook]
        for hook in ("wf_log_before_write", "wf_log_before_sync")
    }
    events_at = [i for i, name in enumerate(order) if name == "wf_event_appended"]
    seq_at = dict(zip(log_seqs, events_at, strict=True))
    for number, seqs in enumerate(batches.values()):
        write, sync = (
            positions["wf_log_before_write"][number],
            positions["wf_log_before_sync"][number],
        )
        assert write < sync < seq_at[seqs[0]]


@fires("wf_log_before_write")
def test_a_crash_at_before_write_leaves_the_batch_out_of_the_log(
    wf: WfHarness, record: Path
) -> None:
    run_id = wf.new_run_id()
    env = merged(plugin_env(record), crash_env(4, "before_write"))
    crashed = wf.run(WORKFLOW, "-p", RECORDER, run_id=run_id, env=env)
    assert crashed.returncode == -signal.SIGKILL
    assert [r["seq"] for r in crashed.events] == [1, 2]
    # The batch holding seq 4 was offered to before_write, and no event hook ever saw it.
    assert [4 in call["seqs"] for call in calls(record, "wf_log_before_write")][-1]
    assert [event["seq"] for event in appended(record)] == [1, 2]
    assert wf.resume(run_id).state == "SUCCEEDED"


@fires("wf_log_before_sync")
def test_a_crash_at_before_sync_fires_no_event_hook_for_the_batch(
    wf: WfHarness, record: Path
) -> None:
    run_id = wf.new_run_id()
    env = merged(plugin_env(record), crash_env(4, "before_sync"))
    crashed = wf.run(WORKFLOW, "-p", RECORDER, run_id=run_id, env=env)
    assert crashed.returncode == -signal.SIGKILL
    # Written (the page cache kept it) but never fsynced: no event hook saw it.
    assert 4 in [r["seq"] for r in crashed.events]
    assert [event["seq"] for event in appended(record)] == [1, 2]
    assert wf.resume(run_id).state == "SUCCEEDED"


# -- loading, blocking, tracing, listing ----------------------------------------------------------


def test_wf_disabled_plugins_blocks_internal_and_p_plugins(wf: WfHarness, record: Path) -> None:
    shown = run_plain(wf, WORKFLOW, env=plugin_env())
    assert progress_lines(shown.stdout)[0] == f"run {shown.run_id} started"
    env = plugin_env(record, WF_DISABLED_PLUGINS=f"wf.progress, {RECORDER}")
    quiet = run_plain(wf, WORKFLOW, "-p", RECORDER, env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.state == "SUCCEEDED"
    assert progress_lines(quiet.stdout) == []
    assert not record.exists()
    listed = wf.cli("plugins", "-p", RECORDER, env=env).stdout
    assert "wf.progress" not in listed
    assert RECORDER not in listed


def test_wf_trace_plugins_prints_every_call_on_stderr(wf: WfHarness) -> None:
    traced = run_plain(wf, WORKFLOW, env=plugin_env(WF_TRACE_PLUGINS="1"))
    assert traced.returncode == 0, traced.stderr
    lines = [line for line in traced.stderr.splitlines() if line.startswith("wf-trace: ")]
    started = [line for line in lines if line.startswith("wf-trace: wf_run_started(")]
    assert started[0].startswith(f"wf-trace: wf_run_started(run_id='{traced.run_id}', run_dir=")
    assert "wf.progress" in started[0].rsplit(" -> ", 1)[1]
    # Every hook is traced, also those no plugin implements and the pre-durability log hooks.
    assert any(line.startswith("wf-trace: wf_add_cli_commands(") for line in lines)
    assert any(line.startswith("wf-trace: wf_step_env(") for line in lines)
    transitions = [line for line in lines if line.startswith("wf-trace: wf_step_transition(")]
    progress = [line for line in transitions if "wf.progress" in line.rsplit(" -> ", 1)[1]]
    assert len(progress) == len(traced.transitions())
    for off in ("0", ""):
        quiet = run_plain(wf, WORKFLOW, env=plugin_env(WF_TRACE_PLUGINS=off))
        assert "wf-trace:" not in quiet.stderr


def test_wf_plugins_lists_each_plugin_with_its_hooks(wf: WfHarness) -> None:
    env = plugin_env(WF_PLUGINS="tests.plugins.hello_cli")
    listed = wf.cli("plugins", "-p", RECORDER, env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    hooks = ", ".join(name for name in hookspec_names() if name != "wf_add_cli_commands")
    assert f"{RECORDER}: {hooks}" in lines
    assert "tests.plugins.hello_cli: wf_add_cli_commands" in lines
    assert "wf.progress: wf_run_finished, wf_run_started, wf_step_transition" in lines


@fires("wf_event_appended")
def test_entry_point_plugins_load_and_are_blocked_by_their_name(
    wf: WfHarness, tmp_path: Path, record: Path
) -> None:
    env = entry_points_env(
        tmp_path / "site", record, rec=RECORDER, broken="tests.plugins.does_not_exist"
    )
    result = run_plain(wf, WORKFLOW, env=env)
    assert result.returncode == 0, result.stderr
    assert appended(record) == result.events
    # A broken installed plugin is reported and skipped: it never makes wf unusable.
    assert "wf: cannot load plugin 'broken' (tests.plugins.does_not_exist): " in result.stderr
    assert "Traceback" not in result.stderr
    assert any(line.startswith("rec: ") for line in wf.cli("plugins", env=env).stdout.splitlines())

    record.unlink()
    blocked = {**env, "WF_DISABLED_PLUGINS": "rec,broken"}
    quiet = run_plain(wf, WORKFLOW, env=blocked)
    assert quiet.returncode == 0, quiet.stderr
    assert not record.exists()
    assert "broken" not in quiet.stderr
    assert "rec: " not in wf.cli("plugins", env=blocked).stdout


def test_the_empty_plugin_implements_every_hook(wf: WfHarness) -> None:
    """``tests.plugins.empty`` (used to measure the hooks' overhead) covers every hookspec."""
    listed = wf.cli("plugins", "-p", "tests.plugins.empty", env=plugin_env())
    assert f"tests.plugins.empty: {', '.join(hookspec_names())}" in listed.stdout.splitlines()


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("-p", "cannot load plugin module 'tests.plugins.does_not_exist'"),
        ("WF_PLUGINS", "cannot load plugin module 'tests.plugins.does_not_exist'"),
        ("-p invalid", "plugin 'tests.plugins.invalid' is invalid"),
    ],
)
def test_a_plugin_that_cannot_load_is_a_usage_error(wf: WfHarness, how: str, message: str) -> None:
    run_id = wf.new_run_id()
    if how == "WF_PLUGINS":
        result = wf.run(
            WORKFLOW, run_id=run_id, env=plugin_env(WF_PLUGINS="tests.plugins.does_not_exist")
        )
    elif how == "-p":
        result = wf.run(
            WORKFLOW, "-p", "tests.plugins.does_not_exist", run_id=run_id, env=plugin_env()
        )
    else:
        result = wf.run(WORKFLOW, "-p", "tests.plugins.invalid", run_id=run_id, env=plugin_env())
    assert result.returncode == 2
    assert result.stderr.startswith(f"wf: error: {message}")
    assert "Traceback" not in result.stderr
    assert result.status is None  # nothing was created
    assert not os.path.exists(os.path.join(wf.home, "runs", run_id))


# -- fixed bugs, kept as regression tests ----------------------------------------------


def test_a_detached_run_keeps_its_p_plugins(wf: WfHarness, record: Path) -> None:
    started = wf.run(WORKFLOW, "-p", RECORDER, "--detach", env=plugin_env(record))
    assert started.returncode == 0, started.stderr
    wait_until(lambda: wf.status(str(started.run_id))["state"] == "SUCCEEDED", 60, "the run")
    assert [e["seq"] for e in appended(record)] == [r["seq"] for r in started.events]


def test_a_wrapper_hookimpl_runs_or_is_refused(wf: WfHarness, record: Path) -> None:
    result = wf.run(WORKFLOW, "-p", "tests.plugins.wrapper", env=plugin_env(record))
    refused = result.returncode == 2 and "wrapper" in result.stderr
    assert refused or calls(record, "wrapper:wf_event_appended")


def test_a_hookimpl_for_an_unknown_hook_is_refused(wf: WfHarness) -> None:
    result = wf.run(WORKFLOW, "-p", "tests.plugins.typo", env=plugin_env())
    assert result.returncode == 2
    assert "wf_run_finish" in result.stderr


def test_wf_trace_plugins_traces_the_log_hooks(wf: WfHarness) -> None:
    traced = wf.run(
        WORKFLOW, "-p", RECORDER, env=plugin_env(WF_TRACE_PLUGINS="1", WF_TEST_RECORD=os.devnull)
    )
    assert traced.returncode == 0, traced.stderr
    assert "wf-trace: wf_log_before_write(" in traced.stderr
    assert "wf-trace: wf_log_before_sync(" in traced.stderr


def test_a_plugin_that_mutates_the_event_cannot_change_the_run(wf: WfHarness) -> None:
    result = wf.run(WORKFLOW, "-p", "tests.plugins.mutate", env=plugin_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.state == "SUCCEEDED"


def test_a_module_loaded_by_entry_point_and_by_p_is_registered_once(
    wf: WfHarness, tmp_path: Path, record: Path
) -> None:
    env = entry_points_env(tmp_path / "site", record, rec=RECORDER)
    result = wf.run(WORKFLOW, "-p", RECORDER, env=env)
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr
    assert appended(record) == result.events


# -- the meta-test -------------------------------------------------------------------------------


def test_every_hookspec_has_a_test_and_a_docs_entry() -> None:
    """A new hook cannot land without a test that fires it and a section in docs/hooks.md."""
    specs = hookspec_names()
    assert len(specs) >= 4
    missing_tests = [name for name in specs if not FIRED_BY.get(name)]
    assert missing_tests == [], f"hookspecs with no @fires test: {missing_tests}"
    unknown = sorted(set(FIRED_BY) - set(specs))
    assert unknown == [], f"@fires names hooks that do not exist: {unknown}"
    module = globals()
    for tests in FIRED_BY.values():
        for test in tests:
            assert test.__name__.startswith("test_") and module.get(test.__name__) is test

    headings = re.findall(r"^### (wf_\w+)\s*$", DOCS.read_text(), flags=re.M)
    assert sorted(set(specs) - set(headings)) == [], "hookspecs missing from docs/hooks.md"
    assert sorted(set(headings) - set(specs)) == [], "docs/hooks.md documents unknown hooks"
    assert len(headings) == len(set(headings)), "a hook is documented twice"
