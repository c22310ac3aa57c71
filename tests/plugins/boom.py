"""A plugin that raises in every hook the engine isolates: the run must not notice.

It leaves ``wf_log_before_write`` / ``wf_log_before_sync`` alone: an exception there propagates
on purpose (it models a failed write), see ``wf_engine.plugins.hookspecs``.
"""

from __future__ import annotations

from typing import Any

from wf_engine import hookimpl


class PluginBoom(RuntimeError):
    pass


@hookimpl
def wf_run_started(run_id: str) -> None:
    raise PluginBoom(f"boom in wf_run_started of {run_id}")


@hookimpl
def wf_event_appended(event: dict[str, Any]) -> None:
    raise PluginBoom(f"boom at seq {event['seq']}")


@hookimpl
def wf_step_transition(step: str) -> None:
    raise PluginBoom(f"boom in wf_step_transition of {step}")


@hookimpl
def wf_run_finished(state: str) -> None:
    raise PluginBoom(f"boom in wf_run_finished ({state})")


@hookimpl
def wf_step_env(env: dict[str, str]) -> None:
    env["WF_TEST_HALF_DONE"] = "1"
    raise PluginBoom("boom in wf_step_env")


@hookimpl
def wf_step_command(argv: list[str]) -> list[str]:
    raise PluginBoom("boom in wf_step_command")
