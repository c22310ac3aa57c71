"""Raise a ``BaseException`` (``SystemExit`` and friends) from hooks: the run must not notice.

``$WF_TEST_RAISE`` picks what is raised (a key of ``RAISES``); ``$WF_TEST_RAISE_IN`` names the
hooks that raise it (comma-separated; default: every hook this module implements).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from wf_engine import hookimpl


class PluginBaseError(BaseException):
    """Neither an ``Exception`` nor one of Python's own: only ``except BaseException`` sees it."""


RAISES: dict[str, Callable[[str], BaseException]] = {
    "SystemExit(0)": lambda hook: SystemExit(0),
    "SystemExit(3)": lambda hook: SystemExit(3),
    "KeyboardInterrupt": lambda hook: KeyboardInterrupt(),
    "GeneratorExit": lambda hook: GeneratorExit(),
    "PluginBaseError": lambda hook: PluginBaseError(f"raised in {hook}"),
}


def _maybe_raise(hook: str) -> None:
    chosen = os.environ.get("WF_TEST_RAISE_IN", "")
    if not chosen or hook in chosen.split(","):
        raise RAISES[os.environ["WF_TEST_RAISE"]](hook)


@hookimpl
def wf_add_cli_commands(cli: click.Group) -> None:
    _maybe_raise("wf_add_cli_commands")


@hookimpl
def wf_run_started() -> None:
    _maybe_raise("wf_run_started")


@hookimpl
def wf_event_appended() -> None:
    _maybe_raise("wf_event_appended")


@hookimpl
def wf_step_transition() -> None:
    _maybe_raise("wf_step_transition")


@hookimpl
def wf_run_finished() -> None:
    _maybe_raise("wf_run_finished")


@hookimpl
def wf_step_env() -> None:
    _maybe_raise("wf_step_env")


@hookimpl
def wf_step_command() -> list[str] | None:
    _maybe_raise("wf_step_command")
    return None


@hookimpl
def wf_log_before_write(events: list[dict[str, Any]]) -> None:
    _maybe_raise("wf_log_before_write")


@hookimpl
def wf_log_before_sync(events: list[dict[str, Any]]) -> None:
    _maybe_raise("wf_log_before_sync")
