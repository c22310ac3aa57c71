"""The pytest plugin (entry point ``pytest11``: ``wf``; disable with ``-p no:wf``).

Fixtures: ``wf_home``, ``wf`` (a ``WfHarness``), ``wf_tasks`` (task-kit commands),
``wf_damage`` (log damage primitives), ``wf_replay_equivalent``, ``wf_resume_equivalent`` and
``wf_crash_point`` (set by the ``wf_crash_matrix`` marker). Options: ``--wf-crash-depth``,
``--wf-crash-points``, ``--wf-crash-sample``, ``--wf-crash-seed``, ``--wf-crash-jobs``,
``--wf-crash-reuse``, ``--wf-launch``. Hypothesis strategies live in ``pytest_wf.strategies``
and are imported only by the tests that use them.

Per session (``config.stash``): the uncrashed reference runs, the matrix plans and what each
matrix checked (printed in the terminal summary), the crash points reused by commit batch, and
the threads that check crash points ahead of their tests (``--wf-crash-jobs``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fault_injection.crash import POINTS as CRASH_POINTS
from pytest_wf import harness as harness_module
from pytest_wf.harness import RunResult, TaskKit, WfHarness, WorkflowSpec, session_tag_prefix
from pytest_wf.matrix import (
    Coverage,
    Job,
    MatrixPlan,
    PointResult,
    Prefetcher,
    References,
    Reuse,
    adopt,
    plan_matrix,
    run_point,
)

_MARKER_ARGS = ("workflow", "options", "env", "points", "depth", "sample")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _jobs(text: str) -> int:
    if text == "auto":
        return max(1, os.cpu_count() or 1)
    return _positive_int(text)


def _points(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("give at least one crash point")
    unknown = sorted(set(names) - set(CRASH_POINTS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown crash point(s) {', '.join(unknown)}; use {', '.join(CRASH_POINTS)}"
        )
    return names


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wf", "wf workflow engine testing")
    group.addoption(
        "--wf-crash-depth",
        type=_positive_int,
        default=None,
        metavar="N",
        help="wf_crash_matrix: crash at records 1..N only (overrides the marker's depth; "
        "default: every record of the run).",
    )
    group.addoption(
        "--wf-crash-points",
        type=_points,
        default=None,
        metavar="POINTS",
        help="wf_crash_matrix: comma-separated crash points to try, of "
        f"{', '.join(CRASH_POINTS)} (overrides the marker's points; default: all).",
    )
    group.addoption(
        "--wf-crash-sample",
        type=_positive_int,
        default=None,
        metavar="N",
        help="wf_crash_matrix: check N crash points of each matrix, drawn at random "
        "(see --wf-crash-seed; default: all of them).",
    )
    group.addoption(
        "--wf-crash-seed",
        type=_integer,
        default=0,
        metavar="SEED",
        help="wf_crash_matrix: seed of --wf-crash-sample's draw (default 0).",
    )
    group.addoption(
        "--wf-crash-jobs",
        type=_jobs,
        default=1,
        metavar="N",
        help="wf_crash_matrix: check up to N crash points at once, ahead of their tests "
        "('auto': one per CPU; default 1).",
    )
    group.addoption(
        "--wf-crash-reuse",
        choices=("batch", "none"),
        default="batch",
        help="wf_crash_matrix: 'batch' checks the before_write and before_sync points of one "
        "commit batch once (the engine dies at the same instant for all); 'none' runs "
        "each (default batch).",
    )
    group.addoption(
        "--wf-launch",
        choices=("fork", "exec"),
        default=None,
        help="how the harness starts wf commands: 'fork' from a server that imported the engine "
        "once, or 'exec' a new interpreter each time (default fork, or $PYTEST_WF_LAUNCH).",
    )


@dataclass
class _Session:
    """Per-session state of the plugin (``config.stash``)."""

    config: pytest.Config
    #: Inside another session's test (``pytester`` in-process): leave the process-wide
    #: machinery (fork servers, the sweep of every tagged process) to the outer session.
    nested: bool = False
    #: ``--wf-launch``: the default it replaced, restored at the end.
    launch_before: str | None = None
    coverage: Coverage = field(default_factory=Coverage)
    reuse: Reuse | None = None
    prefetcher: Prefetcher | None = None
    references: References | None = None
    _root: Path | None = None

    def root(self) -> Path:
        """A session folder kept after the run (under pytest's basetemp when it has one)."""
        if self._root is None:
            factory = getattr(self.config, "_tmp_path_factory", None)
            if factory is not None:
                self._root = Path(factory.mktemp("wf-session", numbered=True))
            else:  # pragma: no cover - pytest always has it
                self._root = Path(tempfile.mkdtemp(prefix="pytest-wf-"))
        return self._root

    def subfolder(self, name: str) -> Callable[[], Path]:
        def make() -> Path:
            path = self.root() / name
            path.mkdir(exist_ok=True)
            return path

        return make


_SESSION = pytest.StashKey[_Session]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "wf_crash_matrix(workflow=None, options=(), env=None, points=None, depth=None, "
        "sample=None): run the test once per crash point (seq, point), given to it as the "
        "wf_crash_point fixture; by default every record of the workflow's run at every point.",
    )
    session = _Session(config, nested="PYTEST_CURRENT_TEST" in os.environ)
    launch = config.getoption("--wf-launch", None)
    if launch:
        session.launch_before = harness_module.set_default_launch(launch)
    session.references = References(session.subfolder("references"))
    if config.getoption("--wf-crash-reuse", "batch") == "batch":
        session.reuse = Reuse()
    jobs = config.getoption("--wf-crash-jobs", 1) or 1
    if jobs > 1:
        session.prefetcher = Prefetcher(jobs, session.subfolder("points"), session.reuse)
    config.stash[_SESSION] = session


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION, None)
    if session is None:
        return
    if config.getoption("--wf-launch", None):
        harness_module.set_default_launch(session.launch_before)
    if session.prefetcher is not None:
        session.prefetcher.close()
    if session.references is not None:
        session.references.close()
    if session.nested:
        return
    from pytest_wf import forkserver
    from pytest_wf.processes import kill_tagged

    kill_tagged(session_tag_prefix())
    forkserver.shutdown()


