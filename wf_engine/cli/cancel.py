"""``wf cancel RUN_ID``: stop a run and every process it started."""

from __future__ import annotations

import math

import click

from wf_engine.cli.context import CliContext, note
from wf_engine.cli.runids import RUN_ID
from wf_engine.core.model import MAX_SECONDS
from wf_engine.core.states import RunStatus
from wf_engine.errors import EXIT_OK, EXIT_RUN_FAILED
from wf_engine.runtime.cancellation import cancel_run


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """``FloatRange`` lets NaN through (it compares false with both bounds)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds", ctx, param)
    return value


@click.command(
    "cancel",
    epilog="""\b
Examples:
  wf cancel @last
  wf cancel image_pipeline-2026 --grace 2   (a unique prefix of the run id)
  wf cancel @last --force                   (the runner hangs: kill it, then cancel)""",
)
@click.argument("run_id", type=RUN_ID)
@click.option(
    "--grace",
    type=click.FloatRange(min=0, max=MAX_SECONDS),
    callback=_finite,
    metavar="SEC",
    help="Seconds between SIGTERM and SIGKILL (default: each step's kill_grace_sec; "
    f"at most {MAX_SECONDS}).",
)
@click.option("--no-wait", is_flag=True, help="Return once the request is delivered.")
@click.option(
    "--force",
    is_flag=True,
    help="If the runner does not respond (stopped, hung), kill it and its steps and take over.",
)
@click.pass_obj
def cancel_command(
    obj: CliContext, run_id: str, grace: float | None, no_wait: bool, force: bool
) -> None:
    """Cancel RUN_ID, live or not; waits until it is CANCELLED unless --no-wait."""
    plugins = obj.plugins_for_run((), progress=False)
    status = cancel_run(
        obj.store, run_id, plugins, note, grace_sec=grace, wait=not no_wait, force=force
    )
    if status is RunStatus.CANCELLED:
        click.echo(f"run {run_id} CANCELLED")
        raise SystemExit(EXIT_OK)
    if status is RunStatus.RUNNING:
        click.echo(f"run {run_id}: cancel requested")
        raise SystemExit(EXIT_OK)
    click.echo(f"run {run_id} already finished: {status}", err=True)
    raise SystemExit(EXIT_RUN_FAILED)
