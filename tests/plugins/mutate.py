"""A plugin that breaks the contract and mutates ``event`` (it rewrites ``to: RUNNING``)."""

from __future__ import annotations

from typing import Any

from wf_engine import hookimpl


@hookimpl
def wf_event_appended(event: dict[str, Any]) -> None:
    if event.get("to") == "RUNNING":
        event["to"] = "MUTATED"
