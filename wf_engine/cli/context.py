"""The object every command receives with ``pass_obj``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from wf_engine.cli.progress import ProgressReporter
from wf_engine.core.states import RunStatus
from wf_engine.errors import EXIT_CANCELLED, EXIT_OK, EXIT_RUN_FAILED
from wf_engine.plugins.manager import Plugins
from wf_engine.runtime.store import RunStore

EXIT_CODES = {
    RunStatus.SUCCEEDED: EXIT_OK,
    RunStatus.FAILED: EXIT_RUN_FAILED,
    RunStatus.CANCELLED: EXIT_CANCELLED,
    RunStatus.RUNNING: EXIT_OK,
}


class CliContext:
    def __init__(self, home: str | None, plugins: Plugins | None) -> None:
        self.store = RunStore(home)
        self.plugins = plugins if plugins is not None else Plugins.load()

    def plugins_for_run(self, modules: Sequence[str], progress: bool) -> Plugins:
        """The loaded plugins plus ``-p`` modules and, unless quiet, the progress reporter."""
        self.plugins.add_modules(modules)
        if progress:
            self.plugins.register(ProgressReporter(sys.stdout, sys.stdout.isatty()), "wf.progress")
        return self.plugins


def note(message: str) -> None:
    """A remark about what the engine did on the user's behalf (stderr, never stdout)."""
    click.echo(f"wf: {message}", err=True)
