"""The object every command receives with ``pass_obj``.

Both what it holds are made on first use: the run store (``wf validate`` needs none) and the
plugins (only commands that fire hooks load them; see ``wf_engine.plugins.discovery``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING

import click

from wf_engine.core.states import RunStatus
from wf_engine.errors import EXIT_CANCELLED, EXIT_OK, EXIT_RUN_FAILED

if TYPE_CHECKING:
    from wf_engine.plugins.manager import Plugins
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

    @cached_property
    def store(self) -> RunStore:
        from wf_engine.runtime.store import RunStore

        return RunStore(self.home)

    @property
    def plugins(self) -> Plugins:
        return self.slot.get()

    def plugins_for_run(self, modules: Sequence[str], progress: bool) -> Plugins:
        """The loaded plugins plus ``-p`` modules and, unless quiet, the progress reporter."""
        plugins = self.plugins
        plugins.add_modules(modules)
        if progress:
            from wf_engine.cli.progress import ProgressReporter

            plugins.register(ProgressReporter(sys.stdout, sys.stdout.isatty()), "wf.progress")
        return plugins


def note(message: str) -> None:
    """A remark about what the engine did on the user's behalf (stderr, never stdout)."""
    click.echo(f"wf: {message}", err=True)
