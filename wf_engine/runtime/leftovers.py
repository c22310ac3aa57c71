"""Take-over's first duty: no process of a dead runner's attempts may live when a step starts.

Never two attempts of a step at once. A new owner (``wf resume``, ``wf run --run-id`` of an
unfinished run, ``wf cancel`` of a run whose runner died) asks every source of truth it has, because
any one of them may have been lost (unsynced writes, a deleted ``steps/`` folder, an attempt that
closed its descriptors or left its process group):

* the **mark** every attempt's processes carry in their environment (``procinfo.find_marked``),
  for the whole run, whatever step or attempt;
* each RUNNING step's **recorded group leader**, from its ``spawned`` record or else from the
  run's pid journal (``steps/.pids``), checked against pid reuse by its start id;
* each RUNNING attempt's **output pipes**, named in the pid journal: every process still holding
  one inherited it from the attempt (``/proc`` only).

Whatever is found gets SIGTERM, then SIGKILL after the step's grace period. Take-over goes on
only once nothing is found. If something cannot be proven dead (it survives SIGKILL) take-over
waits, saying what it waits for and why, and starts nothing meanwhile.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from wf_engine.core.fold import RunState
from wf_engine.core.model import DEFAULT_KILL_GRACE_SEC
from wf_engine.errors import EXIT_CANCELLED, WfError
from wf_engine.runtime import pidjournal, procinfo
from wf_engine.runtime.executor import Notify
from wf_engine.runtime.processes import KILL_WAIT_SEC
from wf_engine.runtime.store import RunPaths

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

    @property
    def clear(self) -> bool:
        return not self.found


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
    known = {found.pid for found in survey.found} | {os.getpid()}
    journal = pidjournal.read(paths) if state.running else {}
    owners: dict[int, str] = {}
    for index in state.running:
        status = state.steps[index]
        step_id = state.step_id(index)
        owner = f"step {step_id!r} attempt {status.attempt}"
        entry = journal.get(procinfo.attempt_key(paths.root, step_id, status.attempt))
        recorded = status.process
        leader, start_id = (
            (recorded.pgid, recorded.start_id)
            if recorded is not None
            else (entry.pid, entry.start_id)
            if entry is not None
            else (None, None)
        )
        if leader is not None and procinfo.same_process(leader, start_id):
            survey.found.append(_Found(leader, start_id, owner, group=True))
        for inode in entry.pipes if entry is not None else ():
            owners[inode] = owner
    for inode, pids in (procinfo.pipe_holders(set(owners)) or {}).items():
        for pid in pids:
            if pid not in known:
                known.add(pid)
                survey.found.append(_Found(pid, procinfo.start_id(pid), owners[inode]))
    return survey


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
    return "; ".join(parts) + " (a new attempt never runs beside an old one)"
