"""A hookimpl for a hook that does not exist (``wf_run_finish``, not ``wf_run_finished``)."""

from __future__ import annotations

from wf_engine import hookimpl


@hookimpl
def wf_run_finish(run_id: str, state: str) -> None:
    print(f"never called: {run_id} {state}")
