"""Cancelling a run from another process, whether or not its runner is alive.

A cancel is a durable request file plus SIGTERM to the live owner, whose scheduler turns it into a
``cancel_requested`` record and stops the run. With no live owner, the cancelling process takes
ownership itself (as ``resume`` would: cut a torn tail, kill leftovers) and the new runner, seeing
the request, cancels everything instead of running it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal

from wf_engine import durable
from wf_engine.engine import Notify, resume_run
from wf_engine.errors import RunBusy
from wf_engine.inspect import read_run
from wf_engine.ownership import is_owned, owner_pid
from wf_engine.plugins import Plugins
from wf_engine.states import RunStatus
from wf_engine.store import RunPaths, RunStore


def cancel_run(
    store: RunStore,
    run_id: str,
    plugins: Plugins,
    notify: Notify,
    grace_sec: float | None = None,
    wait: bool = True,
) -> RunStatus:
    """Cancel ``run_id``; returns its state afterwards (RUNNING only with ``wait=False``)."""
    paths = store.existing(run_id)
    finished = read_run(paths).state.finished
    if finished is not None:
        return finished
    write_cancel_request(paths, grace_sec)
    while True:
        if is_owned(paths.runner_lock):
            _signal_owner(paths)
            if not wait:
                return RunStatus.RUNNING
            wait_until_released(paths.runner_lock)
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
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
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


def wait_until_released(lock_path: str) -> None:
    """Block (no polling) until the run's owner exits or releases the run."""
    fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)
