"""Plain-text rendering shared by ``status`` and ``replay`` (deterministic: no clock, no tty).

Everything rendered here comes out of ``fold_records``, which decoded every record into a typed
event (``wf_engine.core.events``: every member checked, ``ts`` parses as a time, ``run_created``
holds a valid workflow …), so they read attributes and the envelope without guarding.
"""

from __future__ import annotations

from typing import Any

from wf_engine.core.clock import from_iso
from wf_engine.core.events import (
    AttemptEnded,
    CancelRequested,
    Event,
    RunCreated,
    RunFinished,
    RunnerStarted,
    Spawned,
    StepTransition,
    encode,
)
from wf_engine.core.records import Record
from wf_engine.errors import WfError

_COLUMNS = ("STEP", "STATE", "ATTEMPTS", "EXIT", "REASON", "DURATION")


def _duration(entry: dict[str, Any]) -> str:
    if entry.get("started") and entry.get("finished"):
        seconds = (from_iso(entry["finished"]) - from_iso(entry["started"])) / 1e6
        return f"{seconds:.3f}s"
    return "-"


def status_table(steps: dict[str, dict[str, Any]]) -> str:
    rows = [_COLUMNS]
    for step_id, entry in steps.items():
        exit_code = entry.get("exit_code")
        rows.append(
            (
                step_id,
                entry["state"] + (" (final)" if entry.get("final") else ""),
                str(entry["attempts"]),
                "-" if exit_code is None else str(exit_code),
                entry.get("reason") or "-",
                _duration(entry),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def timeline_line(record: Record, event: Event) -> str:
    """``  12 2026-…Z step           embed READY -> RUNNING attempt=1``.

    The envelope (``seq``, ``ts``) comes from the record as read, everything else from its event.
    """
    kind, payload = encode(event)
    match event:
        case StepTransition() | AttemptEnded():
            detail = f"{event.step} {event.from_.value} -> {event.to.value} attempt={event.attempt}"
            for key in ("reason", "exit_code", "retry_delay_sec", "final"):
                if payload.get(key) is not None:
                    detail += f" {key}={payload[key]}"
        case RunCreated():
            steps = len(event.workflow["steps"])
            options = event.options.to_json()
            detail = f"{event.workflow['workflow_id']} ({steps} steps) options={options}"
        case RunnerStarted():
            detail = f"pid={event.pid}"
        case Spawned():
            detail = f"{event.step} attempt={event.attempt} pid={event.pid}"
        case RunFinished():
            detail = event.state.value
        case CancelRequested():
            detail = " ".join(f"{key}={value}" for key, value in payload.items())
    return f"{record['seq']:>5} {record['ts']} {kind:<16} {detail}"


def error_text(error: Exception) -> str:
    """One line for an error met while reading a run: an ``OSError`` as ``<file>: <reason>``."""
    if isinstance(error, OSError) and not isinstance(error, WfError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or error}"
    return str(error)
