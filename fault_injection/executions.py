"""Which attempts the engine really started: a wf plugin that journals every spawn.

The log says what the engine *decided*; a crash can cut it between a step's ``RUNNING`` record
and its ``spawned`` record, or lose the ``spawned`` record itself (``before_write``), so the log
alone cannot tell whether an interrupted attempt ever ran. This plugin answers that from inside
the engine: ``wf_step_env`` fires once per attempt, after its ``RUNNING`` record is durable and
right before the engine hands the attempt to its executor to spawn. A line is therefore an
attempt the engine started; only a crash in the moment between that hand-over and the spawn
itself (the executor spawns from threads of its own) journals an attempt that never ran, and
such an attempt is interrupted, so resume runs it again. Activated by environment variables::

    WF_PLUGINS=fault_injection.executions
    WF_FAULT_EXEC_JOURNAL=/tmp/executions.jsonl

Each line is ``{"run_id", "step", "attempt", "runner", "time"}`` (``runner``: the engine's pid),
appended with one ``write`` on an ``O_APPEND`` descriptor, so the engines of several runs may
share a file. It is the harness's record of what happened, not part of the run store, so it is
not fsynced and a modelled power cut never touches it. An attempt that ended
``reason: spawn_error`` is journaled but never ran: read it together with the log.
``executions_env(path)`` builds the environment; :func:`read_executions` reads the file.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from wf_engine import hookimpl

__all__ = ["ENV", "executions_env", "read_executions"]

ENV = "WF_FAULT_EXEC_JOURNAL"


def executions_env(path: str | os.PathLike[str]) -> dict[str, str]:
    """Environment that makes a ``wf`` process journal every attempt it starts into ``path``."""
    return {"WF_PLUGINS": __name__, ENV: os.fspath(path)}


def read_executions(
    path: str | os.PathLike[str], run_id: str | None = None
) -> list[dict[str, Any]]:
    """The journal's lines, oldest first (only ``run_id``'s if given); a missing file is empty.

    A last line without its newline is an append cut short by a kill and is ignored.
    """
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return []
    lines = [json.loads(line) for line in data.split(b"\n")[:-1] if line.strip()]
    return [line for line in lines if run_id is None or line.get("run_id") == run_id]


@hookimpl
def wf_step_env(run_id: str, step: str, attempt: int) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    line = {"run_id": run_id, "step": step, "attempt": attempt, "runner": os.getpid()}
    line["time"] = time.time()
    data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
