"""A second ``wf_step_command`` wrapper (sets ``WF_TEST_WRAPPED_FIRST=1``), asked first.

``tryfirst`` puts it ahead of ``tests.plugins.wrap_command`` whatever the load order; the hook
is ``firstresult``, so it alone decides.
"""

from __future__ import annotations

from wf_engine import hookimpl


@hookimpl(tryfirst=True)
def wf_step_command(argv: list[str]) -> list[str]:
    return ["env", "WF_TEST_WRAPPED_FIRST=1", *argv]
