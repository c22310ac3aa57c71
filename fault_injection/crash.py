"""Crash at event N: a wf plugin that SIGKILLs the engine at the Nth appended record.

Activated by environment variables, so it works in an engine process started by any test::

    WF_PLUGINS=fault_injection.crash
    WF_FAULT_CRASH_AT=7                  # seq of the record
    WF_FAULT_CRASH_POINT=after_sync      # before_write | before_sync | after_sync

``before_write``: the batch holding record N never reaches the file. ``before_sync``: it was
written but not fsynced (on a real power cut it may or may not survive; here it stays in the page
cache, so the crash leaves it complete — use ``fault_injection.logfaults`` to model the loss).
``after_sync``: the batch is durable and the engine dies before acting on it.

``crash_env(seq, point)`` builds the environment. It uses only the hooks any plugin gets.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from wf_engine import hookimpl

POINTS = ("before_write", "before_sync", "after_sync")
ENV_AT = "WF_FAULT_CRASH_AT"
ENV_POINT = "WF_FAULT_CRASH_POINT"


def crash_env(seq: int, point: str = "after_sync") -> dict[str, str]:
    """Environment that makes a ``wf`` process kill itself at record ``seq``."""
    if point not in POINTS:
        raise ValueError(f"crash point must be one of {', '.join(POINTS)}, not {point!r}")
    return {"WF_PLUGINS": __name__, ENV_AT: str(seq), ENV_POINT: point}


def _target(point: str) -> int | None:
    if os.environ.get(ENV_POINT, "after_sync") != point:
        return None
    value = os.environ.get(ENV_AT, "")
    return int(value) if value.isdigit() else None


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _crash_if_in(events: list[dict[str, Any]], point: str) -> None:
    target = _target(point)
    if target is not None and any(event["seq"] == target for event in events):
        _die()


@hookimpl
def wf_log_before_write(events: list[dict[str, Any]]) -> None:
    _crash_if_in(events, "before_write")


@hookimpl
def wf_log_before_sync(events: list[dict[str, Any]]) -> None:
    _crash_if_in(events, "before_sync")


@hookimpl
def wf_event_appended(event: dict[str, Any]) -> None:
    if event["seq"] == _target("after_sync"):
        _die()
