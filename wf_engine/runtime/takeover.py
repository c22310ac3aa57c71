"""Taking ownership of a run: create a new one, or resume one a dead runner left behind.

Both paths end with a ``Runner`` whose first batch (``run_created`` + ``runner_started``, or
``runner_started`` + interrupted steps) is already durable and announced, committed as every
later batch is (``wf_engine.runtime.commit``). Reading a run without owning it
(``status``, ``replay``) lives in ``wf_engine.runtime.runview``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from wf_engine.core import clock
from wf_engine.core.decide import interrupted_event
from wf_engine.core.events import RunCreated, RunOptions
from wf_engine.core.fold import RunState, fold_records
from wf_engine.core.model import Workflow
from wf_engine.errors import UsageError
from wf_engine.log.eventlog import EventLog, LogScan, cut_torn_tail
from wf_engine.plugins.manager import Plugins
from wf_engine.runtime.commit import Commit
from wf_engine.runtime.executor import Notify
from wf_engine.runtime.localexec import LocalExecutor
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


def default_parallelism(workflow: Workflow) -> int:
    return workflow.max_parallel or os.cpu_count() or 1


def create_run(
    store: RunStore,
    request: RunRequest,
    plugins: Plugins,
    signals: StopSignals | None = None,
    executor: ExecutorFactory = LocalExecutor,
) -> Runner:
    """Create the run folder and its log; the first batch holds the whole definition.

    ``signals``, installed by the caller before this is called, carries a SIGINT/SIGTERM that
    arrives meanwhile to the runner, which then cancels the run instead of leaving it ownerless.
    """
    run_id = request.run_id or new_run_id(request.workflow.workflow_id)
    max_parallel = request.max_parallel or default_parallelism(request.workflow)
    if max_parallel < 1:
        raise UsageError("--max-parallel must be at least 1")
    options = RunOptions(max_parallel, request.fail_fast, os.path.abspath(request.base_dir))
    paths = store.create(run_id)
    lock = RunLock.acquire(paths.runner_lock, run_id)
    log = EventLog.create(paths.events)
    created = RunCreated(run_id, request.workflow.to_json(), options)
    commit = Commit.create(log, created, plugins)
    commit.record(runner_started_event())
    commit.commit_opening(clock.now_us(), paths.root, resumed=False)
    return Runner(paths, commit, plugins, lock, signals, executor)


def resume_run(
    store: RunStore,
    run_id: str,
    plugins: Plugins,
    notify: Notify,
    signals: StopSignals | None = None,
    executor: ExecutorFactory = LocalExecutor,
) -> Runner | None:
    """Own an unfinished run again; ``None`` if it already finished (nothing to do).

    Order matters: the lock first (no other writer), then the torn tail is cut (kept beside the
    log), then every leftover process of the dead runner's attempts is killed and proven dead
    (``wf_engine.runtime.leftovers``), and only then is the new ownership recorded together with the
    interrupted steps going back to READY.
    """
    paths = store.existing(run_id)
    lock = RunLock.acquire(paths.runner_lock, run_id)
    try:
        state, scan = _load(paths)
        if scan.torn is not None:
            backup = cut_torn_tail(paths.events, scan.torn)
            notify(f"{scan.torn.describe()}; cut it off (bytes kept in {backup})")
        if state.finished is not None:
            lock.close()
            return None
        commit = Commit(EventLog.open(paths.events, state.last_seq), state, plugins)
    except BaseException:
        lock.close()
        raise
    runner = Runner(paths, commit, plugins, lock, signals, executor)
    try:
        stop_requested = (lambda: signals.requested) if signals else (lambda: False)
        runner.executor.clear_leftovers(state, notify, stop_requested)
        commit.record(runner_started_event())
        for index in list(state.running):
            commit.record(interrupted_event(state, index))
        commit.commit_opening(clock.now_us(), paths.root, resumed=True)
    except BaseException:
        runner.release()
        raise
    return runner


def _load(paths: RunPaths) -> tuple[RunState, LogScan]:
    scan = LogScan(paths.events)
    return fold_records(scan, source=paths.events), scan
