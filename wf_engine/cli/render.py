"""Plain-text rendering shared by ``status`` and ``replay`` (deterministic: no clock, no tty).

Everything rendered here comes out of ``fold_records``, which checked every member these
functions read (``wf_engine.core.records``: ``ts`` and ``retry_at`` parse as times,
``attempt`` is an integer, ``run_created`` holds a valid workflow …), so they index records
without guarding.
"""

from __future__ import annotations

from typing import Any

from wf_engine.core.clock import from_iso
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


def timeline_line(record: dict[str, Any]) -> str:
    """``  12 2026-…Z step           embed READY -> RUNNING attempt=1``."""
    kind = record["type"]
    if kind == "step":
        detail = f"{record['step']} {record['from']} -> {record['to']} attempt={record['attempt']}"
        for key in ("reason", "exit_code", "retry_delay_sec", "final"):
            if record.get(key) is not None:
                detail += f" {key}={record[key]}"
    elif kind == "run_created":
        steps = len(record["workflow"]["steps"])
        detail = f"{record['workflow']['workflow_id']} ({steps} steps) options={record['options']}"
    elif kind == "runner_started":
        detail = f"pid={record.get('pid')}"
    elif kind == "spawned":
        detail = f"{record['step']} attempt={record['attempt']} pid={record['pid']}"
    elif kind == "run_finished":
        detail = record["state"]
    else:
        detail = " ".join(f"{k}={v}" for k, v in record.items() if k not in _ENVELOPE)
    return f"{record['seq']:>5} {record['ts']} {kind:<16} {detail}"


_ENVELOPE = {"seq", "batch", "batch_size", "type", "ts", "crc"}


def error_text(error: Exception) -> str:
    """One line for an error met while reading a run: an ``OSError`` as ``<file>: <reason>``."""
    if isinstance(error, OSError) and not isinstance(error, WfError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or error}"
    return str(error)
