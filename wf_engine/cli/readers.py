"""Read-only commands: ``status``, ``replay``, ``list``, ``logs``: they only read the run store."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from typing import Any

import click

from wf_engine.cli.context import EXIT_CODES, CliContext, note
from wf_engine.cli.display import colour_allowed
from wf_engine.cli.render import (
    error_text,
    list_text,
    state_styler,
    status_table,
    status_text,
    timeline_line,
)
from wf_engine.cli.runids import RUN_ID, STEP, newest_first, unknown_step
from wf_engine.core.clock import now_us
from wf_engine.core.fold import RunState
from wf_engine.errors import EXIT_CORRUPT, UsageError, WfError
from wf_engine.log.storefiles import open_regular
from wf_engine.runtime.reruns import reruns_by_origin
from wf_engine.runtime.runview import Entry, RunView, read_run, run_summary, step_summary
from wf_engine.runtime.store import RunPaths, RunStore

#: ``wf status --watch``: seconds between two looks at the log (at least).
WATCH_INTERVAL_SEC = 1.0
#: How long an unfinished run may have no live runner before ``--watch`` stops following it:
#: ``wf run --detach`` hands its run over to a background ``wf resume``, and in between nobody
#: owns it.
OWNERLESS_GRACE_SEC = 5.0


class _Owner:
    """Whether a watched run is over for the watcher: finished, or ownerless for too long."""

    def __init__(self) -> None:
        self._ownerless_since: float | None = None

    def gone(self, view: RunView) -> bool:
        if view.state.finished is not None:
            return True
        if view.runner_alive:
            self._ownerless_since = None
            return False
        now = time.monotonic()
        if self._ownerless_since is None:
            self._ownerless_since = now
        return now - self._ownerless_since >= OWNERLESS_GRACE_SEC


@click.command(
    "status",
    epilog="""\b
Examples:
  wf status @last
  wf status image_pipeline-2026 --json   (a unique prefix of the run id)
  wf status --watch @last""",
)
@click.argument("run_id", type=RUN_ID)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--watch",
    is_flag=True,
    help="Follow a live run, redrawn as it changes, until it ends (exit code of the run).",
)
@click.pass_obj
def status_command(obj: CliContext, run_id: str, as_json: bool, watch: bool) -> None:
    """State of RUN_ID and of each step, from its log alone."""
    paths = obj.store.existing(run_id)
    if watch and not as_json:
        raise SystemExit(_watch(obj.store, paths))
    view = read_run(paths)
    if view.torn is not None:
        note(f"{view.torn.describe()} ('wf resume' cuts it off)")
    if as_json:
        click.echo(json.dumps(_summary(obj.store, view), indent=2))
        if watch:
            raise SystemExit(_watch_json(obj.store, paths, view))
        return
    click.echo(_status_page(obj.store, view, colour_allowed(sys.stdout)))


def _summary(store: RunStore, view: RunView, now: int | None = None) -> dict[str, Any]:
    """``run_summary`` plus ``rerun_as``: the runs that rerun this one (only a finished run
    has any, so the store is searched only then)."""
    finished = view.state.finished is not None
    reruns = reruns_by_origin(store).get(view.state.run_id, []) if finished else []
    return run_summary(view, now, reruns)


def _status_page(store: RunStore, view: RunView, colour: bool, max_lines: int | None = None) -> str:
    now = now_us() if view.runner_alive and view.state.finished is None else None
    return status_text(_summary(store, view, now), now, state_styler(colour), max_lines)


def _watch(store: RunStore, paths: RunPaths) -> int:
    """Redraw the status page while the run goes (in place on a colour terminal, else a new
    page each time something changed); the run's exit code once it has ended."""
    colour = colour_allowed(sys.stdout)
    live = None
    if colour:
        try:
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text
        except ImportError:
            colour = False
        else:
            console = Console(file=sys.stdout, force_terminal=True, highlight=False)
            live = Live(console=console, auto_refresh=False, transient=True)
            live.start()
    seen: tuple[int, int] | None = None
    owner = _Owner()
    try:
        while True:
            started = time.monotonic()
            size = _size(paths.events)
            view = read_run(paths)
            if live is not None:
                page = _status_page(store, view, True, live.console.height - 1)
                live.update(Text.from_ansi(page), refresh=True)
            elif (size, view.state.last_seq) != seen:
                if seen is not None:
                    click.echo("")
                click.echo(_status_page(store, view, False))
            seen = (size, view.state.last_seq)
            if owner.gone(view):
                if live is not None:  # the whole last page stays, as ``wf status`` prints it
                    live.stop()
                    live = None
                    click.echo(_status_page(store, view, True))
                return EXIT_CODES[view.state.status] if view.state.finished is not None else 0
            # Reading a big log takes time: never spend more than a third of it reading.
            time.sleep(max(WATCH_INTERVAL_SEC, 3 * (time.monotonic() - started)))
    finally:
        if live is not None:
            live.stop()


