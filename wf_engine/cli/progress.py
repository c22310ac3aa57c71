"""The CLI's progress output, as an internal plugin on the same hooks any user plugin gets.

Not a TTY: one plain line per step transition (stable, greppable, good for CI logs).
A TTY: the same lines, coloured, without the PENDING -> READY noise.

Progress is a courtesy: when its stream fails (``wf run | head -2`` broke the pipe, stdout was
closed) the reporter goes quiet for the rest of the run instead of raising into the plugin guard
at every transition. The run, and the exit code reporting its state, go on as if nobody left.
"""

from __future__ import annotations

from typing import Any, TextIO

import click

from wf_engine.plugins.manager import hookimpl

_COLOURS = {
    "RUNNING": "cyan",
    "SUCCEEDED": "green",
    "FAILED": "red",
    "SKIPPED": "yellow",
    "CANCELLED": "magenta",
}


def describe_transition(event: dict[str, Any]) -> str:
    """``download: RUNNING -> FAILED (attempt 1, exit 3, retry in 2s)``."""
    details = [f"attempt {event['attempt']}"] if event.get("attempt") else []
    if event.get("exit_code") is not None:
        details.append(f"exit {event['exit_code']}")
    if event.get("reason") not in (None, "exit"):
        details.append(str(event["reason"]))
    if "retry_delay_sec" in event:
        details.append(f"retry in {event['retry_delay_sec']:g}s")
    if event.get("final"):
        details.append("final")
    suffix = f" ({', '.join(details)})" if details else ""
    return f"{event['step']}: {event['from']} -> {event['to']}{suffix}"


class ProgressReporter:
    """Prints transitions as they become durable."""

    def __init__(self, stream: TextIO, tty: bool) -> None:
        #: None once a write failed: nobody reads it any more.
        self.stream: TextIO | None = stream
        self.tty = tty

    @hookimpl
    def wf_run_started(self, run_id: str, resumed: bool) -> None:
        verb = "resumed" if resumed else "started"
        self._line(f"run {run_id} {verb}")

    @hookimpl
    def wf_step_transition(self, event: dict[str, Any], to_state: str) -> None:
        if self.tty and to_state == "READY" and event.get("reason") != "interrupted":
            return
        text = f"{event['ts'][11:23]} {describe_transition(event)}"
        self._line(click.style(text, fg=_COLOURS.get(to_state)) if self.tty else text)

    @hookimpl
    def wf_run_finished(self, run_id: str, state: str) -> None:
        text = f"run {run_id} {state}"
        self._line(click.style(text, fg=_COLOURS.get(state), bold=True) if self.tty else text)

    def _line(self, text: str) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a broken pipe, a closed or full stream: stop reporting
            self.stream = None
