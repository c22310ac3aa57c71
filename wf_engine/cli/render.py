"""Plain-text rendering of ``status``, ``list`` and ``replay`` (deterministic: the clock only
enters as an argument, colour only when asked for).

Everything rendered here comes out of ``fold_records``, which decoded every record into a typed
event (``wf_engine.core.events``: every member checked, ``ts`` parses as a time, ``run_created``
holds a valid workflow …), so they read attributes and the envelope without guarding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wf_engine.cli.summary import COLOURS, continue_command, counts_text, duration, local_time
from wf_engine.cli.summary import tail_lines as _tail_lines
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


# -- status and list -----------------------------------------------------------------------------

#: ``style(text, state)``: colour a cell by the state it shows (or leave it).
Styler = Callable[[str, str], str]


def _plain(text: str, state: str) -> str:
    return text


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    states: Sequence[str] = (),
    style: Styler = _plain,
    coloured: int = -1,
) -> list[str]:
    """Left-aligned columns two spaces apart; column ``coloured`` of row i styled by states[i]."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True)).rstrip()]
    for index, row in enumerate(rows):
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=True)]
        if 0 <= coloured < len(cells) and index < len(states):
            cells[coloured] = style(cells[coloured], states[index])
        lines.append("  ".join(cells).rstrip())
    return lines


def step_state_label(entry: dict[str, Any], now_us: int | None) -> str:
    """``SUCCEEDED``, ``FAILED (final)``, ``FAILED (retry in 3s)``, ``FAILED (retry due)``."""
    state = str(entry["state"])
    if state != "FAILED":
        return state
    if entry.get("final"):
        return "FAILED (final)"
    retry_at = entry.get("retry_at")
    if retry_at is None:
        return "FAILED (retrying)"
    if now_us is None:
        return "FAILED (retry on resume)"
    left = (from_iso(retry_at) - now_us) / 1e6
    return f"FAILED (retry in {left:.0f}s)" if left >= 0.5 else "FAILED (retry due)"


def _iso_local(text: str | None) -> str:
    return local_time(from_iso(text)) if text else "-"


#: States a short page (``--watch`` on a small terminal) leaves to the counts.
_SETTLED = ("SUCCEEDED", "PENDING", "SKIPPED")


def status_text(
    summary: dict[str, Any],
    now_us: int | None,
    style: Styler = _plain,
    max_lines: int | None = None,
) -> str:
    """The ``wf status`` page: the run, its counts, a row per step, the failures' stderr.

    ``now_us`` is the time "retry in" counts from, given only while a runner owns the run.
    With ``max_lines`` (a screen's height), a page that would not fit lists only the steps that
    are not settled (running, failed, waiting, cancelled), as many as fit.
    """
    run_id = summary["run_id"]
    state = summary["state"]
    lines = [f"run {run_id}  {style(state, state)}  (workflow {summary['workflow_id']})"]
    links = rerun_links(summary)
    if links:
        lines.append(links)
    when = f"created {_iso_local(summary['created'])}"
    if summary.get("finished"):
        when += f"  finished {_iso_local(summary['finished'])}"
    took = "took" if summary.get("finished") else "running for"
    when += f"  {took} {duration(summary.get('duration_sec'))}"
    runner = "alive" if summary["runner_alive"] else "not running"
    lines.append(f"{when}  runner {runner}")
    steps = summary["steps"]
    counts = dict(summary["counts"])
    retrying = sum(1 for e in steps.values() if e["state"] == "FAILED" and not e.get("final"))
    counts["FAILED"] -= retrying
    counts["RETRYING"] = retrying
    lines.append(f"{len(steps)} steps: {counts_text(counts)}")
    if summary.get("interrupted"):
        command = continue_command(run_id, "RUNNING", None)
        text = f"interrupted: no runner owns it; continue it with: {command}"
        lines.append(style(text, "INTERRUPTED"))
    lines.append("")
    listed = steps
    room = None if max_lines is None else max_lines - len(lines) - 2
    if room is not None and len(steps) > room:
        listed = {k: e for k, e in steps.items() if e["state"] not in _SETTLED}
        listed = dict(list(listed.items())[: max(room, 1)])
    rows, states = [], []
    for step_id, entry in listed.items():
        exit_code = entry.get("exit_code")
        label = step_state_label(entry, now_us)
        rows.append(
            (
                step_id,
                label,
                str(entry["attempts"]),
                "-" if exit_code is None else str(exit_code),
                entry.get("reason") or "-",
                duration(entry.get("duration_sec")),
            )
        )
        states.append("RETRYING" if label.startswith("FAILED (retry") else entry["state"])
    header = ("STEP", "STATE", "ATTEMPTS", "EXIT", "REASON", "DURATION")
    lines.extend(table(header, rows, states, style, coloured=1))
    if listed is not steps:
        lines.append(f"({len(steps) - len(listed)} more steps: wf status {run_id})")
        return "\n".join(lines)
    failed = [(step, entry) for step, entry in steps.items() if entry["state"] == "FAILED"]
    shown = [(s, entry) for s, entry in failed if entry.get("stderr_tail") or entry.get("error")]
    if shown:
        lines.append("")
        lines.append("stderr of failed steps:")
        for step, entry in shown:
            lines.append(f"  {step} (attempt {entry['attempts']}):")
            if entry.get("error"):
                lines.extend(f"    {line}" for line in _tail_lines(entry["error"]))
            lines.extend(f"    {line}" for line in _tail_lines(entry.get("stderr_tail")))
    return "\n".join(lines)


