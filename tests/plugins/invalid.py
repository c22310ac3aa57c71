"""A plugin pluggy refuses: its ``wf_run_started`` asks for an argument the hook does not have."""

from __future__ import annotations

from wf_engine import hookimpl


@hookimpl
def wf_run_started(run_id: str, colour: str) -> None:
    pass
