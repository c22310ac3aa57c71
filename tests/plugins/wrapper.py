"""A pluggy wrapper around ``wf_event_appended``: writes ``wrapper:wf_event_appended`` lines."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from tests.plugins.recorder import write_call
from wf_engine import hookimpl


@hookimpl(wrapper=True)
def wf_event_appended(run_id: str, event: dict[str, Any]) -> Generator[None, None, None]:
    write_call("wrapper:wf_event_appended", run_id=run_id, seq=event["seq"])
    return (yield)
