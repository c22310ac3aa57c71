"""wf: a local, event-sourced workflow engine.

The public surface: ``hookimpl`` for plugins, the workflow loaders, and the run entry points.
The log (``events.jsonl``) is the single source of truth; see docs/log-format.md.
"""

from __future__ import annotations

from wf_engine.core.validation import WorkflowInvalid, parse_workflow, workflow_from_data
from wf_engine.plugins.manager import hookimpl
from wf_engine.runtime.workflow_file import load_workflow

__all__ = ["WorkflowInvalid", "hookimpl", "load_workflow", "parse_workflow", "workflow_from_data"]
__version__ = "0.1.0"
