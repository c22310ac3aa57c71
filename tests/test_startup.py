"""Start-up: each ``wf`` command imports what it needs and nothing more (docs/hooks.md, "When
plugins are loaded").

Every test runs ``wf`` as a real subprocess (``python -m wf_engine``, through a wrapper that
writes ``sys.modules`` down at exit). No test measures time: the guard is on *what* gets
imported, which is what start-up time follows.

The tests assume that no plugin installed in the test environment adds subcommands (the
repository's own ``wf_notify`` does not): such a plugin is rightly imported by every command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from wf_engine.cli import COMMANDS, cli

REPO = Path(__file__).resolve().parent.parent

#: Loading plugins: no command that fires no hook needs any of it.
PLUGIN_MACHINERY = {"pluggy", "importlib.metadata", "wf_engine.plugins.manager", "wf_notify"}
#: Running steps: only ``run``, ``resume`` and ``cancel`` need it.
RUNNER = {
    "subprocess",
    "wf_engine.runtime.runner",
    "wf_engine.runtime.processes",
    "wf_engine.runtime.takeover",
    "wf_engine.runtime.cancellation",
}

WORKFLOW = {
    "workflow_id": "startup",
    "steps": [{"id": "a", "command": "echo hi", "depends_on": []}],
}

#: A plugin module that implements a hook, but adds no command (yet: a test rewrites it).
QUIET_PLUGIN = """
from wf_engine import hookimpl


@hookimpl
def wf_run_finished(run_id):
    pass
"""
GREETING_PLUGIN = (
    QUIET_PLUGIN
    + """

import click


@click.command("greet")
def greet():
    \"\"\"Greet (added by a plugin).\"\"\"
    click.echo("greetings")


@hookimpl
def wf_add_cli_commands(cli):
    cli.add_command(greet)
