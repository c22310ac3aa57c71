"""Shared by the pipeline's steps: where artifacts live, and how they are written.

Each step runs as ``python3 steps/<name>.py`` from the folder holding ``workflow.json``, so this
module is importable as ``common``. Artifacts go to ``$WF_RUN_DIR/artifacts/`` (the run's own
folder in the wf home: two runs never share files), or ``./artifacts/`` when run by hand.
Files are written atomically, so a step killed half-way and run again never leaves a
half-written file for the next step to read.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def artifacts() -> Path:
    path = Path(os.environ.get("WF_RUN_DIR", ".")) / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_atomically(name: str, text: str) -> Path:
    target = artifacts() / name
    temporary = target.with_name(f".{name}.{os.getpid()}.tmp")
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, target)
    return target


def read_json(name: str) -> Any:
    return json.loads((artifacts() / name).read_text(encoding="utf-8"))


def fail(message: str) -> None:
    """Print why the step failed (``wf logs`` and the run's stderr tail show it), exit 1."""
    print(f"{Path(sys.argv[0]).stem}: {message}", file=sys.stderr)
    raise SystemExit(1)
