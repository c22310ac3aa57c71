"""``wf validate WORKFLOW``: check a workflow file without running anything."""

from __future__ import annotations

import click

from wf_engine.runtime.workflow_file import load_workflow


@click.command(
    "validate",
    epilog="""\b
Example:
  wf validate examples/image_pipeline/workflow.json""",
)
@click.argument("workflow_file", metavar="WORKFLOW", type=click.Path())
def validate_command(workflow_file: str) -> None:
    """Report every problem in WORKFLOW at once (exit 2), or say it is valid (exit 0)."""
    workflow = load_workflow(workflow_file)
    click.echo(f"{workflow_file}: valid ({len(workflow.steps)} steps)")
