"""A ``wf_step_command`` implementation that declines (returns None): the next one is asked."""

from __future__ import annotations

from wf_engine import hookimpl


@hookimpl(tryfirst=True)
def wf_step_command(argv: list[str]) -> None:
    return None
