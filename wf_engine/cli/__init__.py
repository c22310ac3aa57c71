"""The ``wf`` command line: one module per command, attached to one group.

Engine errors (``WfError``) become a one-line message and their exit code here, at the edge, and
nowhere deeper: 0 ok, 1 run FAILED, 2 usage or invalid input, 3 run CANCELLED, 4 corrupt or
unreadable run store.
"""

from __future__ import annotations

import sys

import click

from wf_engine.cli.cancel import cancel_command
from wf_engine.cli.context import CliContext
from wf_engine.cli.graph import graph_command
from wf_engine.cli.inspect import list_command, logs_command, replay_command, status_command
from wf_engine.cli.plugins import plugins_command
from wf_engine.cli.resume import resume_command
from wf_engine.cli.run import run_command
from wf_engine.cli.validate import validate_command
from wf_engine.errors import EXIT_CORRUPT, WfError
from wf_engine.plugins import Plugins
from wf_engine.validate import WorkflowInvalid


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    metavar="DIR",
    help="Run store folder (default: $WF_HOME, else ./.wf).",
)
@click.version_option(package_name="wf-engine")
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """wf: run DAGs of shell steps durably; resume, cancel and replay them."""
    ctx.obj = CliContext(home, ctx.obj)


for _command in (
    run_command,
    status_command,
    cancel_command,
    replay_command,
    resume_command,
    list_command,
    validate_command,
    logs_command,
    graph_command,
    plugins_command,
):
    cli.add_command(_command)


def report_error(error: WfError) -> None:
    if isinstance(error, WorkflowInvalid):
        for problem in error.problems:
            click.echo(f"wf: {error.source}: {problem}", err=True)
        click.echo(f"wf: {len(error.problems)} problem(s); nothing was run", err=True)
    else:
        click.echo(f"wf: error: {error}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``wf``: loads plugins (they may add commands), then dispatches."""
    try:
        plugins = Plugins.load()
        plugins.add_cli_commands(cli)
        code = cli.main(args=argv, prog_name="wf", standalone_mode=False, obj=plugins)
    except WfError as error:
        report_error(error)
        sys.exit(error.exit_code)
    except OSError as error:
        # The run store (or a file the user named) cannot be read or written as it must be.
        where = f"{error.filename}: " if error.filename else ""
        click.echo(f"wf: error: {where}{error.strerror or error}", err=True)
        sys.exit(EXIT_CORRUPT)
    except click.exceptions.Abort:
        click.echo("wf: aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
