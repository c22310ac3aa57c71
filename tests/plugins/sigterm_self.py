"""A plugin that sends SIGTERM to its own ``wf`` process at one instant of start-up.

``WF_TEST_SIGTERM_AT`` picks the instant: ``import`` (while plugins load, before the run
exists), ``run_started`` (inside ``wf_run_started``, the run created but not yet running) or
``first_write`` (while the first batch, ``run_created``, is being written). The signal arrives
exactly there, so start-up can be tested at each instant without timing games.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from wf_engine import hookimpl

_AT = os.environ.get("WF_TEST_SIGTERM_AT", "")


def _sigterm_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


if _AT == "import":
    _sigterm_self()


@hookimpl
def wf_run_started() -> None:
    if _AT == "run_started":
        _sigterm_self()


@hookimpl
def wf_log_before_write(events: list[dict[str, Any]]) -> None:
    if _AT == "first_write" and events[0]["seq"] == 1:
        _sigterm_self()
