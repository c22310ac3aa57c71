"""Taking ownership of a run: create a new one, or resume one a dead runner left behind.

Both paths end with a ``Runner`` whose first batch (``run_created`` + ``runner_started``, and a
rerun's carried-over steps; or ``runner_started`` + interrupted steps) is already durable and
announced, committed as every later batch is (``wf_engine.runtime.commit``). Reading a run
without owning it (``status``, ``replay``) lives in ``wf_engine.runtime.runview``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from wf_engine.core import clock
from wf_engine.core.decide import interrupted_event
from wf_engine.core.events import Event, RunCreated, RunnerStarted, RunOptions
from wf_engine.core.fold import RunState, fold_records
from wf_engine.core.model import Workflow
from wf_engine.core.rerun import RerunPlan, carry_over
from wf_engine.errors import UsageError
from wf_engine.log.eventlog import EventLog, LogScan, cut_torn_tail
from wf_engine.plugins.manager import Plugins
from wf_engine.runtime.commit import Commit
from wf_engine.runtime.executor import Notify
from wf_engine.runtime.executors import ExecutorChoice, factory_for
from wf_engine.runtime.ownership import RunLock
from wf_engine.runtime.runner import ExecutorFactory, Runner, runner_started_event
from wf_engine.runtime.stopsignals import StopSignals
from wf_engine.runtime.store import RunPaths, RunStore, new_run_id


@dataclass(frozen=True, slots=True)
class RunRequest:
    workflow: Workflow
    base_dir: str
    run_id: str | None = None
    max_parallel: int | None = None
    fail_fast: bool = False
    #: Recorded in the run's options, so ``wf resume`` and ``wf cancel`` use the same.
    executor: ExecutorChoice = field(default_factory=ExecutorChoice)
    #: A rerun's plan: ``run_created`` names its origin, and its carried-over steps are in the
    #: first batch (docs/workflows.md, "Rerun").
    rerun: RerunPlan | None = None


def default_parallelism(workflow: Workflow) -> int:
    return workflow.max_parallel or os.cpu_count() or 1


def create_run(
    store: RunStore,
    request: RunRequest,
    plugins: Plugins,
    signals: StopSignals | None = None,
    executor: ExecutorFactory | None = None,
) -> Runner:
    """Create the run folder and its log; the first batch holds the whole definition.

    ``executor`` defaults to the one ``request.executor`` names, checked (an extra that is not
    installed is a usage error) before anything is created.

    ``signals``, installed by the caller before this is called, carries a SIGINT/SIGTERM that
    arrives meanwhile to the runner, which then cancels the run instead of leaving it ownerless.
    """
    run_id = request.run_id or new_run_id(request.workflow.workflow_id)
    max_parallel = request.max_parallel or default_parallelism(request.workflow)
    if max_parallel < 1:
        raise UsageError("--max-parallel must be at least 1")
    if executor is None:
        executor = factory_for(request.executor)
    options = request.executor.record_into(
        RunOptions(max_parallel, request.fail_fast, os.path.abspath(request.base_dir))
    )
    paths = store.create(run_id)
    lock = RunLock.acquire(paths.runner_lock, run_id)
    log = EventLog.create(paths.events)
    origin = request.rerun.origin_run_id if request.rerun is not None else None
    created = RunCreated(run_id, request.workflow.to_json(), options, origin)
    commit = Commit.create(log, created, plugins, request.workflow)
    carried = carry_over(request.rerun) if request.rerun is not None else []
    open_new_run(commit, runner_started_event(), carried, clock.now_us(), paths.root)
    return Runner(paths, commit, plugins, lock, signals, executor)


def open_new_run(
    commit: Commit, started: RunnerStarted, carried: Iterable[Event], now_us: int, run_dir: str
) -> None:
    """A new run's first batch: ``run_created`` (queued by ``Commit.create``), the new owner's
    ``runner_started`` and a rerun's carried-over steps, durable and announced together."""
    commit.record(started)
    for event in carried:
        commit.record(event)
    commit.commit_opening(now_us, run_dir, resumed=False)


def open_taken_over_run(
    runner: Runner,
    commit: Commit,
    started: RunnerStarted,
    notify: Notify,
    stop_requested: Callable[[], bool],
    now_us: int,
) -> None:
    """A resumed run's first batch, in the only safe order: every leftover of the dead runner's
    attempts killed and proven dead first, then the new owner's ``runner_started`` and each
    interrupted step going back to READY, durable and announced together."""
    state = commit.state
    runner.executor.clear_leftovers(state, notify, stop_requested)
    commit.record(started)
    for index in list(state.running):
        commit.record(interrupted_event(state, index))
    commit.commit_opening(now_us, runner.paths.root, resumed=True)


def resume_run(
    store: RunStore,
    run_id: str,
    plugins: Plugins,
    notify: Notify,
    signals: StopSignals | None = None,
    executor: ExecutorFactory | None = None,
    scheduler: str | None = None,
) -> Runner | None:
    """Own an unfinished run again; ``None`` if it already finished (nothing to do).

    ``executor`` defaults to the one the run recorded (the same Dask scheduler, say), so the
    leftovers of the dead runner's attempts are looked for where they ran; ``scheduler`` is a
    new address of the recorded Dask cluster (a usage error for a run of another executor).

    Order matters: the lock first (no other writer), then the torn tail is cut (kept beside the
    log), then every leftover process of the dead runner's attempts is killed and proven dead
    (``wf_engine.runtime.leftovers``), and only then is the new ownership recorded together with the
    interrupted steps going back to READY.
    """
    paths = store.existing(run_id)
    lock = RunLock.acquire(paths.runner_lock, run_id)
    try:
        state, scan = _load(paths)
        choice = ExecutorChoice.recorded(state.options).moved_to(scheduler)  # before any change
        if scan.torn is not None:
            backup = cut_torn_tail(paths.events, scan.torn)
            notify(f"{scan.torn.describe()}; cut it off (bytes kept in {backup})")
        if state.finished is not None:
            lock.close()
            return None
        if executor is None:
            executor = factory_for(choice)
        commit = Commit(EventLog.open(paths.events, state.last_seq), state, plugins)
    except BaseException:
        lock.close()
        raise
    runner = Runner(paths, commit, plugins, lock, signals, executor)
    try:
        stop_requested = (lambda: signals.requested) if signals else (lambda: False)
        open_taken_over_run(
            runner, commit, runner_started_event(), notify, stop_requested, clock.now_us()
        )
    except BaseException:
        runner.release()
        raise
    return runner


def _load(paths: RunPaths) -> tuple[RunState, LogScan]:
    scan = LogScan(paths.events)
    return fold_records(scan, source=paths.events), scan
