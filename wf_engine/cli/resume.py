"""``wf resume RUN_ID`` / ``wf resume --all``: continue runs whose runner died."""

from __future__ import annotations

import click

from wf_engine.cli.context import EXIT_CODES, CliContext, note
from wf_engine.engine import resume_run
from wf_engine.errors import EXIT_CANCELLED, EXIT_OK, EXIT_RUN_FAILED, WfError
from wf_engine.inspect import read_run
from wf_engine.ownership import is_owned
from wf_engine.plugins import Plugins

_SEVERITY = [EXIT_OK, EXIT_CANCELLED, EXIT_RUN_FAILED]


@click.command("resume")
@click.argument("run_id", required=False)
@click.option("--all", "resume_all", is_flag=True, help="Every unfinished run with no live runner.")
@click.option("-p", "--plugin", "plugin_modules", multiple=True, metavar="MODULE")
@click.pass_obj
def resume_command(
    obj: CliContext, run_id: str | None, resume_all: bool, plugin_modules: tuple[str, ...]
) -> None:
    """Continue RUN_ID: finished steps never run again, interrupted ones run again."""
    if resume_all == (run_id is not None):
        raise click.UsageError("give either RUN_ID or --all")
    plugins = obj.plugins_for_run(plugin_modules, progress=True)
    if run_id is not None:
        raise SystemExit(_resume_one(obj, run_id, plugins))
    worst = EXIT_OK
    for candidate in obj.store.run_ids():
        paths = obj.store.paths(candidate)
        try:
            if is_owned(paths.runner_lock) or read_run(paths).state.finished is not None:
                continue
            code = _resume_one(obj, candidate, plugins)
        except WfError as error:
            note(f"{candidate}: {error}")
            code = error.exit_code
        worst = max(worst, code, key=lambda c: _SEVERITY.index(c) if c in _SEVERITY else 9)
    raise SystemExit(worst)


def _resume_one(obj: CliContext, run_id: str, plugins: Plugins) -> int:
    runner = resume_run(obj.store, run_id, plugins, note)
    if runner is None:
        note(f"run {run_id} already finished")
        return EXIT_CODES[read_run(obj.store.existing(run_id)).state.status]
    return EXIT_CODES[runner.execute()]
