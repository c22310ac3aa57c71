"""Read-only commands: ``status``, ``replay``, ``list``, ``logs``. They only ever read the log."""

from __future__ import annotations

import json
import shutil
import sys
from typing import Any

import click

from wf_engine.cli.context import CliContext, note
from wf_engine.cli.render import error_text, status_table, timeline_line
from wf_engine.errors import EXIT_CORRUPT, UsageError, WfError
from wf_engine.log.storefiles import open_regular
from wf_engine.runtime.runview import Entry, read_run, run_summary, step_summary


@click.command("status")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def status_command(obj: CliContext, run_id: str, as_json: bool) -> None:
    """State of RUN_ID and of each step, from its log alone."""
    view = read_run(obj.store.existing(run_id))
    if view.torn is not None:
        note(f"{view.torn.describe()} ('wf resume' cuts it off)")
    summary = run_summary(view)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    runner = "alive" if view.runner_alive else "not running"
    click.echo(f"run {summary['run_id']}  {summary['state']}  (workflow {summary['workflow_id']})")
    click.echo(f"created {summary['created']}  runner {runner}")
    click.echo(status_table(summary["steps"]))


@click.command("replay")
@click.argument("run_id")
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

        verify_log(entries, paths.events)
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


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_obj
def list_command(obj: CliContext, as_json: bool) -> None:
    """Every run in the store, oldest first (exit 4 if one is unreadable: listed all the same)."""
    rows = [_list_row(obj, run_id) for run_id in obj.store.run_ids()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        for row in rows:
            alive = "  (runner alive)" if row.get("runner_alive") else ""
            detail = row.get("error") or row.get("created") or ""
            click.echo(f"{row['run_id']}  {row['state']}  {detail}{alive}")
    if any(row["state"] == UNREADABLE for row in rows):
        raise SystemExit(EXIT_CORRUPT)


UNREADABLE = "UNREADABLE"
_LIST_KEYS = ("run_id", "workflow_id", "state", "runner_alive", "created", "finished")


def _list_row(obj: CliContext, run_id: str) -> dict[str, Any]:
    """One run's row; a run that cannot be read is a row too, so one bad run hides no other."""
    try:
        summary = run_summary(read_run(obj.store.paths(run_id)))
    except (WfError, OSError) as error:
        return {"run_id": run_id, "state": UNREADABLE, "error": error_text(error)}
    return {key: summary[key] for key in _LIST_KEYS}


@click.command("logs")
@click.argument("run_id")
@click.argument("step")
@click.option("--attempt", type=click.IntRange(min=1), help="Attempt number (default: the latest).")
@click.pass_obj
def logs_command(obj: CliContext, run_id: str, step: str, attempt: int | None) -> None:
    """Captured stdout (to stdout) and stderr (to stderr) of one attempt of STEP."""
    paths = obj.store.existing(run_id)
    state = read_run(paths).state
    if not state.workflow.has_step(step):
        raise UsageError(f"run {run_id!r} has no step {step!r}")
    latest = state.steps[state.workflow.index_of(step)].attempt
    chosen = attempt or latest
    if chosen < 1 or chosen > latest:
        raise UsageError(f"step {step!r} has {latest} attempt(s); no attempt {chosen}")
    found = False
    for suffix, stream in (("out", sys.stdout), ("err", sys.stderr)):
        try:
            source = open_regular(paths.attempt_file(step, chosen, suffix))
        except FileNotFoundError:
            continue  # output is advisory: a missing file is no error, a FIFO is (never waited on)
        found = True
        with source:
            stream.flush()
            shutil.copyfileobj(source, stream.buffer)
            stream.flush()
    if not found:
        note(f"no captured output kept for step {step!r} attempt {chosen}")
