"""``wf rerun RUN_ID``: a new run that carries over what its origin did right and runs the rest.

The origin's log is only read, never reopened. The plan (``wf_engine.core.rerun``) says, for
each step, reuse, run or skip and why; ``--dry-run`` prints it and creates nothing, otherwise
the rerun is created with its carried-over steps in its first batch and runs as ``wf run`` does
(same views, same exit codes). The rules are in docs/workflows.md, "Rerun".
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import click

from wf_engine.cli.context import CliContext, note, plugin_option
from wf_engine.cli.display import display_options
from wf_engine.cli.run import executor_options, run_to_the_end
from wf_engine.cli.runids import RUN_ID, STEP, did_you_mean
from wf_engine.core.model import MAX_PARALLEL
from wf_engine.core.rerun import Action, RerunPlan, RerunRefused
from wf_engine.errors import EXIT_CANCELLED
from wf_engine.runtime.executors import ExecutorChoice, resolve
from wf_engine.runtime.reruns import RerunSource, prepare_rerun
from wf_engine.runtime.stopsignals import StopSignals
from wf_engine.runtime.takeover import RunRequest, create_run


@click.command(
    "rerun",
    epilog="""\b
Examples:
  wf rerun @last                                 (what failed or never ran, runs again)
  wf rerun @last --workflow flow.json            (after fixing a step in flow.json)
  wf rerun image_pipeline-2026 --from embed      (embed and everything after it)
  wf rerun @last --only publish --dry-run --json (the plan, nothing created)""",
)
@click.argument("run_id", type=RUN_ID)
@click.option(
    "--workflow",
    "workflow_file",
    type=click.Path(),
    metavar="FILE",
    help="Run this definition; changed steps and their dependents run again "
    "(default: the origin's own).",
)
@click.option(
    "--from",
    "from_steps",
    multiple=True,
    type=STEP,
    help="Run STEP and everything downstream of it again, even if it succeeded (repeatable).",
)
@click.option(
    "--only",
    "only_steps",
    multiple=True,
    type=STEP,
    help="Run exactly STEP (repeatable); its dependencies must have succeeded in the origin.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the plan (reuse, run, skip: why); create nothing."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the final status (or the plan) as JSON."
)
@click.option(
    "--run-id", "new_run_id", help="Id for the new run (default: <workflow id>-<time>-<hex>)."
)
@click.option(
    "--max-parallel",
    type=click.IntRange(1, MAX_PARALLEL),
    help="Steps running at once (default: as in the origin).",
)
@click.option("--fail-fast", is_flag=True, help="Cancel the rest when a step fails for good.")
@click.option("--detach", is_flag=True, help="Run in the background; print the run id.")
@executor_options(default="the origin's (with --workflow: that file's)")
@plugin_option
@display_options
@click.pass_obj
def rerun_command(
    obj: CliContext,
    run_id: str,
    workflow_file: str | None,
    from_steps: tuple[str, ...],
    only_steps: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
    new_run_id: str | None,
    max_parallel: int | None,
    fail_fast: bool,
    detach: bool,
    executor: str | None,
    scheduler: str | None,
    plugin_modules: tuple[str, ...],
) -> None:
    """Rerun RUN_ID as a new run: what succeeded is reused, the rest runs; exit as wf run."""
    source = prepare_rerun(obj.store, run_id, workflow_file)
    where = workflow_file or f"run {run_id}"
    _check_steps(source, "--from", from_steps, where)
    _check_steps(source, "--only", only_steps, where)
    plan = source.plan(from_steps, only_steps)
    origin = source.origin.options
    ran_on = ExecutorChoice.of_workflow(source.workflow) if workflow_file else None
    choice = resolve(executor, scheduler, ran_on or ExecutorChoice.recorded(origin))
    if dry_run:
        click.echo(json.dumps(plan.to_json(), indent=2) if as_json else _plan_text(plan))
        return
    # From here on SIGINT/SIGTERM is a stop request (as in ``wf run``): the rerun is cancelled,
    # never left without an owner.
    signals = StopSignals().install()
    plugins = obj.plugins_for_run(plugin_modules, progress=not (as_json or detach))
    if signals.requested:
        note("interrupted before the rerun was created: nothing was created")
        raise SystemExit(EXIT_CANCELLED)
    request = RunRequest(
        workflow=source.workflow,
        base_dir=source.base_dir,
        run_id=new_run_id,
        max_parallel=max_parallel or (None if workflow_file else origin.max_parallel),
        fail_fast=fail_fast or origin.fail_fast,
        executor=choice,
        rerun=plan,
    )
    runner = create_run(obj.store, request, plugins, signals)
    note(f"{runner.run_id}: rerun of {run_id}: {_plan_counts(plan)}")
    run_to_the_end(obj, runner, plugins, signals, detach, as_json)


def _check_steps(source: RerunSource, option: str, names: Sequence[str], where: str) -> None:
    """Refuse a step the definition does not have, with the closest names."""
    known = [step.id for step in source.workflow.steps]
    for name in names:
        if not source.workflow.has_step(name):
            raise RerunRefused(f"{option}: {where} has no step {name!r}{did_you_mean(name, known)}")


def _plan_counts(plan: RerunPlan) -> str:
    """``2 reused, 3 to run, 1 left out``."""
    counts = [
        (len(plan.ids(Action.REUSE)), "reused"),
        (len(plan.ids(Action.RUN)), "to run"),
        (len(plan.ids(Action.SKIP)), "left out"),
    ]
    return ", ".join(f"{count} {word}" for count, word in counts if count) or "no steps"


def _plan_text(plan: RerunPlan) -> str:
    """One line per step: its action, its id, why; then what would be created (nothing yet)."""
    width = max((len(step) for step in plan.steps), default=0)
    lines = [f"rerun of {plan.origin_run_id}: {_plan_counts(plan)}"]
    for step, step_plan in plan.steps.items():
        lines.append(f"  {step_plan.action.value:<5}  {step:<{width}}  {step_plan.why}")
    lines.append("dry run: nothing was created")
    return "\n".join(lines)
