"""Wrappers that raise: pluggy does not let the engine guard them one by one, the facade must.

* ``wf_step_transition``: a new-style wrapper raising ``SystemExit(0)`` before it yields;
* ``wf_event_appended``: an old-style hookwrapper raising ``RuntimeError`` after it yields;
* ``wf_step_command``: a new-style wrapper raising ``KeyboardInterrupt`` (the argv is kept);
* ``wf_log_before_write``: a new-style wrapper raising ``ValueError`` (reported, not an OSError).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from wf_engine import hookimpl


@hookimpl(wrapper=True)
def wf_step_transition(step: str) -> Generator[None, None, None]:
    raise SystemExit(0)
    yield  # a generator function, as pluggy requires of a wrapper


@hookimpl(hookwrapper=True)
def wf_event_appended(event: dict[str, Any]) -> Generator[None, Any, None]:
    yield
    raise RuntimeError(f"teardown at seq {event['seq']}")


@hookimpl(wrapper=True)
def wf_step_command(argv: list[str]) -> Generator[None, Any, Any]:
    raise KeyboardInterrupt
    return (yield)


@hookimpl(wrapper=True)
def wf_log_before_write(events: list[dict[str, Any]]) -> Generator[None, None, None]:
    raise ValueError(f"not an OSError, batch {events[0]['batch']}")
    yield