def _watch_json(store: RunStore, paths: RunPaths, view: RunView) -> int:
    """``--watch --json``: one JSON object per change, until the run ends."""
    seen = view.state.last_seq
    owner = _Owner()
    while not owner.gone(view):
        time.sleep(WATCH_INTERVAL_SEC)
        view = read_run(paths)
        if view.state.last_seq != seen:
            seen = view.state.last_seq
            click.echo(json.dumps(_summary(store, view), indent=2))
    return EXIT_CODES[view.state.status] if view.state.finished is not None else 0


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


@click.command(
    "replay",
    epilog="""\b
Examples:
  wf replay @last --verify
  wf replay RUN_ID --until 12 --json""",
)
@click.argument("run_id", type=RUN_ID)
@click.option("--verify", is_flag=True, help="Check every transition and decision (exit 4 if not).")
@click.option("--until", type=click.IntRange(min=1), metavar="SEQ", help="Stop after record SEQ.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def replay_command(
    obj: CliContext, run_id: str, verify: bool, until: int | None, as_json: bool
) -> None:
    """The timeline and the state rebuilt from RUN_ID's log; the same bytes on every call."""
    paths = obj.store.existing(run_id)
    entries: list[Entry] = []
    view = read_run(paths, until=until, keep=entries)
    if view.torn is not None:
        note(view.torn.describe())
    if verify:
        from wf_engine.core.verify import verify_log  # re-runs every decision: replay --verify only

        verify_log(entries, paths.events, _origin(obj.store, view.state))
    state = view.state
    if as_json:
        document: dict[str, Any] = {
            "run_id": state.run_id,
            "workflow_id": state.workflow.workflow_id,
            "until": state.last_seq,
            "state": state.status.value,
            "timeline": [record for record, _ in entries],
            "steps": step_summary(state, view.timings),
        }
        click.echo(json.dumps(document, indent=2, sort_keys=True))
    else:
        for record, event in entries:
            click.echo(timeline_line(record, event))
        click.echo(f"state after seq {state.last_seq}: {state.status.value}")
        click.echo(status_table(step_summary(state, view.timings)))
    if verify:
        click.echo(
            f"verified {len(entries)} records: all transitions legal, all decisions the engine's",
            err=True,
        )


def _origin(store: RunStore, state: RunState) -> RunState | None:
    """The final state of the run ``state`` reruns, for ``replay --verify`` to check its reuses
    against; None (and a note) when it is not a rerun, or its origin is not in this store."""
    origin = state.origin_run_id
    if origin is None:
        return None
    if not store.exists(origin):
        note(
            f"origin {origin} is not in {store.home}: the reuses were checked against this log only"
        )
        return None
    return read_run(store.paths(origin)).state


