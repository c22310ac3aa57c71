"""The import contract in ``pyproject.toml`` bites: each rule fails ``lint-imports`` when broken.

Each test copies ``wf_engine/`` and ``pyproject.toml`` to a temporary folder, changes one import
in the copy and runs ``lint-imports`` there, with the copy first on ``PYTHONPATH``, so the copy
is what gets analysed (checked: the output names the module that was changed, and the copy's
``wf_engine`` is the one that imports). ``tests/test_quality.py`` runs it on the real tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = "from importlinter.cli import lint_imports_command; lint_imports_command()"

LAYERS = "Layers: cli > runtime > plugins | log > core"
CORE_PURE = "The core imports no other layer"
PLUGINS_PLAIN = "Plugins see plain dicts, not engine types"
CLICK_IN_CLI = "Only the CLI imports click"
CONTRACTS = (LAYERS, CORE_PURE, PLUGINS_PLAIN, CLICK_IN_CLI)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the package and its ``pyproject.toml``, outside the installed tree."""
    copy = tmp_path / "project"
    shutil.copytree(
        REPO / "wf_engine", copy / "wf_engine", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy2(REPO / "pyproject.toml", copy / "pyproject.toml")
    return copy


def _env(project: Path) -> dict[str, str]:
    # A wide terminal, so no line of the report is wrapped in the middle of a module name.
    return {**os.environ, "PYTHONPATH": str(project), "COLUMNS": "300", "NO_COLOR": "1"}


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache"],
        cwd=project,
        env=_env(project),
        capture_output=True,
        text=True,
        check=False,
    )


def add_import(project: Path, module: str, statement: str) -> None:
    path = project / (module.replace(".", "/") + ".py")
    assert path.is_file(), path
    with path.open("a", encoding="utf-8") as file:
        file.write(f"\n{statement}  # noqa: E402, F401\n")


def test_the_copy_is_what_gets_imported(project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import wf_engine; print(wf_engine.__file__)"],
        cwd=project,
        env=_env(project),
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(done.stdout.strip()).resolve() == (project / "wf_engine/__init__.py").resolve()


def test_the_unchanged_copy_keeps_every_contract(project: Path) -> None:
    done = lint_imports(project)
    assert done.returncode == 0, done.stdout + done.stderr
    for contract in CONTRACTS:
        assert f"{contract} KEPT" in done.stdout


@pytest.mark.parametrize(
    ("module", "statement", "broken", "offence"),
    [
        pytest.param(
            "wf_engine.core.clock",
            "from wf_engine.runtime import store",
            [LAYERS, CORE_PURE],
            "wf_engine.core.clock -> wf_engine.runtime.store",
            id="core-imports-runtime",
        ),
        pytest.param(
            "wf_engine.core.states",
            "import wf_engine.log.durable",
            [LAYERS, CORE_PURE],
            "wf_engine.core.states -> wf_engine.log.durable",
            id="core-imports-log",
        ),
        pytest.param(
            "wf_engine.log.durable",
            "from wf_engine.plugins import hookspecs",
            [LAYERS],
            "wf_engine.log.durable -> wf_engine.plugins.hookspecs",
            id="log-imports-its-sibling-plugins",
        ),
        pytest.param(
            "wf_engine.runtime.oscaps",
            "from wf_engine.cli import context",
            [LAYERS, CLICK_IN_CLI],  # click too: indirectly, through the CLI module
            "wf_engine.runtime.oscaps -> wf_engine.cli.context",
            id="runtime-imports-cli",
        ),
        pytest.param(
            "wf_engine.plugins.hookspecs",
            "from wf_engine.core import clock",
            [PLUGINS_PLAIN],
            "wf_engine.plugins.hookspecs -> wf_engine.core.clock",
            id="plugins-import-core",
        ),
        pytest.param(
            "wf_engine.runtime.oscaps",
            "import click",
            [CLICK_IN_CLI],
            "wf_engine.runtime.oscaps -> click",
            id="runtime-imports-click",
        ),
    ],
)
def test_a_broken_rule_fails_lint_imports(
    project: Path, module: str, statement: str, broken: list[str], offence: str
) -> None:
    add_import(project, module, statement)
    done = lint_imports(project)
    assert done.returncode == 1, done.stdout + done.stderr
    for contract in CONTRACTS:
        verdict = "BROKEN" if contract in broken else "KEPT"
        assert f"{contract} {verdict}" in done.stdout, done.stdout
    assert offence in done.stdout, done.stdout


def test_an_import_for_annotations_only_is_allowed(project: Path) -> None:
    """``if TYPE_CHECKING: import click`` never runs, so it couples no layers."""
    add_import(
        project,
        "wf_engine.runtime.oscaps",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import click",
    )
    done = lint_imports(project)
    assert done.returncode == 0, done.stdout + done.stderr
