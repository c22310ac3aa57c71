"""The pytest plugin (entry point ``pytest11``: ``wf``; disable with ``-p no:wf``).

Fixtures: ``wf_home``, ``wf`` (a ``WfHarness``), ``wf_tasks`` (task-kit commands),
``wf_damage`` (log damage primitives), ``wf_replay_equivalent``, ``wf_resume_equivalent`` and
``wf_crash_point`` (set by the ``wf_crash_matrix`` marker). Options: ``--wf-crash-depth``,
``--wf-crash-points``. Hypothesis strategies live in ``pytest_wf.strategies`` and are imported
only by the tests that use them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fault_injection.crash import POINTS as CRASH_POINTS
from pytest_wf.harness import RunResult, TaskKit, WfHarness, WorkflowSpec

DEFAULT_DEPTH = 30
_REFERENCES = pytest.StashKey[dict[str, RunResult]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wf", "wf workflow engine testing")
    group.addoption(
        "--wf-crash-depth",
        type=int,
        default=None,
        metavar="N",
        help="wf_crash_matrix: crash at records 1..N (overrides the marker's depth; default "
        f"{DEFAULT_DEPTH}; crash points past the end of a run are skipped).",
    )
    group.addoption(
        "--wf-crash-points",
        default=None,
        metavar="POINTS",
        help="wf_crash_matrix: comma-separated crash points to try, of "
        f"{', '.join(CRASH_POINTS)} (overrides the marker's points; default after_sync).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "wf_crash_matrix(points=('after_sync',), depth=None): run the test once per crash point "
        "(seq, point), given to it as the wf_crash_point fixture.",
    )
    config.stash[_REFERENCES] = {}
    option = config.getoption("--wf-crash-points", None)
    if option:
        _check_points(option.split(","), "--wf-crash-points")


def _check_points(points: Any, where: str) -> tuple[str, ...]:
    """Crash points as a tuple; anything else is a usage error naming ``where``."""
    if isinstance(points, str) or not all(isinstance(p, str) for p in points):
        raise pytest.UsageError(f"{where}: crash points must be a tuple of names, not {points!r}")
    unknown = sorted(set(points) - set(CRASH_POINTS))
    if unknown:
        raise pytest.UsageError(
            f"{where}: unknown crash point(s) {', '.join(unknown)}; use {', '.join(CRASH_POINTS)}"
        )
    return tuple(points)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("wf_crash_matrix")
    if marker is None or "wf_crash_point" not in metafunc.fixturenames:
        return
    # The command line wins over the marker, which wins over the defaults.
    option = metafunc.config.getoption("--wf-crash-points")
    points = option.split(",") if option else marker.kwargs.get("points", ("after_sync",))
    points = _check_points(points, "wf_crash_matrix")
    depth = metafunc.config.getoption("--wf-crash-depth")
    if depth is None:
        depth = marker.kwargs.get("depth", DEFAULT_DEPTH)
    matrix = [(seq, point) for point in points for seq in range(1, depth + 1)]
    metafunc.parametrize("wf_crash_point", matrix, ids=[f"{point}@{seq}" for seq, point in matrix])


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


@pytest.fixture
def wf_damage() -> ModuleType:
    """``fault_injection.logfaults``: tear, append_zeros, append_garbage, flip_byte, …"""
    from fault_injection import logfaults

    return logfaults


@pytest.fixture
def wf_crash_point(request: pytest.FixtureRequest) -> tuple[int, str]:
    """``(seq, point)`` from the ``wf_crash_matrix`` marker's parametrization."""
    if not hasattr(request, "param"):
        raise pytest.UsageError("wf_crash_point needs @pytest.mark.wf_crash_matrix on the test")
    point: tuple[int, str] = request.param
    return point


@pytest.fixture
def wf_replay_equivalent(wf: WfHarness) -> Callable[[RunResult], None]:
    """``wf_replay_equivalent(run)``: fold == live state, replay stable, ``--verify`` passes."""
    from pytest_wf.equivalence import assert_replay_equivalent

    def check(run: RunResult) -> None:
        __tracebackhide__ = True
        assert_replay_equivalent(wf, run)

    return check


@pytest.fixture
def wf_resume_equivalent(wf: WfHarness, request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``wf_resume_equivalent(workflow, crash_point, *options)``: crash, resume, compare.

    The uncrashed reference run is made once per workflow and options for the whole session,
    so a crash matrix costs one run per crash point, plus one. A crash point past the end of
    the run skips the test.
    """
    from pytest_wf.equivalence import assert_resume_equivalent

    references = request.config.stash[_REFERENCES]

    def check(workflow: WorkflowSpec, crash_point: tuple[int, str], *options: str) -> Any:
        __tracebackhide__ = True
        key = json.dumps([_workflow_key(workflow), options])
        if key not in references:
            references[key] = wf.run(workflow, *options)
        reference = references[key]
        if crash_point[0] > len(reference.events):
            pytest.skip(f"crash point {crash_point} is past the end of the run")
        return assert_resume_equivalent(wf, workflow, crash_point, *options, reference=reference)

    return check


def _workflow_key(workflow: WorkflowSpec) -> Any:
    if isinstance(workflow, dict):
        return workflow
    return str(Path(workflow).resolve())  # type: ignore[arg-type]
