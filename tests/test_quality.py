"""The linters, the type checker and the import contract are part of the suite, so CI enforces
them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = "from importlinter.cli import lint_imports_command; lint_imports_command()"


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "ruff", "check", "."],
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        [sys.executable, "-m", "mypy"],
        # The import contract of pyproject.toml ([tool.importlinter]); tests/test_import_contract.py
        # shows that each of its rules fails when broken.
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache"],
    ],
    ids=["ruff-check", "ruff-format", "mypy", "lint-imports"],
)
def test_code_quality(command: list[str]) -> None:
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
