"""``wf graph WORKFLOW|RUN_ID``: the DAG as text, Mermaid or Graphviz dot."""

from __future__ import annotations

import os

import click

from wf_engine.cli.context import CliContext
from wf_engine.core.model import Workflow
from wf_engine.runtime.runview import read_run
from wf_engine.runtime.workflow_file import load_workflow


@click.command("graph")
@click.argument("source", metavar="WORKFLOW|RUN_ID")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "mermaid", "dot"]),
    default="text",
    show_default=True,
)
@click.pass_obj
def graph_command(obj: CliContext, source: str, fmt: str) -> None:
    """Print the dependency graph of a workflow file or of a run (with step states)."""
    states: dict[str, str] = {}
    if os.path.exists(source):
        workflow = load_workflow(source)
    else:
        state = read_run(obj.store.existing(source)).state
        workflow = state.workflow
        states = {state.step_id(i): s.state.value for i, s in enumerate(state.steps)}
    click.echo({"text": _text, "mermaid": _mermaid, "dot": _dot}[fmt](workflow, states))


def _label(step_id: str, states: dict[str, str]) -> str:
    return f"{step_id} [{states[step_id]}]" if step_id in states else step_id


def _text(workflow: Workflow, states: dict[str, str]) -> str:
    lines = []
    for step in workflow.steps:
        after = f" <- {', '.join(step.depends_on)}" if step.depends_on else ""
        lines.append(f"{_label(step.id, states)}{after}")
    return "\n".join(lines)


def _mermaid(workflow: Workflow, states: dict[str, str]) -> str:
    lines = ["graph TD"]
    ids = {step.id: f"s{i}" for i, step in enumerate(workflow.steps)}
    for step in workflow.steps:
        lines.append(f'    {ids[step.id]}["{_label(step.id, states)}"]')
    for step in workflow.steps:
        lines.extend(f"    {ids[dep]} --> {ids[step.id]}" for dep in step.depends_on)
    return "\n".join(lines)


def _dot(workflow: Workflow, states: dict[str, str]) -> str:
    lines = [f'digraph "{workflow.workflow_id}" {{']
    for step in workflow.steps:
        lines.append(f'    "{step.id}" [label="{_label(step.id, states)}"];')
    for step in workflow.steps:
        lines.extend(f'    "{dep}" -> "{step.id}";' for dep in step.depends_on)
    lines.append("}")
    return "\n".join(lines)
