"""Implements every hook and does nothing: the cost of the hook machinery itself."""

from __future__ import annotations

from typing import Any

import click

from wf_engine import hookimpl


@hookimpl
def wf_run_started(run_id: str, run_dir: str, workflow: dict[str, Any], resumed: bool) -> None:
    pass


@hookimpl
def wf_event_appended(run_id: str, event: dict[str, Any]) -> None:
    pass


@hookimpl
def wf_step_transition(
    run_id: str, event: dict[str, Any], step: str, from_state: str, to_state: str
) -> None:
    pass


@hookimpl
def wf_run_finished(run_id: str, event: dict[str, Any], state: str) -> None:
    pass


@hookimpl
def wf_step_env(run_id: str, step: str, attempt: int, env: dict[str, str]) -> None:
    pass


@hookimpl
def wf_step_command(run_id: str, step: str, attempt: int, argv: list[str]) -> None:
    return None


@hookimpl
def wf_add_cli_commands(cli: click.Group) -> None:
    pass


@hookimpl
def wf_log_before_write(run_id: str, events: list[dict[str, Any]]) -> None:
    pass


@hookimpl
def wf_log_before_sync(run_id: str, events: list[dict[str, Any]]) -> None:
    pass
