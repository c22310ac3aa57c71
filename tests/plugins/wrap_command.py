"""``wf_step_command``: run every attempt under ``env WF_TEST_WRAPPED=wrap_command ...``."""

from __future__ import annotations

from wf_engine import hookimpl


@hookimpl
def wf_step_command(argv: list[str]) -> list[str]:
    return ["env", "WF_TEST_WRAPPED=wrap_command", *argv]
