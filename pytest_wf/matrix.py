"""The crash matrix of ``@pytest.mark.wf_crash_matrix``: plan it, run it cheaply, account for it.

* **Plan** (at collection): which ``(seq, point)`` pairs become tests. A marker that names its
  workflow gets an uncrashed *reference run* right away, so the matrix covers every record of
  that run at every crash point; ``depth``, ``points`` and ``sample`` narrow it on purpose.
* **References**: one uncrashed run per workflow, ``wf run`` options and environment (every
  variable the ``wf`` process gets: two tests that differ in any of them never share one), made
  once per session in a folder of their own.
* **Reuse**: crash points the log proves identical are checked once. ``before_write`` and
  ``before_sync`` kill the engine in a hook that runs once per commit batch, so for every
  record of one batch the engine dies at the very same instant; the crash report of the first
  point names the batch's records, and the others of that batch take its outcome (a pass, or
  the same failure) instead of running the engine again.
* **Prefetch** (``--wf-crash-jobs N``): while one crash point's test runs, the next ones of the
  same matrix already run in threads, each in a home and work folder of its own; a test then
  takes its own result, copied into its ``wf_home`` and work folder.
* **Coverage**: what each matrix checked and what it left unchecked, for the terminal summary.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fault_injection.crash import POINTS
from pytest_wf.equivalence import (
    EquivalenceError,
    ResumeOutcome,
    assert_resume_equivalent,
)
from pytest_wf.harness import RunResult, WfHarness, WorkflowSpec
from pytest_wf.processes import TAG_VAR

__all__ = [
    "REUSABLE_POINTS",
    "Coverage",
    "MatrixPlan",
    "PointResult",
    "References",
    "Reuse",
    "env_key",
    "plan_matrix",
    "workflow_key",
]

#: Points killed in a once-per-batch hook: every record of a batch dies at the same instant.
REUSABLE_POINTS = ("before_write", "before_sync")
#: Variables that differ between tests without changing a run.
_VOLATILE = frozenset({TAG_VAR, "PYTEST_CURRENT_TEST"})


# --------------------------------------------------------------------------- keys


def workflow_key(workflow: WorkflowSpec) -> str:
    """What identifies a workflow: its definition, or its file's path and contents."""
    if isinstance(workflow, Mapping):
        return json.dumps(workflow, sort_keys=True, default=str)
    path = os.path.abspath(os.fspath(workflow))
    try:
        with open(path, "rb") as file:
            digest = hashlib.sha256(file.read()).hexdigest()
    except OSError:
        digest = "unreadable"
    return f"{path}:{digest}"


def env_key(env: Mapping[str, str]) -> str:
    """What identifies the environment a ``wf`` process gets (tags and test names aside)."""
    kept = sorted((k, v) for k, v in env.items() if k not in _VOLATILE)
    return hashlib.sha256(json.dumps(kept).encode()).hexdigest()


# --------------------------------------------------------------------------- references


class References:
    """One uncrashed run per (workflow, ``wf run`` options, environment), for the session."""

    def __init__(self, root: Callable[[], Path]) -> None:
        self._root = root
        self._harness: WfHarness | None = None
        self._runs: dict[str, RunResult] = {}
        self._lock = threading.Lock()

    @property
    def harness(self) -> WfHarness:
        if self._harness is None:
            root = self._root()
            (root / "home").mkdir(parents=True, exist_ok=True)
            (root / "work").mkdir(parents=True, exist_ok=True)
            self._harness = WfHarness(root / "home", root / "work")
        return self._harness

    def key(
        self, workflow: WorkflowSpec, options: Sequence[str], env: Mapping[str, str] | None
    ) -> str:
        full_env = self.harness.env(env)
        return json.dumps([workflow_key(workflow), list(options), env_key(full_env)])

    def get(
        self, workflow: WorkflowSpec, options: Sequence[str], env: Mapping[str, str] | None
    ) -> tuple[str, RunResult]:
        key = self.key(workflow, options, env)
        with self._lock:
            if key not in self._runs:
                self._runs[key] = self.harness.run(workflow, *options, env=env)
            return key, self._runs[key]

    def close(self) -> None:
        if self._harness is not None:
            self._harness.close()


# --------------------------------------------------------------------------- planning


@dataclass
class MatrixPlan:
    """One ``wf_crash_matrix`` test function: what it was asked for and what it covers."""

    nodeid: str
    points: tuple[str, ...]
    #: Records 1..depth (None: the whole run).
    depth: int | None
    sample: int | None
    seed: int
    #: Records of the run when known at collection (the marker named its workflow).
    total: int | None
    matrix: list[tuple[int, str]]
    #: What narrowed it, for the summary ("--wf-crash-depth 6", "the marker's points", ...).
    narrowed_by: list[str] = field(default_factory=list)
    #: The marker's workflow, options and environment (None: the test names them).
    workflow: WorkflowSpec | None = None
    options: tuple[str, ...] = ()
    env: dict[str, str] | None = None


