"""Record every hook call, as one JSON line each, into the file named by ``$WF_TEST_RECORD``.

Besides the arguments, each line says which thread made the call and what the log held at that
moment, so a test can check the guarantees of ``wf_engine.plugins.hookspecs``:

* ``in_log``: for the event hooks, whether the record was already in ``events.jsonl``, exactly as
  the hook received it (it must be: hooks only see durable records);
* ``in_file``: for ``wf_log_before_write`` / ``wf_log_before_sync``, whether the batch's first
  record was in the file yet (not before the write, yes before the fsync). ``None`` for the first
  batch of a runner: it is written before ``wf_run_started`` tells the plugin where the log is.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from wf_engine import hookimpl
from wf_engine.log.eventlog import read_log

RECORD_ENV = "WF_TEST_RECORD"

_run_dir: str | None = None


def write_call(hook: str, **fields: Any) -> None:
    line = {
        "hook": hook,
        "thread": threading.get_ident(),
        "main_thread": threading.current_thread() is threading.main_thread(),
        **fields,
    }
    with open(os.environ[RECORD_ENV], "a", encoding="utf-8") as file:
        file.write(json.dumps(line) + "\n")


def _logged() -> dict[int, dict[str, Any]]:
    """The records committed to the run's log so far, by seq (whole file, torn tail ignored)."""
    if _run_dir is None:
        return {}
    records, _ = read_log(os.path.join(_run_dir, "events.jsonl"))
    return {record["seq"]: record for record in records}


def _in_file(events: list[dict[str, Any]]) -> bool | None:
    """Whether the batch's first record is in the file (complete line), committed or not."""
    if _run_dir is None:
        return None
    with open(os.path.join(_run_dir, "events.jsonl"), "rb") as file:
        seqs = {json.loads(line)["seq"] for line in file if line.endswith(b"\n")}
    return events[0]["seq"] in seqs


def _in_log(event: dict[str, Any]) -> bool:
    return _logged().get(event["seq"]) == event


@hookimpl
def wf_run_started(run_id: str, run_dir: str, workflow: dict[str, Any], resumed: bool) -> None:
    global _run_dir
    _run_dir = run_dir
    write_call(
        "wf_run_started",
        run_id=run_id,
        run_dir=run_dir,
        workflow_id=workflow["workflow_id"],
        resumed=resumed,
    )


@hookimpl
def wf_event_appended(run_id: str, event: dict[str, Any]) -> None:
    write_call("wf_event_appended", run_id=run_id, event=event, in_log=_in_log(event))


@hookimpl
def wf_step_transition(
    run_id: str, event: dict[str, Any], step: str, from_state: str, to_state: str
) -> None:
    write_call(
        "wf_step_transition",
        run_id=run_id,
        seq=event["seq"],
        step=step,
        from_state=from_state,
        to_state=to_state,
        in_log=_in_log(event),
    )


@hookimpl
def wf_run_finished(run_id: str, event: dict[str, Any], state: str) -> None:
    write_call("wf_run_finished", run_id=run_id, event=event, state=state, in_log=_in_log(event))


@hookimpl
def wf_step_env(run_id: str, step: str, attempt: int, env: dict[str, str]) -> None:
    write_call(
        "wf_step_env", run_id=run_id, step=step, attempt=attempt, has_run_id=("WF_RUN_ID" in env)
    )


@hookimpl
def wf_step_command(run_id: str, step: str, attempt: int, argv: list[str]) -> None:
    write_call("wf_step_command", run_id=run_id, step=step, attempt=attempt, argv=argv)


@hookimpl
def wf_log_before_write(run_id: str, events: list[dict[str, Any]]) -> None:
    write_call(
        "wf_log_before_write",
        run_id=run_id,
        seqs=[event["seq"] for event in events],
        in_file=_in_file(events),
    )


@hookimpl
def wf_log_before_sync(run_id: str, events: list[dict[str, Any]]) -> None:
    write_call(
        "wf_log_before_sync",
        run_id=run_id,
        seqs=[event["seq"] for event in events],
        in_file=_in_file(events),
    )
