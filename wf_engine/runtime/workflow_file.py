"""Reading a workflow file: the I/O in front of ``wf_engine.core.validation``.

The core validates text and data but never touches a disk; this module reads the file and turns
a file that cannot be read (missing, a folder, not UTF-8) into the same ``WorkflowInvalid`` a
bad document gives, so ``wf validate`` and ``wf run`` report both the same way.
"""

from __future__ import annotations

import os

from wf_engine.core.model import Workflow
from wf_engine.core.validation import Problem, WorkflowInvalid, parse_workflow


def load_workflow(path: str | os.PathLike[str]) -> Workflow:
    """Read a workflow file as UTF-8 (a leading BOM is tolerated) and validate it."""
    source = os.fspath(path)
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError as exc:
        raise _cannot_read(source, exc.strerror or str(exc)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        reason = f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        raise _cannot_read(source, reason) from None
    return parse_workflow(text, source)


def _cannot_read(source: str, reason: str) -> WorkflowInvalid:
    return WorkflowInvalid(source, [Problem("", f"cannot read file: {reason}")])
