"""``wf run WORKFLOW``: validate, create the run, execute it (or hand it to a background runner)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

import click

from wf_engine.cli.context import EXIT_CODES, CliContext, note, plugin_option
from wf_engine.cli.display import display_options
from wf_engine.core.model import EXECUTOR_NAMES, MAX_PARALLEL
from wf_engine.errors import EXIT_CANCELLED, EXIT_OK
from wf_engine.log import durable
from wf_engine.plugins.manager import Plugins
from wf_engine.runtime.cancellation import cancel_run
from wf_engine.runtime.executors import ExecutorChoice, resolve
from wf_engine.runtime.runner import Runner
from wf_engine.runtime.runview import live_summary, read_run
from wf_engine.runtime.stopsignals import StopSignals
from wf_engine.runtime.store import check_run_id
from wf_engine.runtime.takeover import RunRequest, create_run, resume_run
from wf_engine.runtime.workflow_file import load_workflow

_Command = TypeVar("_Command", bound=Callable[..., object])


def executor_options(default: str) -> Callable[[_Command], _Command]:
    """``--executor`` and ``--scheduler`` (``wf run``, ``wf rerun``); ``default`` says what
    applies after the environment when neither is given."""

    def add(command: _Command) -> _Command:
        command = click.option(
            "--scheduler",
            metavar="ADDRESS",
            help=f"Dask scheduler to use (default: $WF_DASK_SCHEDULER, else {default}, "
            "else a LocalCluster on this machine).",
        )(command)
        return click.option(
            "--executor",
            type=click.Choice(EXECUTOR_NAMES),
            help=f"What runs the steps (default: $WF_EXECUTOR, else {default}, else local).",
        )(command)

    return add


@click.command(
    "run",
    epilog="""\b
Examples:
  wf run examples/image_pipeline/workflow.json
  wf run flow.json --max-parallel 2 --plain > run.log
  wf run flow.json --detach && wf status --watch @last
  wf run flow.json --executor dask --scheduler tcp://10.0.0.5:8786""",
)
@click.argument("workflow_file", metavar="WORKFLOW", type=click.Path())
@click.option("--run-id", help="Id for the run; an existing unfinished run is resumed.")
@click.option("--max-parallel", type=click.IntRange(1, MAX_PARALLEL), help="Steps running at once.")
@click.option("--fail-fast", is_flag=True, help="Cancel the rest when a step fails for good.")
@click.option("--detach", is_flag=True, help="Run in the background; print the run id.")
@click.option("--json", "as_json", is_flag=True, help="Print the final status as JSON.")
@executor_options(default="the workflow's")
@plugin_option
@display_options
@click.pass_obj
def run_command(
    obj: CliContext,
    workflow_file: str,
    run_id: str | None,
    max_parallel: int | None,
    fail_fast: bool,
    detach: bool,
    as_json: bool,
    executor: str | None,
    scheduler: str | None,
    plugin_modules: tuple[str, ...],
) -> None:
    """Run WORKFLOW (a JSON file) to the end; exit 0, 1 (FAILED) or 3 (CANCELLED)."""
    # From here on SIGINT/SIGTERM is a stop request, so no instant of start-up can leave a
    # RUNNING run without an owner: the runner (or the detach below) turns it into a cancel.
    signals = StopSignals().install()
    workflow = load_workflow(workflow_file)
    choice = resolve(executor, scheduler, ExecutorChoice.of_workflow(workflow))
    plugins = obj.plugins_for_run(plugin_modules, progress=not (as_json or detach))
    if signals.requested:
        note("interrupted before the run was created: nothing was created")
        raise SystemExit(EXIT_CANCELLED)
    if run_id is not None and obj.store.exists(check_run_id(run_id)):
        note(f"run {run_id} exists: resuming it")
        resumed = resume_run(obj.store, run_id, plugins, note, signals)
        if resumed is None:
            note(f"run {run_id} already finished")
            state = read_run(obj.store.existing(run_id)).state
            if as_json:
                click.echo(json.dumps(live_summary(state), indent=2))
            raise SystemExit(EXIT_CODES[state.status])
        runner = resumed
    else:
        request = RunRequest(
            workflow=workflow,
            base_dir=os.path.dirname(os.path.abspath(workflow_file)),
            run_id=run_id,
            max_parallel=max_parallel,
            fail_fast=fail_fast,
            executor=choice,
        )
        runner = create_run(obj.store, request, plugins, signals)
    run_to_the_end(obj, runner, plugins, signals, detach, as_json)


def run_to_the_end(
    obj: CliContext,
    runner: Runner,
    plugins: Plugins,
    signals: StopSignals,
    detach: bool,
    as_json: bool,
) -> NoReturn:
    """Execute a run this command created (or hand it to a background runner), then exit
    with its status: 0, 1 (FAILED) or 3 (CANCELLED)."""
    if detach:
        raise SystemExit(_detach(obj, runner, plugins, signals))
    with obj.watching(runner):
        runner.execute()
    if as_json:
        click.echo(json.dumps(live_summary(runner.state), indent=2))
    raise SystemExit(EXIT_CODES[runner.state.status])


def _detach(obj: CliContext, runner: Runner, plugins: Plugins, signals: StopSignals) -> int:
    """Hand the new run to a background ``wf resume`` (same plugins); print its id.

    A stop request before the hand-over cancels the run here; one during it is delivered to
    the new owner as ``wf cancel`` would. Either way the run ends CANCELLED and this exits 3.
    """
    if signals.requested:
        return EXIT_CODES[runner.execute()]
    runner.release()
    log_path = os.path.join(runner.paths.root, "runner.log")
    plugin_args = [arg for module in plugins.modules for arg in ("-p", module)]
    command = [sys.executable, "-m", "wf_engine", "--home", obj.store.home, "resume"]
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, durable.file_mode())
    with open(fd, "ab") as log:
        subprocess.Popen(
            [*command, runner.run_id, *plugin_args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    if signals.requested:
        return EXIT_CODES[cancel_run(obj.store, runner.run_id, plugins, note)]
    click.echo(runner.run_id)
    note(f"running in the background; follow it with: wf status --watch {runner.run_id}")
    return EXIT_OK