# --------------------------------------------------------------------------- the matrix


def _check_points(points: Any, where: str) -> tuple[str, ...]:
    """Crash points as a tuple; anything else is a usage error naming ``where``."""
    if isinstance(points, str) or not all(isinstance(p, str) for p in points):
        raise pytest.UsageError(f"{where}: crash points must be a tuple of names, not {points!r}")
    unknown = sorted(set(points) - set(CRASH_POINTS))
    if unknown:
        raise pytest.UsageError(
            f"{where}: unknown crash point(s) {', '.join(unknown)}; use {', '.join(CRASH_POINTS)}"
        )
    if not points:
        raise pytest.UsageError(f"{where}: give at least one crash point")
    return tuple(points)


def _check_count(value: Any, name: str, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise pytest.UsageError(f"{where}: {name} must be an integer >= 1, not {value!r}")
    return value


def _marker_args(marker: pytest.Mark, where: str) -> dict[str, Any]:
    if marker.args:
        raise pytest.UsageError(f"{where}: wf_crash_matrix takes keyword arguments only")
    unknown = sorted(set(marker.kwargs) - set(_MARKER_ARGS))
    if unknown:
        raise pytest.UsageError(
            f"{where}: unknown wf_crash_matrix argument(s) {', '.join(unknown)}; "
            f"use {', '.join(_MARKER_ARGS)}"
        )
    kwargs = dict(marker.kwargs)
    workflow = kwargs.get("workflow")
    if workflow is not None and not isinstance(workflow, Mapping | str | os.PathLike):
        raise pytest.UsageError(f"{where}: workflow must be a dict or a path, not {workflow!r}")
    options = kwargs.get("options", ())
    if isinstance(options, str) or not all(isinstance(o, str) for o in options):
        raise pytest.UsageError(f"{where}: options must be a tuple of strings, not {options!r}")
    env = kwargs.get("env")
    if env is not None and not (
        isinstance(env, Mapping) and all(isinstance(v, str) for v in [*env, *env.values()])
    ):
        raise pytest.UsageError(f"{where}: env must map names to strings, not {env!r}")
    kwargs["options"] = tuple(options)
    kwargs["env"] = dict(env) if env is not None else None
    return kwargs


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("wf_crash_matrix")
    if marker is None or "wf_crash_point" not in metafunc.fixturenames:
        return
    config = metafunc.config
    session = config.stash[_SESSION]
    where = f"wf_crash_matrix on {metafunc.definition.nodeid}"
    kwargs = _marker_args(marker, where)
    narrowed: list[str] = []
    # The command line wins over the marker, which wins over the defaults (everything).
    option_points = config.getoption("--wf-crash-points")
    marker_points = kwargs.get("points")
    points = option_points or _check_points(
        CRASH_POINTS if marker_points is None else marker_points, where
    )
    if set(points) != set(CRASH_POINTS):
        narrowed.append("--wf-crash-points" if option_points else "the marker's points")
    depth = config.getoption("--wf-crash-depth")
    if depth is not None:
        narrowed.append(f"--wf-crash-depth {depth}")
    else:
        depth = _check_count(kwargs.get("depth"), "depth", where)
        if depth is not None:
            narrowed.append(f"the marker's depth={depth}")
    sample = config.getoption("--wf-crash-sample")
    if sample is None:
        sample = _check_count(kwargs.get("sample"), "sample", where)
    seed = config.getoption("--wf-crash-seed")
    if sample is not None:
        narrowed.append(f"a sample of {sample}, --wf-crash-seed {seed}")
    total = None
    workflow = kwargs.get("workflow")
    if workflow is not None:
        assert session.references is not None
        _, reference = session.references.get(workflow, kwargs["options"], kwargs["env"])
        if reference.status is None or reference.state == "RUNNING":
            raise pytest.UsageError(
                f"{where}: the uncrashed reference run of the workflow did not finish "
                f"(wf run exited {reference.returncode}): {reference.stderr.strip()[-500:]}"
            )
        total = len(reference.events)
    elif depth is None:
        raise pytest.UsageError(
            f"{where}: name the workflow (wf_crash_matrix(workflow=...)) so the matrix can "
            "cover every record of its run, or narrow it on purpose with depth=N or "
            "--wf-crash-depth N"
        )
    plan = plan_matrix(
        metafunc.definition.nodeid,
        points=points,
        depth=depth,
        sample=sample,
        seed=seed,
        total=total,
        narrowed_by=narrowed,
        workflow=workflow,
        options=kwargs["options"],
        env=kwargs["env"],
    )
    session.coverage.add_plan(plan)
    # ``point-seq``: only characters ``-k`` accepts; ``-k "after_sync-7]"`` picks one.
    ids = [f"{point}-{seq}" for seq, point in plan.matrix]
    metafunc.parametrize("wf_crash_point", plan.matrix, ids=ids)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = config.stash.get(_SESSION, None)
    if session is None:
        return
    lines = session.coverage.report()
    if lines:
        terminalreporter.write_sep("-", "wf crash matrix coverage")
        for line in lines:
            terminalreporter.write_line(line)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def wf_home(tmp_path: Path) -> Path:
    """An empty run store, private to the test."""
    home = tmp_path / "wf-home"
    home.mkdir()
    return home


@pytest.fixture
def wf(wf_home: Path, tmp_path: Path) -> Iterator[WfHarness]:
    """A ``WfHarness`` bound to ``wf_home``; whatever it started is killed at teardown."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    harness = WfHarness(wf_home, workdir)
    try:
        yield harness
    finally:
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
    from pytest_wf.equivalence import CrashPoint

    seq, point = request.param
    return CrashPoint(seq, point)


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
    """``wf_resume_equivalent(workflow, crash_point, *options, env=None)``: crash, resume, compare.

    The uncrashed reference run is made once per workflow, options and environment for the
    whole session. In a matrix test whose marker names the workflow,
    ``wf_resume_equivalent(wf_crash_point)`` is enough. A crash point past the end of the run
    skips the test.
    """
    session: _Session = request.config.stash[_SESSION]
    plan = _plan_of(request, session)

    def check(
        workflow: WorkflowSpec | tuple[int, str],
        crash_point: tuple[int, str] | None = None,
        *options: str,
        env: Mapping[str, str] | None = None,
    ) -> Any:
        __tracebackhide__ = True
        if crash_point is None and isinstance(workflow, tuple):
            if plan is None or plan.workflow is None:
                raise pytest.UsageError(
                    "wf_resume_equivalent(crash_point) needs a wf_crash_matrix marker that "
                    "names the workflow; else pass it: wf_resume_equivalent(workflow, point)"
                )
            crash_point, workflow = workflow, plan.workflow
            options, env = plan.options, plan.env
        assert crash_point is not None and not isinstance(workflow, tuple)
        return _check(request, session, plan, wf, workflow, crash_point, options, env)

    return check


def _plan_of(request: pytest.FixtureRequest, session: _Session) -> MatrixPlan | None:
    """The matrix plan of the test that asked (None outside a ``wf_crash_matrix`` test)."""
    return session.coverage.plans.get(request.node.nodeid.split("[", 1)[0])


def _check(
    request: pytest.FixtureRequest,
    session: _Session,
    plan: MatrixPlan | None,
    wf: WfHarness,
    workflow: WorkflowSpec,
    crash_point: tuple[int, str],
    options: tuple[str, ...],
    env: Mapping[str, str] | None,
) -> Any:
    __tracebackhide__ = True
    from pytest_wf.equivalence import EquivalenceError

    assert session.references is not None
    env = dict(env) if env is not None else None
    key, reference = session.references.get(workflow, options, env)
    total = len(reference.events)
    nodeid = plan.nodeid if plan is not None else request.node.nodeid
    if plan is not None:
        session.coverage.saw_run(nodeid, total)
    if crash_point[0] > total:
        if plan is not None:
            session.coverage.past_end(nodeid)
        pytest.skip(f"crash point {tuple(crash_point)} is past the end of the run")
    seq, point = crash_point
    job = Job(request.node.nodeid, key, workflow, (seq, point), options, env, reference)
    result = _prefetched(request, session, plan, job)
    if result is None and session.reuse is not None:
        result = session.reuse.find(key, job.crash_point)
    if result is None:
        result = run_point(wf, workflow, job.crash_point, options, env, reference)
        if session.reuse is not None:
            session.reuse.keep(key, job.crash_point, result)
    result = adopt(result, wf)
    if result.error is not None:  # the harness broke down: this point was not checked
        raise result.error
    if plan is not None:
        session.coverage.checked(nodeid, job.crash_point, result.reused_from is not None)
    if result.failure is not None:
        raise EquivalenceError(_reused_note(job.crash_point, result) + result.failure)
    return result.outcome


def _reused_note(crash_point: tuple[int, str], result: PointResult) -> str:
    if result.reused_from is None or result.batch is None:
        return ""
    first, last = result.batch
    return (
        f"crash at seq {crash_point[0]} ({crash_point[1]}) is the crash at seq "
        f"{result.reused_from[0]}: records {first}-{last} share one commit batch, and the engine "
        f"dies in the same {crash_point[1]} hook call for all of them (--wf-crash-reuse none "
        "runs each)\n"
    )


def _prefetched(
    request: pytest.FixtureRequest, session: _Session, plan: MatrixPlan | None, job: Job
) -> PointResult | None:
    """With ``--wf-crash-jobs N``: start this point and the next N - 1 points of its matrix
    (the next in the run order, adjacent or not), then take this one's result."""
    prefetcher = session.prefetcher
    if prefetcher is None or plan is None or plan.workflow is None:
        return None
    if (job.workflow, job.options, job.env) != (plan.workflow, plan.options, plan.env):
        return None
    items = request.session.items
    try:
        start = items.index(request.node)
    except ValueError:
        return None
    prefetcher.submit(job)
    ahead = 1
    for item in items[start + 1 :]:
        if ahead >= prefetcher.jobs:
            break
        callspec = getattr(item, "callspec", None)
        if callspec is None or item.nodeid.split("[", 1)[0] != plan.nodeid:
            continue
        seq, point = callspec.params.get("wf_crash_point", (0, ""))
        if seq <= len(job.reference.events):
            prefetcher.submit(replace(job, nodeid=item.nodeid, crash_point=(seq, point)))
            ahead += 1
    return prefetcher.claim(request.node.nodeid, job)
