"""``wf_step_env``: give every attempt a variable saying which step and attempt it is."""

from __future__ import annotations

from wf_engine import hookimpl


@hookimpl
def wf_step_env(step: str, attempt: int, env: dict[str, str]) -> None:
    env["WF_TEST_GREETING"] = f"hello {step} attempt {attempt}"