"""
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: no plugin settings, a cache and a run store of the test's own."""
    result = {
        key: value
        for key, value in os.environ.items()
        if key not in ("WF_PLUGINS", "WF_DISABLED_PLUGINS", "WF_TRACE_PLUGINS", "WF_PLUGIN_CACHE")
    }
    paths = [str(REPO), *result.get("PYTHONPATH", "").split(os.pathsep)]
    result["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    result["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    result["WF_HOME"] = str(tmp_path / "home")
    return result


#: ``python -m wf_engine ARGS`` that writes ``sys.modules`` to ``$WF_TEST_MODULES`` at exit.
#: (``-X importtime`` misses modules loaded with ``importlib.import_module``: plugins, commands.)
PROBE = """
import atexit, os, runpy, sys

def dump():
    with open(os.environ["WF_TEST_MODULES"], "w") as out:
        out.write("\\n".join(sorted(sys.modules)))

atexit.register(dump)
runpy.run_module("wf_engine", run_name="__main__", alter_sys=True)
"""


def wf(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``wf ARGS`` in a process of its own: its result and every module it imported."""
    listing = Path(env["WF_HOME"]).parent / "modules.txt"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env={**env, "WF_TEST_MODULES": str(listing)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    modules = set(listing.read_text().splitlines())
    listing.unlink()
    return done, modules


def install(site: Path, **entry_points: str) -> None:
    """A distribution in ``site`` declaring ``entry_points`` (group ``wf_engine``), as pip would."""
    info = site / "wf_startup_plugins-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: wf-startup-plugins\nVersion: 0.1\n"
    )
    lines = [f"{name} = {module}" for name, module in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(["[wf_engine]", *lines, ""]))
    _touch_later(info / "entry_points.txt")


def _touch_later(path: Path) -> None:
    """Move ``path``'s mtime a second on, so a rewrite within one clock tick still shows."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def with_site(env: dict[str, str], site: Path) -> dict[str, str]:
    return {**env, "PYTHONPATH": os.pathsep.join([str(site), env["PYTHONPATH"]])}


def test_help_and_the_readers_import_no_plugin_machinery_and_no_runner(
    env: dict[str, str], tmp_path: Path
) -> None:
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps(WORKFLOW))
    ran, _ = wf(env, "run", str(workflow), "--run-id", "r1")  # also fills the plugin cache
    assert ran.returncode == 0, ran.stderr
    for args in (
        ["--help"],
        ["validate", str(workflow)],
        ["status", "r1"],
        ["list"],
        ["logs", "r1", "a"],
        ["replay", "r1"],
        ["graph", str(workflow)],
    ):
        done, modules = wf(env, *args)
        assert done.returncode == 0, (args, done.stderr)
        assert modules & (PLUGIN_MACHINERY | RUNNER) == set(), args
    _, modules = wf(env, "--help")
    assert {m for m in modules if m.startswith(("wf_engine.runtime", "wf_engine.log"))} == set()
    assert "wf_engine.core.validation" not in modules


def test_a_cold_cache_gives_the_same_help(env: dict[str, str], tmp_path: Path) -> None:
    cold, _ = wf(env, "--help")
    assert (tmp_path / "cache" / "wf" / "plugins.json").exists()
    warm, modules = wf(env, "--help")
    assert (cold.returncode, cold.stdout) == (warm.returncode, warm.stdout) == (0, warm.stdout)
    assert modules & PLUGIN_MACHINERY == set()


def test_an_installed_plugin_is_loaded_when_a_hook_fires(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = with_site(env, tmp_path / "site")
    install(tmp_path / "site", rec="tests.plugins.recorder")
    wf(env, "--help")
    done, modules = wf(env, "--help")
    assert done.returncode == 0, done.stderr
    assert modules & {"pluggy", "tests.plugins.recorder"} == set()
    listed, modules = wf(env, "plugins")
    assert any(line.startswith("rec: ") for line in listed.stdout.splitlines()), listed.stdout
    assert "tests.plugins.recorder" in modules
    assert "importlib.metadata" not in modules  # the cache knew the entry points


def test_a_plugin_that_adds_commands_is_loaded_before_parsing(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = with_site(env, tmp_path / "site")
    install(tmp_path / "site", hello="tests.plugins.hello_cli")
    for _ in ("cold", "warm"):
        helped, _modules = wf(env, "--help")
        assert "hello" in helped.stdout.split("Commands:")[1]
        said, _modules = wf(env, "hello", "startup")
        assert said.stdout == "hello, startup, from a plugin\n", said.stderr
    blocked, modules = wf({**env, "WF_DISABLED_PLUGINS": "hello"}, "--help")
    assert "hello" not in blocked.stdout.split("Commands:")[1]
    assert "tests.plugins.hello_cli" not in modules


def test_the_cache_follows_an_edited_plugin_and_a_new_install(
    env: dict[str, str], tmp_path: Path
) -> None:
    site = tmp_path / "site"
    env = with_site(env, site)
    module = site / "wf_startup_plugin.py"
    site.mkdir()
    module.write_text(QUIET_PLUGIN)
    install(site, mine="wf_startup_plugin")
    wf(env, "--help")
    quiet, modules = wf(env, "--help")
    assert "wf_startup_plugin" not in modules
    assert "greet" not in quiet.stdout

    module.write_text(GREETING_PLUGIN)  # an editable plugin being worked on
    _touch_later(module)
    for _ in ("stale", "relearnt"):
        greeting, _modules = wf(env, "--help")
        assert "greet" in greeting.stdout.split("Commands:")[1]

    install(site, mine="wf_startup_plugin", hello="tests.plugins.hello_cli")  # pip install
    both, _ = wf(env, "--help")
    assert {"greet", "hello"} <= set(both.stdout.split("Commands:")[1].split())


@pytest.mark.parametrize("how", ["unwritable", "turned off"])
def test_without_a_cache_every_command_still_works(
    env: dict[str, str], tmp_path: Path, how: str
) -> None:
    env = with_site(env, tmp_path / "site")
    install(tmp_path / "site", rec="tests.plugins.recorder")
    expected, _ = wf(env, "--help")
    if how == "unwritable":
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("")
        env = {**env, "XDG_CACHE_HOME": str(blocker)}
    else:
        env = {**env, "WF_PLUGIN_CACHE": "0", "XDG_CACHE_HOME": str(tmp_path / "unused")}
    for _ in range(2):
        helped, modules = wf(env, "--help")
        assert (helped.returncode, helped.stdout, helped.stderr) == (0, expected.stdout, "")
        assert "pluggy" in modules  # nothing known: the plugins are loaded to ask them
    listed, _ = wf(env, "plugins")
    assert any(line.startswith("rec: ") for line in listed.stdout.splitlines()), listed.stderr
    assert not (tmp_path / "unused").exists()


def test_the_help_summaries_are_those_of_the_commands() -> None:
    """``wf --help`` lists the built-in commands from ``COMMANDS``, without importing them."""
    context = click.Context(cli)
    assert cli.list_commands(context) == sorted(COMMANDS)
    for name, (_target, summary) in COMMANDS.items():
        command = cli.get_command(context, name)
        assert command is not None and command.name == name
        stand_in = click.Command(name, help=summary)
        for limit in (30, 45, 60, 200):
            assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit), name