LIST_HEADER = ("RUN", "STATE", "WORKFLOW", "STEPS", "STARTED", "DURATION")


def rerun_links(summary: Mapping[str, Any]) -> str:
    """``rerun of A; rerun as B, C``: a run's origin and its reruns, or "" when it has none."""
    links = []
    if summary.get("rerun_of"):
        links.append(f"rerun of {summary['rerun_of']}")
    if summary.get("rerun_as"):
        links.append(f"rerun as {', '.join(summary['rerun_as'])}")
    return "; ".join(links)


def list_text(rows: Sequence[dict[str, Any]], style: Styler = _plain) -> str:
    """``wf list``: a header, then a row per run (newest first, as given)."""
    cells: list[tuple[str, ...]] = []
    states: list[str] = []
    for row in rows:
        state = row["state"]
        if state == "UNREADABLE":
            cells.append((row["run_id"], state, row.get("error") or "", "", "", ""))
            states.append(state)
            continue
        label = state
        cells.append(
            (
                row["run_id"],
                label,
                row.get("workflow_id") or "-",
                f"{row.get('steps_succeeded', 0)}/{row.get('steps_total', 0)}",
                _iso_local(row.get("created")),
                duration(row.get("duration_sec")),
            )
        )
        states.append("INTERRUPTED" if row.get("interrupted") else state)
    # An unreadable run's reason runs over the columns after its state.
    readable = [c for c in cells if c[1] != "UNREADABLE"] or [("",) * len(LIST_HEADER)]
    widths = [max(len(c[i]) for c in (LIST_HEADER, *readable)) for i in range(len(LIST_HEADER))]
    widths[0] = max(len(c[0]) for c in (LIST_HEADER, *cells))
    widths[1] = max(len(c[1]) for c in (LIST_HEADER, *cells))
    lines = ["  ".join(h.ljust(w) for h, w in zip(LIST_HEADER, widths, strict=True)).rstrip()]
    for row, cell, state in zip(rows, cells, states, strict=True):
        parts = [cell[0].ljust(widths[0]), style(cell[1].ljust(widths[1]), state)]
        if state == "UNREADABLE":
            parts.append(cell[2])
        else:
            parts.extend(c.ljust(w) for c, w in zip(cell[2:], widths[2:], strict=True))
            if row.get("interrupted"):
                parts.append(style(f"interrupted: wf resume {row['run_id']}", "INTERRUPTED"))
            elif row.get("runner_alive"):
                parts.append("(runner alive)")
            links = rerun_links(row)
            if links:
                parts.append(f"({links})")
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def state_styler(colour: bool) -> Styler:
    """Colours states with click's styles when ``colour``; else leaves text alone."""
    if not colour:
        return _plain
    import click

    def style(text: str, state: str) -> str:
        key = state.split(" ")[0]
        fg = COLOURS.get(key)
        return click.style(text, fg=fg) if fg else text

    return style
