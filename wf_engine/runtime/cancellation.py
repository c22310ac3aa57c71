"""Cancelling a run from another process, whether or not its runner is alive.

A cancel is a durable request file plus SIGTERM to the live owner, whose scheduler turns it into a
``cancel_requested`` record and stops the run. With no live owner, the cancelling process takes
ownership itself (as ``resume`` would: cut a torn tail, kill leftovers) and the new runner, seeing
the request, cancels everything instead of running it.

Waiting is bounded: an owner that has not let go of the run within twice the grace period plus
``RESPONSE_MARGIN_SEC`` (stopped with SIGSTOP, hung in a plugin) is reported as not responding;
with ``force`` it is SIGKILLed and the run taken over, which kills its steps' processes too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import threading

from wf_engine.core.fold import RunState
from wf_engine.core.model import DEFAULT_KILL_GRACE_SEC
from wf_engine.core.states import RunStatus
from wf_engine.errors import RunBusy, UsageError
from wf_engine.log import durable
from wf_engine.log.storefiles import open_regular_fd
from wf_engine.plugins.manager import Plugins
from wf_engine.runtime import procinfo
from wf_engine.runtime.executor import Notify
from wf_engine.runtime.ownership import is_owned, owner_pid
from wf_engine.runtime.processes import KILL_WAIT_SEC
from wf_engine.runtime.runview import read_run
from wf_engine.runtime.store import RunPaths, RunStore
from wf_engine.runtime.takeover import resume_run

#: Time an owner gets, beyond twice the grace period, to record the cancel and let go.
RESPONSE_MARGIN_SEC = 10.0


class RunnerNotResponding(UsageError):
    """The live owner did not act on the cancel in time (exit 2, like any busy run)."""


def cancel_run(
    store: RunStore,
    run_id: str,
    plugins: Plugins,
    notify: Notify,
    grace_sec: float | None = None,
    wait: bool = True,
    force: bool = False,
) -> RunStatus:
    """Cancel ``run_id``; returns its state afterwards (RUNNING only with ``wait=False``)."""
    paths = store.existing(run_id)
    state = read_run(paths).state
    if state.finished is not None:
        return state.finished
    write_cancel_request(paths, grace_sec)
    patience = 2 * _grace(state, grace_sec) + RESPONSE_MARGIN_SEC
    while True:
        if is_owned(paths.runner_lock):
            _signal_owner(paths)
            if not wait:
                return RunStatus.RUNNING
            if not wait_until_released(paths.runner_lock, patience):
                _not_responding(paths, run_id, patience, force, notify)
        else:
            try:
                runner = resume_run(store, run_id, plugins, notify)
            except RunBusy:
                continue  # another process took ownership in between: signal it instead
            if runner is not None:
                return runner.execute()
        finished = read_run(paths).state.finished
        if finished is not None:
            return finished


def write_cancel_request(paths: RunPaths, grace_sec: float | None) -> None:
    """Durably leave the request in the run folder (temp file, fsync, rename, fsync folder)."""
    request = {"source": "wf cancel", "pid": os.getpid(), "grace_sec": grace_sec}
    temp = f"{paths.cancel_request}.{os.getpid()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, durable.file_mode())
    try:
        durable.write_all(fd, json.dumps(request).encode())
        durable.sync(fd)
    finally:
        os.close(fd)
    os.replace(temp, paths.cancel_request)
    durable.sync_dir(paths.root)


def _signal_owner(paths: RunPaths) -> None:
    pid = owner_pid(paths.runner_lock)
    if pid is not None and pid != os.getpid():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)


def _grace(state: RunState, grace_sec: float | None) -> float:
    """The longest grace period the owner may spend stopping a running step."""
    if grace_sec is not None:
        return grace_sec
    return max(
        (state.workflow.steps[index].kill_grace_sec for index in state.running),
        default=DEFAULT_KILL_GRACE_SEC,
    )


def wait_until_released(lock_path: str, timeout: float) -> bool:
    """Block (no polling) until the owner exits or lets go, or ``timeout`` passes; True if it did.

    A thread blocks in ``flock``; on a timeout it is left blocked and lets go of the lock the
    moment it gets it, so it never stands in the way of a later owner.
    """
    fd = open_regular_fd(lock_path)
    released = threading.Event()

    def block() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        finally:
            os.close(fd)  # closing drops the shared lock at once
            released.set()

    threading.Thread(target=block, name="wf-cancel-wait", daemon=True).start()
    return released.wait(timeout)


def _not_responding(
    paths: RunPaths, run_id: str, patience: float, force: bool, notify: Notify
) -> None:
    """Kill an owner that ignores the cancel (``force``), else say so and stop waiting."""
    pid = owner_pid(paths.runner_lock)
    recorded = read_run(paths).state.runner_pid
    who = f"runner pid {pid}" if pid else "the runner"
    if not force:
        raise RunnerNotResponding(
            f"run {run_id!r}: {who} has not acted on the cancel within {patience:g}s "
            "(stopped or hung?); its steps may still be running. "
            f"`wf cancel --force {run_id}` kills it and its steps and cancels the run"
        )
    if pid is None or pid != recorded or procinfo.start_id(pid) is None:
        raise RunnerNotResponding(
            f"run {run_id!r}: the lock names pid {pid}, not the run's recorded runner "
            f"({recorded}); not killing it"
        )
    notify(f"{who} is not responding: killing it and taking the run over (--force)")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not wait_until_released(paths.runner_lock, KILL_WAIT_SEC + RESPONSE_MARGIN_SEC):
        raise RunnerNotResponding(f"run {run_id!r}: {who} survived SIGKILL; nothing was changed")
