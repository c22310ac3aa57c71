"""``wf resume RUN_ID`` / ``wf resume --all``: continue runs whose runner died."""

from __future__ import annotations

import click

from wf_engine.cli.context import EXIT_CODES, CliContext, note, plugin_option
from wf_engine.cli.display import display_options
from wf_engine.cli.render import error_text
from wf_engine.cli.runids import RUN_ID
from wf_engine.errors import EXIT_CANCELLED, EXIT_CORRUPT, EXIT_OK, EXIT_RUN_FAILED, WfError
from wf_engine.plugins.manager import Plugins
from wf_engine.runtime.ownership import is_owned
from wf_engine.runtime.runview import read_run
from wf_engine.runtime.stopsignals import StopSignals
from wf_engine.runtime.takeover import resume_run

_SEVERITY = [EXIT_OK, EXIT_CANCELLED, EXIT_RUN_FAILED]


@click.command(
    "resume",
    epilog="""\b
Examples:
  wf resume @last
  wf resume image_pipeline-2026   (a unique prefix of the run id)
  wf resume --all
  wf resume @last --scheduler tcp://10.0.0.6:8786   (the run's Dask cluster moved)""",
)
@click.argument("run_id", required=False, type=RUN_ID)
@click.option("--all", "resume_all", is_flag=True, help="Every unfinished run with no live runner.")
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="New address of the Dask scheduler the run recorded (default: the recorded one).",
)
@plugin_option
@display_options
@click.pass_obj
def resume_command(
    obj: CliContext,
    run_id: str | None,
    resume_all: bool,
    scheduler: str | None,
    plugin_modules: tuple[str, ...],
) -> None:
    """Continue RUN_ID: finished steps never run again, interrupted ones run again.

    The run goes on with the executor it recorded (local, or the same Dask scheduler)."""
    if resume_all == (run_id is not None):
        raise click.UsageError("give either RUN_ID or --all")
    if resume_all and scheduler is not None:
        raise click.UsageError("--scheduler names one run's new address: give RUN_ID, not --all")
    # A signal from here on stops the run this command owns (or is taking over) cleanly.
    signals = StopSignals().install()
    plugins = obj.plugins_for_run(plugin_modules, progress=True)
    if run_id is not None:
        raise SystemExit(_resume_one(obj, run_id, plugins, signals, scheduler))
    worst = EXIT_OK
    for candidate in obj.store.run_ids():
        if signals.requested:
            break
        worst = max(worst, _resume_candidate(obj, candidate, plugins, signals), key=_severity)
    raise SystemExit(worst)


def _severity(code: int) -> int:
    """Worse codes rank higher: ok < cancelled < failed < anything else (unreadable: 4)."""
    return _SEVERITY.index(code) if code in _SEVERITY else len(_SEVERITY)


def _resume_candidate(obj: CliContext, run_id: str, plugins: Plugins, signals: StopSignals) -> int:
    """Resume one run of ``--all`` if it needs it; a run that cannot be read is reported and
    skipped, so it never keeps the healthy runs from being resumed."""
    paths = obj.store.paths(run_id)
    try:
        if is_owned(paths.runner_lock) or read_run(paths).state.finished is not None:
            return EXIT_OK
        return _resume_one(obj, run_id, plugins, signals)
    except (WfError, OSError) as error:
        code = error.exit_code if isinstance(error, WfError) else EXIT_CORRUPT
        label = "UNREADABLE: " if code == EXIT_CORRUPT else ""
        note(f"{run_id}: {label}{error_text(error)}")
        return code


def _resume_one(
    obj: CliContext,
    run_id: str,
    plugins: Plugins,
    signals: StopSignals,
    scheduler: str | None = None,
) -> int:
    runner = resume_run(obj.store, run_id, plugins, note, signals, scheduler=scheduler)
    if runner is None:
        note(f"run {run_id} already finished")
        return EXIT_CODES[read_run(obj.store.existing(run_id)).state.status]
    with obj.watching(runner):
        return EXIT_CODES[runner.execute()]
