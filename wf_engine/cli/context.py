"""The object every command receives with ``pass_obj``.

Both what it holds are made on first use: the run store (``wf validate`` needs none) and the
plugins (only commands that fire hooks load them; see ``wf_engine.plugins.discovery``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from contextlib import AbstractContextManager
from functools import cached_property
from typing import TYPE_CHECKING

import click

from wf_engine.core.states import RunStatus
from wf_engine.errors import EXIT_CANCELLED, EXIT_OK, EXIT_RUN_FAILED

if TYPE_CHECKING:
    from wf_engine.cli.display import Display
    from wf_engine.plugins.manager import Plugins
    from wf_engine.runtime.runner import Runner
    from wf_engine.runtime.store import RunStore

EXIT_CODES = {
    RunStatus.SUCCEEDED: EXIT_OK,
    RunStatus.FAILED: EXIT_RUN_FAILED,
    RunStatus.CANCELLED: EXIT_CANCELLED,
    RunStatus.RUNNING: EXIT_OK,
}


class PluginSlot:
    """The command's plugins, loaded (``Plugins.load``) the first time someone needs them."""

    def __init__(self) -> None:
        self.loaded: Plugins | None = None

    def get(self) -> Plugins:
        if self.loaded is None:
            from wf_engine.plugins.manager import Plugins  # pluggy: only for commands with hooks

            self.loaded = Plugins.load()
        return self.loaded


class CliContext:
    def __init__(self, home: str | None, plugins: PluginSlot | None) -> None:
        self.home = home
        self.slot = plugins if plugins is not None else PluginSlot()
        #: The progress output ``plugins_for_run`` registered (None: not asked for yet).
        self.display: Display | None = None

    def set_home(self, home: str) -> None:
        """``--home`` given after the subcommand: the run store is that one."""
        self.home = home
        self.__dict__.pop("store", None)

    @cached_property
    def store(self) -> RunStore:
        from wf_engine.runtime.store import RunStore

        return RunStore(self.home)

    @property
    def plugins(self) -> Plugins:
        return self.slot.get()

    def plugins_for_run(self, modules: Sequence[str], progress: bool) -> Plugins:
        """The loaded plugins plus ``-p`` modules and, with ``progress``, the progress output
        the command's options (``display_options``) and its stdout ask for."""
        from wf_engine.cli.display import Display

        plugins = self.plugins
        plugins.add_modules(modules)
        self.display = Display.for_command(self, enabled=progress)
        reporter = self.display.reporter()
        if reporter is not None:
            plugins.register(reporter, "wf.progress")
        return plugins

    def watching(self, runner: Runner) -> AbstractContextManager[None]:
        """Around ``runner.execute()``: the progress output follows the runner from its state,
        and says how to continue a run that stops unfinished (``Display.watching``)."""
        if self.display is None:
            return contextlib.nullcontext()
        return self.display.watching(runner)


def note(message: str) -> None:
    """A remark about what the engine did on the user's behalf (stderr, never stdout)."""
    click.echo(f"wf: {message}", err=True)


#: ``-p MODULE`` of every command that loads plugins (``run``, ``resume``, ``rerun``, ``plugins``).
plugin_option = click.option(
    "-p",
    "--plugin",
    "plugin_modules",
    multiple=True,
    metavar="MODULE",
    help="Load the plugin module MODULE too (repeatable).",
)
