"""Take-over's first duty: no process of a dead runner's attempts may live when a step starts.

Never two attempts of a step at once. A new owner (``wf resume``, ``wf run --run-id`` of an
unfinished run, ``wf cancel`` of a run whose runner died) asks every source of truth it has, because
any one of them may have been lost (unsynced writes, a deleted ``steps/`` folder, an attempt that
closed its descriptors or left its process group):

* the **mark** every attempt's processes carry in their environment (``procinfo.find_marked``),
  for the whole run, whatever step or attempt;
* each RUNNING step's **recorded group leader**, from its ``spawned`` record or else from the pid
  written into the attempt's lock file, checked against pid reuse by its start id;
* each RUNNING step's **attempt lock**: while it is held some process of the attempt lives, and
  its holders are looked up (``/proc`` or ``lsof``).

Whatever is found gets SIGTERM, then SIGKILL after the step's grace period. Take-over goes on
only once nothing is found. If something cannot be proven dead (it survives SIGKILL, or a lock is
held by processes this system cannot identify) take-over waits, saying what it waits for and why,
and starts nothing meanwhile.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from wf_engine.core.fold import RunState
from wf_engine.core.model import DEFAULT_KILL_GRACE_SEC
from wf_engine.errors import EXIT_CANCELLED, StoreError, WfError
from wf_engine.log.storefiles import open_regular
from wf_engine.runtime import procinfo
from wf_engine.runtime.processes import KILL_WAIT_SEC, attempt_alive
from wf_engine.runtime.store import RunPaths

Notify = Callable[[str], None]
#: How often a take-over that cannot prove leftovers dead says so again.
WAIT_NOTICE_EVERY_SEC = 10.0


class TakeoverInterrupted(WfError):
    """SIGINT/SIGTERM while waiting for leftovers: the run is left exactly as it was found."""

    exit_code = EXIT_CANCELLED


@dataclass(frozen=True, slots=True)
class _Found:
    pid: int
    start_id: str | None
    #: ``step 'x' attempt 2`` (what the process belongs to, for messages).
    owner: str
    #: Signal the whole group led by ``pid`` (a recorded attempt leader) rather than the process.
    group: bool = False


@dataclass(slots=True)
class _Survey:
    found: list[_Found] = field(default_factory=list)
    #: Attempt locks held by processes this system cannot identify.
    unknown_locks: list[str] = field(default_factory=list)

    @property
    def clear(self) -> bool:
        return not self.found and not self.unknown_locks


def clear_leftovers(
    paths: RunPaths, state: RunState, notify: Notify, stop_requested: Callable[[], bool]
) -> None:
    """Return only once no process of the run's attempts lives; kill what is found."""
    survey = _survey(paths, state)
    if survey.clear:
        return
    for found in survey.found:
        kind = "process group" if found.group else "process"
        notify(f"{found.owner}: killing leftover {kind} {found.pid}")
    grace = max(
        (state.workflow.steps[index].kill_grace_sec for index in state.running),
        default=DEFAULT_KILL_GRACE_SEC,
    )
    _signal(survey, signal.SIGTERM)
    survey = _wait_clear(paths, state, grace, stop_requested)
    if survey.clear:
        return
    _signal(survey, signal.SIGKILL)
    survey = _wait_clear(paths, state, KILL_WAIT_SEC, stop_requested)
    while not survey.clear:
        notify(f"waiting before running anything: {_describe(survey)}")
        _signal(survey, signal.SIGKILL)
        survey = _wait_clear(paths, state, WAIT_NOTICE_EVERY_SEC, stop_requested)


def _survey(paths: RunPaths, state: RunState) -> _Survey:
    survey = _Survey()
    for process in procinfo.find_marked(procinfo.run_mark(paths.root) + "/"):
        _, step_id, attempt = process.key.split("/", 2)
        survey.found.append(
            _Found(process.pid, process.start_id, f"step {step_id!r} attempt {attempt}")
        )
    marked = {found.pid for found in survey.found}
    for index in state.running:
        status = state.steps[index]
        step_id = state.step_id(index)
        owner = f"step {step_id!r} attempt {status.attempt}"
        lock_path = paths.attempt_file(step_id, status.attempt, "lock")
        leader, start_id = _recorded_leader(state, index, lock_path)
        if leader is not None and procinfo.same_process(leader, start_id):
            survey.found.append(_Found(leader, start_id, owner, group=True))
        if not attempt_alive(lock_path):
            continue
        holders = procinfo.lock_holders(lock_path)
        if holders is None:
            survey.unknown_locks.append(lock_path)
            continue
        for pid in holders:
            if pid not in marked and pid != os.getpid():
                survey.found.append(_Found(pid, procinfo.start_id(pid), owner))
    return survey


def _recorded_leader(state: RunState, index: int, lock_path: str) -> tuple[int | None, str | None]:
    """The attempt's group leader: from its ``spawned`` record, else from its lock file."""
    process = state.steps[index].process
    if process is not None:
        return process.pgid, process.start_id
    try:
        with open_regular(lock_path) as file:
            pid_text, _, start_id = file.read(200).decode("ascii").strip().partition(" ")
        return int(pid_text), (start_id if start_id and start_id != "-" else None)
    except (OSError, ValueError, StoreError):
        return None, None


def _signal(survey: _Survey, signum: int) -> None:
    for found in survey.found:
        if not procinfo.same_process(found.pid, found.start_id):
            continue
        try:
            if found.group:
                os.killpg(found.pid, signum)
            else:
                os.kill(found.pid, signum)
        except (ProcessLookupError, PermissionError):
            continue


def _wait_clear(
    paths: RunPaths, state: RunState, timeout: float, stop_requested: Callable[[], bool]
) -> _Survey:
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        survey = _survey(paths, state)
        if survey.clear or time.monotonic() >= deadline:
            return survey
        if stop_requested():
            raise TakeoverInterrupted(
                f"interrupted while waiting for leftover processes ({_describe(survey)}); "
                "nothing was started and the run was left as it was"
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _describe(survey: _Survey) -> str:
    parts = [f"{found.owner}: pid {found.pid} still alive" for found in survey.found]
    parts += [
        f"{lock} is held by processes this system cannot identify" for lock in survey.unknown_locks
    ]
    return "; ".join(parts) + " (a new attempt never runs beside an old one)"
