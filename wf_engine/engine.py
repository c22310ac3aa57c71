"""Taking ownership of a run: create a new one, or resume one a dead runner left behind.

Both paths end with a ``Runner`` whose first batch (``run_created`` + ``runner_started``, or
``runner_started`` + interrupted steps) is already durable. Reading a run without owning it
(``status``, ``replay``) lives in ``wf_engine.inspect``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from wf_engine import clock, processes, procinfo
from wf_engine.decide import Event, interrupted_event
from wf_engine.errors import UsageError
from wf_engine.eventlog import EventLog, LogScan, cut_torn_tail
from wf_engine.fold import (
    RunOptions,
    RunState,
    StepStatus,
    apply,
    fold_records,
    initial_state,
)
from wf_engine.model import Workflow
from wf_engine.ownership import RunLock
from wf_engine.plugins import Plugins
from wf_engine.runner import Runner, attach_log_hooks, runner_started_event
from wf_engine.store import RunPaths, RunStore, new_run_id

#: Receives human-readable notes about what taking ownership did (a cut tail, killed leftovers).
Notify = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RunRequest:
    workflow: Workflow
    base_dir: str
    run_id: str | None = None
    max_parallel: int | None = None
    fail_fast: bool = False


def default_parallelism(workflow: Workflow) -> int:
    return workflow.max_parallel or os.cpu_count() or 1


def create_run(store: RunStore, request: RunRequest, plugins: Plugins) -> Runner:
    """Create the run folder and its log; the first batch holds the whole definition."""
    run_id = request.run_id or new_run_id(request.workflow.workflow_id)
    max_parallel = request.max_parallel or default_parallelism(request.workflow)
    if max_parallel < 1:
        raise UsageError("--max-parallel must be at least 1")
    options = RunOptions(max_parallel, request.fail_fast, os.path.abspath(request.base_dir))
    paths = store.create(run_id)
    lock = RunLock.acquire(paths.runner_lock, run_id)
    log = EventLog.create(paths.events)
    attach_log_hooks(log, plugins, run_id)
    created: Event = (
        "run_created",
        {"run_id": run_id, "workflow": request.workflow.to_json(), "options": options.to_json()},
    )
    state = initial_state({"type": created[0], **created[1]})
    started = runner_started_event()
    apply(state, {"type": started[0], **started[1]})
    records = log.append([created, started], clock.to_iso(clock.now_us()))
    state.last_seq = records[-1]["seq"]
    runner = Runner(paths, log, state, plugins, lock)
    runner.announce(records, resumed=False)
    return runner


def resume_run(store: RunStore, run_id: str, plugins: Plugins, notify: Notify) -> Runner | None:
    """Own an unfinished run again; ``None`` if it already finished (nothing to do).

    Order matters: the lock first (no other writer), then the torn tail is cut (kept beside the
    log), then leftovers of the dead runner's attempts are killed, and only then is the new
    ownership recorded together with the interrupted steps going back to READY.
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
        log = EventLog.open(paths.events, state.last_seq)
        attach_log_hooks(log, plugins, run_id)
    except BaseException:
        lock.close()
        raise
    events: list[Event] = [runner_started_event()]
    for index in list(state.running):
        kill_leftovers(paths, state, index, notify)
        events.append(interrupted_event(state, index))
    for event_type, payload in events:
        apply(state, {"type": event_type, **payload})
    try:
        records = log.append(events, clock.to_iso(clock.now_us()))
    except BaseException:
        log.close()
        lock.close()
        raise
    state.last_seq = records[-1]["seq"]
    runner = Runner(paths, log, state, plugins, lock)
    runner.announce(records, resumed=True)
    return runner


def _load(paths: RunPaths) -> tuple[RunState, LogScan]:
    scan = LogScan(paths.events)
    return fold_records(scan, source=paths.events), scan


def kill_leftovers(paths: RunPaths, state: RunState, index: int, notify: Notify) -> None:
    """Kill whatever a dead runner's attempt left running, never a process that reused its pid.

    The attempt lock says whether any of its processes lives. The group to signal comes from the
    ``spawned`` record, else from the pid the runner wrote into the lock file right after the
    spawn; it is signalled only if its leader is still the recorded process, or if the leader is
    gone but the lock shows members of the group alive (a live group keeps its id reserved).
    """
    status = state.steps[index]
    step_id = state.step_id(index)
    lock_path = paths.attempt_file(step_id, status.attempt, "lock")
    if not processes.attempt_alive(lock_path):
        return
    pid, start_id = _recorded_process(status, lock_path)
    grace = state.workflow.steps[index].kill_grace_sec
    if pid is None:
        notify(f"step {step_id!r} attempt {status.attempt}: leftover processes of unknown pid")
        return
    current = procinfo.start_id(pid)
    if current is not None and current != start_id:
        notify(f"step {step_id!r}: pid {pid} now belongs to another process; not signalled")
        return
    notify(f"step {step_id!r} attempt {status.attempt}: killing leftover process group {pid}")
    processes.drain_group(pid, lock_path, grace)


def _recorded_process(status: StepStatus, lock_path: str) -> tuple[int | None, str | None]:
    """The attempt's group leader: from its ``spawned`` record, else from its lock file."""
    process = status.process
    if process is not None:
        return process.pgid, process.start_id
    try:
        with open(lock_path, encoding="ascii") as file:
            pid_text, _, start_id = file.read().strip().partition(" ")
        return int(pid_text), (start_id if start_id and start_id != "-" else None)
    except (OSError, ValueError):
        return None, None
