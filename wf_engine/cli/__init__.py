"""The ``wf`` command line: one module per command, attached to one group, plus the renderers.

The only layer that imports ``click`` (checked by the import contract in ``pyproject.toml``); it
may import every other layer. ``display`` chooses how a run is shown: ``progress`` (plain lines,
itself a plugin) or ``liveview`` (the live view; ``rich`` is imported only for it and for
``status --watch``), both ending with ``summary``. ``runids`` resolves what people type for a
run id (prefixes, ``@last``, "did you mean"); ``render``, ``graph`` and ``graphhtml`` draw what
the readers print.

Start-up is part of every command's cost: the group imports a command's module only when that
command runs (``COMMANDS``), and plugins are loaded only by commands that fire hooks, or before
parsing when one may add commands (docs/hooks.md, "When plugins are loaded").

Engine errors (``WfError``) become a one-line message and their exit code here, at the edge, and
nowhere deeper: 0 ok, 1 run FAILED, 2 usage or invalid input, 3 run CANCELLED, 4 corrupt or
unreadable run store.

Output is never a reason to fail (Python docs, "Note on SIGPIPE"): a reader that goes away
(``wf run | head -2``) or a closed stdout/stderr (``wf run >&-``) must neither print a traceback
nor change the exit code that reports a run's state, and must not stop the run.
"""

from __future__ import annotations

import importlib
import io
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

import click

from wf_engine.cli.context import CliContext, PluginSlot
from wf_engine.errors import EXIT_CORRUPT, WfError
from wf_engine.plugins.discovery import load_before_parsing

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

#: The built-in commands: name -> (``module:attribute``, the summary ``wf --help`` shows).
#: A command's module is imported only when that command runs, so ``wf --help`` and ``wf status``
#: do not pay for the runner; tests/test_startup.py checks each summary against its command.
COMMANDS: dict[str, tuple[str, str]] = {
    "cancel": (
        "wf_engine.cli.cancel:cancel_command",
        "Cancel RUN_ID, live or not; waits until it is CANCELLED unless --no-wait.",
    ),
    "completion": (
        "wf_engine.cli.completion:completion_command",
        "Print the shell completion script for SHELL (bash, zsh or fish).",
    ),
    "graph": (
        "wf_engine.cli.graph:graph_command",
        "Print the dependency graph of a workflow file or of a run (with step states).",
    ),
    "list": (
        "wf_engine.cli.readers:list_command",
        "Every run in the store, newest first (exit 4 if one is unreadable: listed all the same).",
    ),
    "logs": (
        "wf_engine.cli.readers:logs_command",
        "Captured output of RUN_ID's steps (of STEP only, if given).",
    ),
    "plugins": (
        "wf_engine.cli.plugins:plugins_command",
        "List loaded plugins (entry points, $WF_PLUGINS, -p, internal) and their hooks.",
    ),
    "replay": (
        "wf_engine.cli.readers:replay_command",
        "The timeline and the state rebuilt from RUN_ID's log; the same bytes on every call.",
    ),
    "rerun": (
        "wf_engine.cli.rerun:rerun_command",
        "Rerun RUN_ID as a new run: what succeeded is reused, the rest runs; exit as wf run.",
    ),
    "resume": (
        "wf_engine.cli.resume:resume_command",
        "Continue RUN_ID: finished steps never run again, interrupted ones run again.",
    ),
    "run": (
        "wf_engine.cli.run:run_command",
        "Run WORKFLOW (a JSON file) to the end; exit 0, 1 (FAILED) or 3 (CANCELLED).",
    ),
    "status": (
        "wf_engine.cli.readers:status_command",
        "State of RUN_ID and of each step, from its log alone.",
    ),
    "validate": (
        "wf_engine.cli.validate:validate_command",
        "Report every problem in WORKFLOW at once (exit 2), or say it is valid (exit 0).",
    ),
}


class LazyGroup(click.Group):
    """A group whose built-in commands are imported by name, when one is invoked (click's
    "lazily loading subcommands"). Commands added with ``add_command`` (plugins) come first, so
    a plugin can still replace a built-in command, as with an ordinary group."""

    def __init__(self, *args: Any, lazy: Mapping[str, tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.lazy, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy:
            return self.commands.get(cmd_name)
        module, _, attribute = self.lazy[cmd_name][0].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return _with_home(command)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as error:
            # click (8.2+) suggests the closest names ("Did you mean 'status'?"), but only from
            # the commands it holds: suggest from every command, the built-in ones included.
            name = getattr(error, "command_name", None)
            if isinstance(name, str) and hasattr(error, "possibilities"):
                from difflib import get_close_matches

                error.possibilities = get_close_matches(name, self.list_commands(ctx))
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The list of commands, as click writes it, without importing the built-in ones."""
        listed = {
            name: self.commands.get(name) or click.Command(name, help=self.lazy[name][1])
            for name in self.list_commands(ctx)
        }
        click.Group(commands=listed).format_commands(ctx, formatter)


HOME_HELP = "Run store folder (default: $WF_HOME, else ./.wf); also after the command."


def _home_after(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``wf status RUN --home DIR``: the same as ``wf --home DIR status RUN``."""
    if value is not None:
        ctx.meta["wf.home"] = value
        obj = ctx.find_object(CliContext)
        if obj is not None:
            obj.set_home(value)
    return value


def _with_home(command: click.Command) -> click.Command:
    """``command`` taking ``--home`` too (once), processed before its other parameters."""
    if not any(param.name == "home" for param in command.params):
        command.params.append(
            click.Option(
                ["--home"],
                metavar="DIR",
                expose_value=False,
                is_eager=True,
                callback=_home_after,
                help=HOME_HELP,
            )
        )
    return command


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Start here:
  wf run examples/image_pipeline/workflow.json
  wf status @last          (@last: the newest run; any unique prefix of a run id works)
  wf logs @last
  wf completion bash       (shell completion: see wf completion --help)""",
)
@click.option("--home", metavar="DIR", help=HOME_HELP)
@click.version_option(package_name="wf-engine")
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """wf: run DAGs of shell steps durably; resume, cancel and replay them.

    Every command has --help, with examples.
    """
    ctx.obj = CliContext(home, ctx.obj)


def report_error(error: WfError) -> None:
    from wf_engine.core.validation import WorkflowInvalid  # only raised once it is imported

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
    """Entry point of ``wf``: dispatches the command, which loads plugins if it fires hooks.

    Plugins are loaded first, before the command line is parsed, only if one may add commands
    (``wf_engine.plugins.discovery``). Plugin failures that were only counted are summed up in
    one line when the command ends.
    """
    protect_std_streams()
    plugins = PluginSlot()
    try:
        if load_before_parsing():
            plugins.get().add_cli_commands(cli)
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
        if plugins.loaded is not None:
            plugins.loaded.report_suppressed()
    sys.exit(code if isinstance(code, int) else 0)
