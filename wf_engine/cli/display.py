"""How ``wf run`` and ``wf resume`` show a run: the live view, plain lines, or only the end.

=====================================================  =========================================
when                                                   what
=====================================================  =========================================
``--json`` or ``--detach``                             nothing (the JSON, the run id)
``--quiet``                                            nothing; the summary if the run did not
                                                       succeed
``--plain``, stdout not a terminal, ``TERM=dumb``,     one line per transition (``progress``)
``CI`` set
a terminal, colour off (``NO_COLOR``, ``--no-color``)  the lines, and one status line redrawn
                                                       with a carriage return: no escape
                                                       sequence at all
a colour terminal                                      the live view (``liveview``, ``rich``)
=====================================================  =========================================

Every view ends with the same summary (``wf_engine.cli.summary``). The options are added by
``display_options`` and read back from the click context, so a command that runs a run only
says ``obj.plugins_for_run(modules, progress=...)`` (which registers the display's plugin) and
``with obj.watching(runner): runner.execute()``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

if TYPE_CHECKING:
    from wf_engine.cli.context import CliContext
    from wf_engine.cli.progress import Reporter
    from wf_engine.runtime.runner import Runner

_META = "wf.display"
F = TypeVar("F", bound=Callable[..., Any])


def _remember(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta.setdefault(_META, set()).add(param.name)
    return value


def display_options(command: F) -> F:
    """``--plain``, ``--quiet`` and ``--no-color``, for ``Display.for_command`` to read."""
    for flags, text in reversed(
        (
            (("--plain",), "One plain line per step transition, even on a terminal."),
            (("-q", "--quiet"), "Print nothing while the run goes; the summary if it fails."),
            (("--no-color", "no_color"), "No colour and no escape sequence (as NO_COLOR=1)."),
        )
    ):
        command = click.option(
            *flags, is_flag=True, expose_value=False, callback=_remember, help=text
        )(command)
    return command


def colour_allowed(stream: TextIO, no_color: bool = False) -> bool:
    """Colour on ``stream``: a terminal, not ``TERM=dumb``, no ``NO_COLOR``, no ``--no-color``."""
    return (
        _isatty(stream)
        and not no_color
        and not os.environ.get("NO_COLOR")
        and os.environ.get("TERM") != "dumb"
    )


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError, AttributeError):
        return False


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


class Display:
    """The progress output of one command."""

    def __init__(self, mode: str, colour: bool, home: str | None, stream: TextIO) -> None:
        #: ``off``, ``quiet``, ``plain``, ``line`` (a terminal without colour) or ``live``.
        self.mode = mode
        self.colour = colour
        self.home = home
        self.stream = stream
        self._reporter: Reporter | None = None

    @classmethod
    def for_command(cls, obj: CliContext, enabled: bool = True) -> Display:
        """The display the current command's options and its stdout ask for."""
        ctx = click.get_current_context(silent=True)
        flags: set[str] = ctx.meta.get(_META, set()) if ctx is not None else set()
        stream = sys.stdout
        tty = _isatty(stream)
        colour = colour_allowed(stream, "no_color" in flags)
        if not enabled:
            mode = "off"
        elif "quiet" in flags:
            mode = "quiet"
        elif "plain" in flags or not tty or os.environ.get("TERM") == "dumb" or _in_ci():
            mode = "plain"
        elif not colour:
            mode = "line"
        else:
            mode = "live"
        home = obj.store.home if obj.home is not None else None
        return cls(mode, colour, home, stream)

    def reporter(self) -> Reporter | None:
        """The ``wf.progress`` plugin for this display (made once), or None when off."""
        if self._reporter is None and self.mode != "off":
            self._reporter = self._make()
        return self._reporter

    def _make(self) -> Reporter:
        from wf_engine.cli.progress import ProgressReporter, QuietReporter

        stream, colour, home = self.stream, self.colour, self.home
        if self.mode == "quiet":
            return QuietReporter(stream, colour=colour, home=home)
        if self.mode == "live":
            try:
                import rich  # noqa: F401  (installed with wf; a checkout may lack it)
            except ImportError:
                self.mode = "line"
            else:
                from wf_engine.cli.liveview import LiveReporter

                return LiveReporter(stream, home=home)
        if self.mode == "line":
            return ProgressReporter(
                stream, colour=colour, home=home, status_line=True, every_transition=False
            )
        return ProgressReporter(stream, colour=colour, home=home)

    @contextlib.contextmanager
    def watching(self, runner: Runner) -> Iterator[None]:
        """Around ``runner.execute()``: the view starts from the runner's state; if the runner
        stops before the run ends (a failing disk), say how to continue it."""
        reporter = self._reporter
        if reporter is not None:
            reporter.attach(runner.state)
        try:
            yield
        except Exception:
            if runner.state.finished is None:
                from wf_engine.cli.context import note
                from wf_engine.cli.summary import continue_command

                command = continue_command(runner.run_id, "RUNNING", self.home)
                note(f"run {runner.run_id} stopped unfinished; once fixed, continue it: {command}")
            raise
        finally:
            close = getattr(reporter, "close", None)
            if close is not None:
                close()