LIST_STATES = ("RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "INTERRUPTED", "UNREADABLE")


@click.command(
    "list",
    epilog="""\b
Examples:
  wf list --limit 5
  wf list --state failed
  wf list --state interrupted   (RUNNING runs whose runner died: wf resume them)""",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option(
    "--limit", type=click.IntRange(min=1), metavar="N", help="Only the N newest runs (that match)."
)
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(LIST_STATES, case_sensitive=False),
    help="Only runs in this state (repeatable).",
)
@click.pass_obj
def list_command(
    obj: CliContext, as_json: bool, limit: int | None, states: tuple[str, ...]
) -> None:
    """Every run in the store, newest first (exit 4 if one is unreadable: listed all the same)."""
    wanted = {state.upper() for state in states}
    store = obj.store
    rows = []
    reruns = reruns_by_origin(store)
    for run_id in newest_first(store):
        row = _list_row(obj, run_id, reruns.get(run_id, []))
        shown = "INTERRUPTED" if row.get("interrupted") else row["state"]
        if wanted and not ({row["state"], shown} & wanted):
            continue
        rows.append(row)
        if limit is not None and len(rows) == limit:
            break
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        click.echo(list_text(rows, state_styler(colour_allowed(sys.stdout))))
    else:
        note(f"no runs in {store.home}" + (" in that state" if wanted else ""))
    if any(row["state"] == UNREADABLE for row in rows):
        raise SystemExit(EXIT_CORRUPT)


UNREADABLE = "UNREADABLE"
_LIST_KEYS = ("run_id", "workflow_id", "state", "runner_alive", "created", "finished")


def _list_row(obj: CliContext, run_id: str, rerun_as: list[str]) -> dict[str, Any]:
    """One run's row; a run that cannot be read is a row too, so one bad run hides no other."""
    try:
        view = read_run(obj.store.paths(run_id))
        summary = run_summary(view)
    except (WfError, OSError) as error:
        return {"run_id": run_id, "state": UNREADABLE, "error": error_text(error)}
    row = {key: summary[key] for key in _LIST_KEYS}
    row["run_id"] = run_id  # the folder's name: what the other commands take
    row["interrupted"] = summary["interrupted"]
    row["rerun_of"] = summary["rerun_of"]
    row["rerun_as"] = rerun_as
    row["steps_total"] = len(summary["steps"])
    row["steps_succeeded"] = summary["counts"]["SUCCEEDED"]
    row["duration_sec"] = summary["duration_sec"]
    return row


@click.command(
    "logs",
    epilog="""\b
Examples:
  wf logs @last                  every step, each line prefixed by its step
  wf logs @last build            one step: its stdout, and its stderr on stderr
  wf logs @last build --attempt 1 --stderr
  wf logs @last --follow         as a live run writes it""",
)
@click.argument("run_id", type=RUN_ID)
@click.argument("step", required=False, type=STEP)
@click.option(
    "--attempt", type=click.IntRange(min=1), help="Attempt number (default: each step's latest)."
)
@click.option("-f", "--follow", is_flag=True, help="Print on as a live run writes.")
@click.option("--stderr", "stderr_only", is_flag=True, help="Only stderr (printed on stdout).")
@click.pass_obj
def logs_command(
    obj: CliContext,
    run_id: str,
    step: str | None,
    attempt: int | None,
    follow: bool,
    stderr_only: bool,
) -> None:
    """Captured output of RUN_ID's steps (of STEP only, if given)."""
    paths = obj.store.existing(run_id)
    state = read_run(paths).state
    names = [s.id for s in state.workflow.steps]
    if step is not None and not state.workflow.has_step(step):
        raise unknown_step(run_id, step, names)
    latest = {name: state.steps[index].attempt for index, name in enumerate(names)}
    if step is not None and attempt is not None and attempt > latest[step]:
        raise UsageError(f"step {step!r} has {latest[step]} attempt(s); no attempt {attempt}")
    if follow:
        from wf_engine.cli.follow import follow_logs

        raise SystemExit(follow_logs(paths, names, step, attempt, stderr_only))
    if step is not None:
        chosen = attempt or latest[step]
        if chosen < 1:
            raise UsageError(f"step {step!r} has not run yet")
        _one_step(paths, step, chosen, stderr_only)
        return
    width = max(len(name) for name in names)
    for name in names:
        chosen = attempt or latest[name]
        if 1 <= chosen <= latest[name]:
            _prefixed(paths, name, chosen, stderr_only, width)


def _streams(stderr_only: bool) -> tuple[tuple[str, Any], ...]:
    if stderr_only:
        return (("err", sys.stdout),)
    return (("out", sys.stdout), ("err", sys.stderr))


def _one_step(paths: RunPaths, step: str, attempt: int, stderr_only: bool) -> None:
    """One attempt's output as it was written (stdout to stdout, stderr to stderr)."""
    found = False
    for suffix, stream in _streams(stderr_only):
        try:
            source = open_regular(paths.attempt_file(step, attempt, suffix))
        except FileNotFoundError:
            continue  # output is advisory: a missing file is no error, a FIFO is (never waited on)
        found = True
        with source:
            stream.flush()
            shutil.copyfileobj(source, stream.buffer)
            stream.flush()
    if not found:
        note(f"no captured output kept for step {step!r} attempt {attempt}")


def _prefixed(paths: RunPaths, step: str, attempt: int, stderr_only: bool, width: int) -> None:
    """One attempt's output, each line prefixed by its step (stdout and stderr each to its own)."""
    prefix = f"{step:<{width}} | ".encode()
    for suffix, stream in _streams(stderr_only):
        try:
            source = open_regular(paths.attempt_file(step, attempt, suffix))
        except FileNotFoundError:
            continue
        with source:
            stream.flush()
            out = stream.buffer
            for line in source:
                out.write(prefix + line if line.endswith(b"\n") else prefix + line + b"\n")
            stream.flush()
