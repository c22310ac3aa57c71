"""The ``wf`` command line: one module per command, attached to one group, plus the renderers.

The only layer that imports ``click`` (checked by the import contract in ``pyproject.toml``); it
may import every other layer. ``progress`` is the progress output, itself a plugin.

Engine errors (``WfError``) become a one-line message and their exit code here, at the edge, and
nowhere deeper: 0 ok, 1 run FAILED, 2 usage or invalid input, 3 run CANCELLED, 4 corrupt or
unreadable run store.

Output is never a reason to fail (Python docs, "Note on SIGPIPE"): a reader that goes away
(``wf run | head -2``) or a closed stdout/stderr (``wf run >&-``) must neither print a traceback
nor change the exit code that reports a run's state, and must not stop the run.
"""

from __future__ import annotations

import io
import os
import sys
from typing import TYPE_CHECKING, TextIO

import click

from wf_engine.cli.cancel import cancel_command
from wf_engine.cli.context import CliContext
from wf_engine.cli.graph import graph_command
from wf_engine.cli.plugins import plugins_command
from wf_engine.cli.readers import list_command, logs_command, replay_command, status_command
from wf_engine.cli.resume import resume_command
from wf_engine.cli.run import run_command
from wf_engine.cli.validate import validate_command
from wf_engine.core.validation import WorkflowInvalid
from wf_engine.errors import EXIT_CORRUPT, WfError
from wf_engine.plugins.manager import Plugins

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


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


class QuietWriter(io.BufferedWriter):
    """The byte layer of ``wf``'s stdout/stderr: a broken pipe ends the output, not the command.

    On the first ``BrokenPipeError`` the file descriptor is pointed at /dev/null, so the bytes
    still buffered, everything written later and the interpreter's flush at exit all go nowhere,
    silently, and the command (a run, with its steps) finishes and exits with its own code.
    Text and raw bytes (``wf logs`` copies into ``stdout.buffer``) both pass through here.
    """

    def write(self, buffer: ReadableBuffer, /) -> int:
        try:
            return super().write(buffer)
        except BrokenPipeError:
            _devnull_onto(self.fileno())
            return super().write(buffer)

    def flush(self) -> None:
        try:
            super().flush()
        except BrokenPipeError:
            _devnull_onto(self.fileno())
            super().flush()


def _devnull_onto(fd: int) -> None:
    """Point ``fd`` at /dev/null: writes to it succeed, and nobody reads them."""
    devnull = os.open(os.devnull, os.O_RDWR)
    if devnull != fd:
        os.dup2(devnull, fd)
        os.close(devnull)


def _is_closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def _quiet_stream(stream: TextIO | None, original: TextIO | None, fd: int) -> TextIO | None:
    """``stream`` rebuilt on a ``QuietWriter``, unless someone else (a test, a host) replaced it.

    A closed ``fd`` first gets /dev/null: else the next ``open`` (the event log!) would take the
    number, and anything written to "stdout" would land in it.
    """
    if stream is not original:
        return stream
    if _is_closed(fd):
        _devnull_onto(fd)
    if stream is not None:
        stream.flush()
    return io.TextIOWrapper(
        QuietWriter(io.FileIO(fd, "w", closefd=False)),
        encoding=stream.encoding if stream is not None else "utf-8",
        errors=stream.errors if stream is not None else "backslashreplace",
        line_buffering=stream.line_buffering if isinstance(stream, io.TextIOWrapper) else True,
    )


def protect_std_streams() -> None:
    """Make stdout and stderr safe to write whatever became of them (closed, a dead pipe)."""
    sys.stdout = _quiet_stream(sys.stdout, sys.__stdout__, 1)
    sys.stderr = _quiet_stream(sys.stderr, sys.__stderr__, 2)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``wf``: loads plugins (they may add commands), then dispatches.

    Plugin failures that were only counted are summed up in one line when the command ends.
    """
    protect_std_streams()
    plugins: Plugins | None = None
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
    finally:
        if plugins is not None:
            plugins.report_suppressed()
    sys.exit(code if isinstance(code, int) else 0)
