"""wf: a local, event-sourced workflow engine.

The public surface: ``hookimpl`` for plugins, the workflow loaders, and the run entry points.
The log (``events.jsonl``) is the single source of truth; see docs/log-format.md.

The names are imported on first use (PEP 562), so ``import wf_engine`` (which every ``wf``
command does first) costs nothing: ``wf --help`` never imports pluggy or the validator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wf_engine.core.validation import WorkflowInvalid, parse_workflow, workflow_from_data
    from wf_engine.plugins.manager import hookimpl
    from wf_engine.runtime.workflow_file import load_workflow

__all__ = ["WorkflowInvalid", "hookimpl", "load_workflow", "parse_workflow", "workflow_from_data"]
__version__ = "0.1.0"

#: Where each public name lives.
_HOMES = {
    "WorkflowInvalid": "wf_engine.core.validation",
    "parse_workflow": "wf_engine.core.validation",
    "workflow_from_data": "wf_engine.core.validation",
    "hookimpl": "wf_engine.plugins.manager",
    "load_workflow": "wf_engine.runtime.workflow_file",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # the next lookup is an ordinary global
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
