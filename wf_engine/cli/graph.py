"""``wf graph WORKFLOW|RUN_ID``: the DAG as text, Mermaid, Graphviz dot or one HTML page.

For a run, every node carries its step's state (coloured in Mermaid, dot, HTML, and in text on a
colour terminal); the HTML page also shows when each step ran (``wf_engine.cli.graphhtml``).
Everything taken from the run or the workflow file is escaped for the format it lands in.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import click
from click.shell_completion import CompletionItem

from wf_engine.cli.context import CliContext, note
from wf_engine.cli.display import colour_allowed
from wf_engine.cli.runids import StrParam
from wf_engine.cli.summary import COLOURS, FILLS
from wf_engine.core.model import Workflow
from wf_engine.errors import RunNotFound, UsageError

FORMATS = ("text", "mermaid", "dot", "html")


class GraphSource(StrParam):
    """A workflow file or a run id: completes both (files first, so bash keeps file names)."""

    name = "workflow_or_run"

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        from wf_engine.cli.runids import RUN_ID

        items = [CompletionItem(incomplete, type="file")]
        if "/" not in incomplete:
            items.extend(RUN_ID.shell_complete(ctx, param, incomplete))
        return items


@click.command(
    "graph",
    epilog="""\b
Examples:
  wf graph examples/image_pipeline/workflow.json
  wf graph @last --format mermaid
  wf graph @last --format dot | dot -Tsvg > run.svg
  wf graph @last --format html -o run.html""",
)
@click.argument("source", metavar="WORKFLOW|RUN_ID", type=GraphSource())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text (one line per step), mermaid, dot (Graphviz) or html (one self-contained page).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to FILE instead of stdout (html on a terminal goes to ./<id>.graph.html).",
)
@click.pass_obj
def graph_command(obj: CliContext, source: str, fmt: str, output: str | None) -> None:
    """Print the dependency graph of a workflow file or of a run (with step states)."""
    steps: dict[str, dict[str, Any]] = {}
    run: dict[str, Any] | None = None
    if os.path.exists(source):
        from wf_engine.runtime.workflow_file import load_workflow

        workflow = load_workflow(source)
    else:
        from wf_engine.runtime.runview import read_run, run_summary

        run_id = _run_id(obj, source)
        view = read_run(obj.store.existing(run_id))
        workflow = view.state.workflow
        run = run_summary(view)
        steps = run["steps"]
    states = {step: entry["state"] for step, entry in steps.items()}
    if fmt == "text":
        text = _text(workflow, states, colour=output is None and colour_allowed(sys.stdout))
    elif fmt == "mermaid":
        text = mermaid(workflow, states)
    elif fmt == "dot":
        text = dot(workflow, states)
    else:
        from wf_engine.cli.graphhtml import html_page

        text = html_page(workflow, run)
        if output is None and sys.stdout.isatty():
            name = run["run_id"] if run is not None else workflow.workflow_id
            output = f"{name}.graph.html"
    if output is None:
        click.echo(text)
        return
    with open(output, "w", encoding="utf-8") as out:
        out.write(text + "\n")
    note(f"wrote {output}")


def _run_id(obj: CliContext, source: str) -> str:
    from wf_engine.cli.runids import resolve

    try:
        return resolve(obj.store, source)
    except RunNotFound as error:
        raise UsageError(f"no workflow file and {error}") from None


def _label(step_id: str, states: dict[str, str]) -> str:
    return f"{step_id} [{states[step_id]}]" if step_id in states else step_id


def _text(workflow: Workflow, states: dict[str, str], colour: bool = False) -> str:
    lines = []
    for step in workflow.steps:
        after = f" <- {', '.join(step.depends_on)}" if step.depends_on else ""
        label = _label(step.id, states)
        if colour and step.id in states and COLOURS.get(states[step.id]):
            label = click.style(label, fg=COLOURS[states[step.id]])
        lines.append(f"{label}{after}")
    return "\n".join(lines)


def _mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label: quotes and markup characters as entities."""
    return re.sub(r'["<>&#]', lambda m: f"#{ord(m.group())};", text)


def mermaid(workflow: Workflow, states: dict[str, str]) -> str:
    """``graph TD``, nodes ``s0 .. sN`` labelled ``step [STATE]``, one class per state."""
    lines = ["graph TD"]
    ids = {step.id: f"s{i}" for i, step in enumerate(workflow.steps)}
    for step in workflow.steps:
        lines.append(f'    {ids[step.id]}["{_mermaid_text(_label(step.id, states))}"]')
    for step in workflow.steps:
        lines.extend(f"    {ids[dep]} --> {ids[step.id]}" for dep in step.depends_on)
    if states:
        for state, (fill, stroke) in FILLS.items():
            members = [ids[step] for step, value in states.items() if value == state]
            if members:
                lines.append(f"    classDef {state.lower()} fill:{fill},stroke:{stroke}")
                lines.append(f"    class {','.join(members)} {state.lower()}")
    return "\n".join(lines)


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def dot(workflow: Workflow, states: dict[str, str]) -> str:
    """A ``digraph``; for a run, nodes filled with their state's colour."""
    lines = [f'digraph "{_dot_text(workflow.workflow_id)}" {{']
    if states:
        lines.append('    node [shape=box, style="rounded,filled", fontname="Helvetica"];')
    for step in workflow.steps:
        label = _dot_text(_label(step.id, states))
        if step.id in states and states[step.id] in FILLS:
            fill, stroke = FILLS[states[step.id]]
            attributes = f'label="{label}", fillcolor="{fill}", color="{stroke}"'
            lines.append(f'    "{_dot_text(step.id)}" [{attributes}];')
        else:
            lines.append(f'    "{_dot_text(step.id)}" [label="{label}"];')
    for step in workflow.steps:
        lines.extend(
            f'    "{_dot_text(dep)}" -> "{_dot_text(step.id)}";' for dep in step.depends_on
        )
    lines.append("}")
    return "\n".join(lines)