def plan_matrix(
    nodeid: str,
    *,
    points: tuple[str, ...],
    depth: int | None,
    sample: int | None,
    seed: int,
    total: int | None,
    narrowed_by: list[str],
    workflow: WorkflowSpec | None = None,
    options: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> MatrixPlan:
    """The ``(seq, point)`` list: records 1..min(total, depth), every point, maybe sampled."""
    last = total if depth is None else depth if total is None else min(total, depth)
    assert last is not None, "a matrix needs its run's length or a depth"
    matrix = [(seq, point) for point in points for seq in range(1, last + 1)]
    if sample is not None and sample < len(matrix):
        chosen = set(random.Random(f"{seed}:{nodeid}").sample(range(len(matrix)), sample))
        matrix = [pair for index, pair in enumerate(matrix) if index in chosen]
    return MatrixPlan(
        nodeid, points, depth, sample, seed, total, matrix, narrowed_by, workflow, options, env
    )


# --------------------------------------------------------------------------- coverage


@dataclass
class _Seen:
    total: int | None = None
    checked: set[tuple[int, str]] = field(default_factory=set)
    reused: int = 0
    past_end: int = 0


class Coverage:
    """What every matrix checked, as its tests ran (thread-safe)."""

    def __init__(self) -> None:
        self.plans: dict[str, MatrixPlan] = {}
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()

    def add_plan(self, plan: MatrixPlan) -> None:
        self.plans[plan.nodeid] = plan

    def saw_run(self, nodeid: str, total: int) -> None:
        with self._lock:
            seen = self._seen.setdefault(nodeid, _Seen())
            seen.total = max(seen.total or 0, total)

    def checked(self, nodeid: str, crash_point: tuple[int, str], reused: bool) -> None:
        with self._lock:
            seen = self._seen.setdefault(nodeid, _Seen())
            seen.checked.add((crash_point[0], crash_point[1]))
            seen.reused += reused

    def past_end(self, nodeid: str) -> None:
        with self._lock:
            self._seen.setdefault(nodeid, _Seen()).past_end += 1

    def report(self) -> list[str]:
        """One line per matrix that ran: how much of its run it checked, and what it did not."""
        lines = []
        for nodeid, plan in self.plans.items():
            seen = self._seen.get(nodeid)
            if seen is None or seen.total is None:
                continue
            lines.append(f"{nodeid}: {_coverage_line(plan, seen)}")
        return lines


def _coverage_line(plan: MatrixPlan, seen: _Seen) -> str:
    total = seen.total or 0
    everything = total * len(POINTS)
    checked = {(s, p) for s, p in seen.checked if s <= total}
    reused = f", {seen.reused} by reuse" if seen.reused else ""
    if len(checked) == everything:
        return (
            f"all {everything} crash points checked{reused} ({total} records x {', '.join(POINTS)})"
        )
    gaps = []
    for point in POINTS:
        missing = [s for s in range(1, total + 1) if (s, point) not in checked]
        if len(missing) == total:
            gaps.append(f"{point} at every record")
        elif missing:
            gaps.append(f"{point} at records {_ranges(missing)}")
    why = []
    if plan.total is not None and total > plan.total:
        why.append(f"the run has {total} records, the matrix was sized from {plan.total}")
    why += plan.narrowed_by
    deselected = len([p for p in plan.matrix if p[0] <= total]) - len(checked)
    if deselected > 0:
        why.append(f"{deselected} of its tests did not run: deselected, or the session stopped")
    because = f" ({'; '.join(why)})" if why else ""
    return (
        f"{len(checked)} of {everything} crash points checked{reused}; "
        f"{everything - len(checked)} left unchecked: {'; '.join(gaps)}{because}"
    )


def _ranges(numbers: Sequence[int]) -> str:
    """``1-3, 7, 9-12``."""
    parts: list[str] = []
    start = previous = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if number is not None:
            start = previous = number
    return ", ".join(parts)


# --------------------------------------------------------------------------- checking a point


@dataclass(frozen=True)
class PointResult:
    """The outcome of one crash point, kept so another test can take it."""

    #: Exactly one of these is set.
    outcome: ResumeOutcome | None = None
    failure: str | None = None
    error: BaseException | None = None
    #: Where it ran: runs to copy into the test that takes it.
    harness: WfHarness | None = None
    #: First and last record of the commit batch the engine died in.
    batch: tuple[int, int] | None = None
    #: The crash point whose run this is, when taken from another point of the same batch.
    reused_from: tuple[int, str] | None = None


def run_point(
    harness: WfHarness,
    workflow: WorkflowSpec,
    crash_point: tuple[int, str],
    options: Sequence[str],
    env: Mapping[str, str] | None,
    reference: RunResult,
) -> PointResult:
    """One crash point, checked; a failure is kept as its message, not raised."""
    try:
        outcome = assert_resume_equivalent(
            harness, workflow, crash_point, *options, reference=reference, env=env
        )
    except EquivalenceError as failure:
        batch = failure.crash.batch if failure.crash is not None else None
        return PointResult(failure=str(failure), harness=harness, batch=batch)
    except Exception as error:
        return PointResult(error=error, harness=harness)
    batch = outcome.crash.batch if outcome.crash is not None else None
    return PointResult(outcome=outcome, harness=harness, batch=batch)


class Reuse:
    """Outcomes of ``before_write``/``before_sync`` crash points, by commit batch."""

    def __init__(self) -> None:
        self._batches: dict[tuple[str, str], list[tuple[int, int, int, PointResult]]] = {}
        self._lock = threading.Lock()

    def find(self, reference_key: str, crash_point: tuple[int, str]) -> PointResult | None:
        seq, point = crash_point
        if point not in REUSABLE_POINTS:
            return None
        with self._lock:
            for first, last, origin, result in self._batches.get((reference_key, point), []):
                if first <= seq <= last and seq != origin:
                    return replace(result, reused_from=(origin, point))
        return None

    def keep(self, reference_key: str, crash_point: tuple[int, str], result: PointResult) -> None:
        seq, point = crash_point
        if point not in REUSABLE_POINTS or result.batch is None or result.error is not None:
            return
        first, last = result.batch
        with self._lock:
            self._batches.setdefault((reference_key, point), []).append((first, last, seq, result))


def adopt(result: PointResult, into: WfHarness) -> PointResult:
    """Copy a point's runs and work files into the test's harness, so the test sees them there.

    Runs keep their ids; files already in the test's work folder are left alone.
    """
    source = result.harness
    if source is None or source is into:
        return result
    outcome = result.outcome
    run_ids = set()
    if outcome is not None and outcome.resumed.run_id is not None:
        run_ids.add(outcome.resumed.run_id)
    for run_id in run_ids:
        target = into.home / "runs" / run_id
        if not target.exists():
            shutil.copytree(source.home / "runs" / run_id, target, symlinks=True)
    with contextlib.suppress(OSError):
        for entry in source.workdir.iterdir():
            target = into.workdir / entry.name
            if target.exists() or entry.name == ".wf-harness":
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.copytree(entry, target, symlinks=True)
            else:
                shutil.copy2(entry, target, follow_symlinks=False)
    if outcome is not None:
        resumed = replace(outcome.resumed, home=into.home)
        outcome = replace(outcome, resumed=resumed)
    return replace(result, outcome=outcome, harness=into)


# --------------------------------------------------------------------------- prefetching


@dataclass(frozen=True)
class Job:
    """A crash point to check ahead of its test."""

    nodeid: str
    reference_key: str
    workflow: WorkflowSpec
    crash_point: tuple[int, str]
    options: tuple[str, ...]
    env: dict[str, str] | None
    reference: RunResult


class Prefetcher:
    """Runs the crash points of upcoming tests in threads, each in folders of its own."""

    def __init__(self, jobs: int, root: Callable[[], Path], reuse: Reuse | None) -> None:
        self.jobs = jobs
        self._root = root
        self._reuse = reuse
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[str, tuple[Job, Future[PointResult]]] = {}
        self._harnesses: list[WfHarness] = []
        self._counter = 0
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, job: Job) -> None:
        with self._lock:
            if self._closed or job.nodeid in self._futures:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="wf-crash")
            self._counter += 1
            root = self._root() / f"point-{self._counter}"
            (root / "home").mkdir(parents=True)
            (root / "work").mkdir()
            harness = WfHarness(root / "home", root / "work")
            self._harnesses.append(harness)
            self._futures[job.nodeid] = (job, self._pool.submit(self._run, job, harness))

    def _run(self, job: Job, harness: WfHarness) -> PointResult:
        if self._closed:
            return PointResult(error=RuntimeError("the session ended"), harness=harness)
        if self._reuse is not None:
            found = self._reuse.find(job.reference_key, job.crash_point)
            if found is not None:
                return found
        result = run_point(
            harness, job.workflow, job.crash_point, job.options, job.env, job.reference
        )
        if self._reuse is not None:
            self._reuse.keep(job.reference_key, job.crash_point, result)
        return result

    def claim(self, nodeid: str, job: Job) -> PointResult | None:
        """The prefetched result for this test, if it checked exactly what the test asks."""
        with self._lock:
            entry = self._futures.pop(nodeid, None)
        if entry is None:
            return None
        submitted, future = entry
        result = future.result()
        if submitted != job:
            return None
        return result

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool = self._pool
            futures = [future for _, future in self._futures.values()]
        for future in futures:
            future.cancel()
        for harness in self._harnesses:
            harness.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for harness in self._harnesses:
            harness.close()


def summary_of(value: Any) -> str:
    """A short, stable spelling of a marker argument for messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
