"""The pytest plugin: fixtures for running workflows in isolation.

Registered with the ``pytest11`` entry point ``wf``; disable with ``-p no:wf``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_wf.harness import TaskKit, WfHarness


@pytest.fixture
def wf_home(tmp_path: Path) -> Path:
    """An empty run store, private to the test."""
    home = tmp_path / "wf-home"
    home.mkdir()
    return home


@pytest.fixture
def wf(wf_home: Path, tmp_path: Path) -> Iterator[WfHarness]:
    """A ``WfHarness`` bound to ``wf_home``; background runs are killed at teardown."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    harness = WfHarness(wf_home, workdir)
    yield harness
    harness.close()


@pytest.fixture
def wf_tasks(tmp_path: Path) -> TaskKit:
    """Step commands from the task kit, all recording into one file (to count executions)."""
    return TaskKit(tmp_path / "task-records.jsonl")
