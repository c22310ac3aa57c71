"""What runs on a Dask worker: one attempt per Dask task, in its own session, as on a local run.

The Dask executor (``wf_engine.runtime.daskexec``) submits ``run_attempt`` once per attempt. On
the worker, the task's thread::

    claim the attempt on the scheduler --taken--> AttemptDenied (Dask ran the task again after
        |  (metadata first, then a lock)           losing a worker: only wf decides reruns)
    launch.spawn: new session, stdin /dev/null, stdout/stderr two pipes, the attempt's mark in
        |         its environment (the runner's environment, the step's, WF_*), the step's cwd
        +--> registry (what runs where: signals and sweeps find the group here)
    "started" ----------------------------------------------> bounded queue on the scheduler
    select over both pipes and the leader's exit (pidfd, else a waitid thread):   |
        output chunks ----------------------------------------------------------> |
        exit: SIGTERM to the group, SIGKILL once no marked process is left in it  |
              or after the grace period; marked processes outside the group and   |
              holders of the output pipes are killed too (as the local executor)  |
    "ended" (exit status, leaked pids) ---------------------------------------------+--> runner

* **Backpressure.** The queue is bounded: when the runner's machine reads slower than a step
  writes, ``queue_put`` waits, the pipe fills and the step's next write blocks. Neither the
  worker's nor the scheduler's memory grows with a step's output.
* **An orphan keeps running.** When the runner's client goes away (the runner was killed), the
  scheduler cancels its tasks; the worker cannot interrupt a running task and the attempt's
  process runs on, its output dropped, until a resuming runner kills it (``sweep``) or it ends.
* **Fencing.** A worker that closes (it lost its scheduler, or is shut down) kills every attempt
  it runs (``WfWorkerPlugin.teardown``): an attempt never outlives its worker on purpose.
* **No signal to a stranger.** The leader stays an unreaped zombie until its group is drained,
  so the group id cannot be reused meanwhile; ``sweep`` signals a process only while its start
  id is still the one it was found with (``wf_engine.runtime.processes``).

Imported only where the Dask executor is used (it needs ``distributed``), on the runner's machine
and on every worker (the workers need ``wf-engine`` installed, at the same version).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import os
import selectors
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import TYPE_CHECKING, Any

from wf_engine.runtime import launch, oscaps, procinfo
from wf_engine.runtime.executor import LaunchSpec, SpawnError
from wf_engine.runtime.processes import KILL_WAIT_SEC, killpg, terminate

if TYPE_CHECKING:

    class _PluginBase:
        """``distributed.diagnostics.plugin.WorkerPlugin``."""

else:
    try:
        from distributed.diagnostics.plugin import WorkerPlugin as _PluginBase
    except ImportError:  # without the extra nothing here is ever used
        _PluginBase = object

#: Name of the worker plugin, and the root of everything wf keeps in the scheduler's metadata.
NAMESPACE = "wf-engine"
#: How long one ``queue_put`` waits on a full queue before checking the task is still wanted
#: (the scheduler logs an error each time it expires: a live runner empties the queue long before).
_PUT_WAIT_SEC = 30.0
_CHUNK = 64 * 1024
#: How long after the leader's exit the group is first checked for survivors.
_GROUP_CHECK_AFTER_SEC = 0.05
#: How long ``started`` may wait for company (output, the end) before it goes on its own.
HOLD_STARTED_SEC = 0.2


class AttemptDenied(Exception):
    """Raised by a task that must not run its attempt: it was already claimed (Dask ran the
    task again after losing a worker), fenced off by the runner, or cancelled meanwhile."""


@dataclass(frozen=True, slots=True)
class Job:
    """What a task needs besides the launch spec: where it reports and how it claims."""

    #: The scheduler-held queue the runner reads (its name is unique to one runner).
    queue: str
    #: ``[NAMESPACE, run mark, attempt mark]``: claims are kept under it.
    claims: tuple[str, ...]
    #: The name of the lock whose holder owns the attempt.
    lock: str


def claim_path(run_mark: str, mark: str) -> tuple[str, ...]:
    return (NAMESPACE, run_mark, mark)


def lock_name(mark: str) -> str:
    return f"{NAMESPACE}:{mark}"


def process_space() -> str:
    """Names the processes one ``/proc`` (or ``ps``) sees: host, boot and pid namespace.

    Two workers in one space can kill each other's leftovers; a sweep proves an attempt dead
    only in its own space.
    """
    return _process_space()


@functools.cache
def _process_space() -> str:
    parts = [socket.gethostname()]
    for read in (_boot_id, _pid_namespace):
        value = read()
        if value:
            parts.append(value)
    return "|".join(parts)


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as file:
            return file.read().strip()
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _distributed() -> Any:
    """``distributed``, typed as what it is to this module: an untyped boundary."""
    return importlib.import_module("distributed")


# -- what runs where -------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Running:
    """One attempt this worker process runs: its leader and its output pipes."""

    mark: str
    pid: int
    reap: launch.Reaper
    pipes: tuple[int, ...]
    guard: threading.Lock = field(default_factory=threading.Lock)
    reaped: bool = False
    returncode: int | None = None

    def signal_group(self, signum: int) -> bool:
        """Signal the group while its leader is unreaped (its id cannot have been reused)."""
        with self.guard:
            return not self.reaped and killpg(self.pid, signum)

    def reap_now(self) -> int:
        """Reap the leader, known to have exited or been killed (so this does not wait long)."""
        with self.guard:
            if not self.reaped:
                self.returncode = self.reap()
                self.reaped = True
        assert self.returncode is not None
        return self.returncode

    def wait_and_reap(self) -> None:
        """Without ``waitid``: block until the leader exits and reap it. The guard is taken only
        to record it, so a signal never waits for the step; one racing the reap finds the group
        gone, never reused (POSIX keeps a group id while any member lives)."""
        returncode = self.reap()
        with self.guard:
            self.returncode, self.reaped = returncode, True


_REGISTRY: dict[str, _Running] = {}
_REGISTRY_GUARD = threading.Lock()
#: One incremental mark scan per worker process, shared by its attempts.
_SCANNER = procinfo.MarkScanner("")
_SCANNER_GUARD = threading.Lock()


def _registered(prefix: str, exact: bool) -> list[_Running]:
    with _REGISTRY_GUARD:
        return [
            run
            for mark, run in _REGISTRY.items()
            if (mark == prefix if exact else mark.startswith(prefix))
        ]


def _scan() -> list[procinfo.MarkedProcess]:
    with _REGISTRY_GUARD:
        leaders = frozenset(run.pid for run in _REGISTRY.values())
    with _SCANNER_GUARD:
        return _SCANNER.scan(leaders)


def signal_attempt(mark: str, signum: int) -> bool:
    """Signal the group of attempt ``mark`` if this worker runs it (``Client.run`` calls this)."""
    return any(run.signal_group(signum) for run in _registered(mark, exact=True))


def sweep_here(
    prefix: str, exact: bool, pipes: tuple[int, ...], grace_sec: float
) -> dict[str, Any]:
    """Kill every process of the attempts ``prefix`` names in this process space; report.

    ``prefix`` is an attempt's mark (``exact``) or a run mark followed by ``/``. Found by the
    mark they carry, by the group of an attempt this worker runs, and by holding one of ``pipes``
    (output pipes of the attempts, Linux only). SIGTERM, then SIGKILL after ``grace_sec``.
    Returns ``{"space", "killed": [[pid, mark], ...], "alive": [[pid, mark], ...]}``: ``alive``
    lists what survived SIGKILL (an uninterruptible sleep, another user's process).
    """
    found = _marked(prefix, exact)
    known = {process.pid for process in found} | {os.getpid()}
    owner = prefix if exact else ""
    for pids in (procinfo.pipe_holders(set(pipes)) or {}).values():
        for pid in pids:
            holder = None if pid in known else procinfo.holder(pid, owner)
            if holder is not None:
                known.add(pid)
                found.append(holder)
    groups = _registered(prefix, exact)
    for run in groups:
        run.signal_group(signal.SIGTERM)
    terminate(found, grace_sec)
    for run in groups:
        run.signal_group(signal.SIGKILL)
    alive = {p.pid: p for p in found if procinfo.same_process(p.pid, p.start_id)}
    alive.update((p.pid, p) for p in _marked(prefix, exact))
    return {
        "space": process_space(),
        "killed": [[p.pid, p.key] for p in found],
        "alive": [[p.pid, p.key] for p in alive.values()],
    }


async def sweep(prefix: str, exact: bool, pipes: list[int], grace_sec: float) -> dict[str, Any]:
    """``sweep_here`` off the worker's event loop (it waits a grace period)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        None, functools.partial(sweep_here, prefix, exact, tuple(pipes), grace_sec)
    )


def _marked(prefix: str, exact: bool) -> list[procinfo.MarkedProcess]:
    return [p for p in procinfo.find_marked(prefix) if not exact or p.key == prefix]


def kill_every_attempt() -> None:
    """SIGKILL every attempt this worker runs, group and marked processes (worker closing)."""
    with _REGISTRY_GUARD:
        runs = list(_REGISTRY.values())
    for run in runs:
        run.signal_group(signal.SIGKILL)
        for process in _marked(run.mark, exact=True):
            if procinfo.same_process(process.pid, process.start_id):
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGKILL)


class WfWorkerPlugin(_PluginBase):
    """Registered on every worker: an attempt never outlives its worker on purpose.

    What runs where lives in this module's registry (one per worker process), so a second
    runner registering the plugin (``idempotent``) changes nothing for the first one's attempts.
    """

    idempotent = True
    name = NAMESPACE

    def setup(self, worker: Any) -> None:
        """Nothing to prepare: the registry is the worker process's own."""

    def teardown(self, worker: Any) -> None:
        """The worker is closing (it lost its scheduler, or is shut down): kill its attempts."""
        status = getattr(getattr(worker, "status", None), "name", "")
        if status in {"closing", "closed", "closing_gracefully", "failed"}:
            kill_every_attempt()


# -- one attempt -----------------------------------------------------------------------------


class _Channel:
    """The task's messages to the runner, through the scheduler-held queue the runner reads.

    Messages go in order, several per ``queue_put`` when they can wait: ``started`` is held back
    until the step's first output, its end, or ``HOLD_STARTED_SEC`` (the runner's ``spawned``
    record waits as long for company anyway), so a short step costs one call, not two.
    """

    def __init__(self, job: Job, worker: Any, client: Any) -> None:
        self._queue = job.queue
        self._worker = worker
        self._client = client
        self.task: str = str(worker.get_current_task())
        self._held: list[dict[str, Any]] = []
        #: When the held messages must go at the latest (``time.monotonic()``), if any.
        self.flush_at: float | None = None
        #: The runner is gone (its client left, so the scheduler cancelled the task) or its queue
        #: is: nothing more is sent, the attempt runs on until killed or over.
        self.orphaned = False

    def wanted(self) -> bool:
        task = self._worker.state.tasks.get(self.task)
        return task is not None and task.state in ("executing", "long-running")

    def hold(self, message: dict[str, Any], for_sec: float) -> None:
        self._held.append(message)
        if self.flush_at is None:
            self.flush_at = time.monotonic() + for_sec

    def send(self, message: dict[str, Any] | None = None) -> None:
        """Send ``message`` after whatever is held (only what is held, without one)."""
        messages, self._held, self.flush_at = self._held, [], None
        if message is not None:
            messages.append(message)
        if self.orphaned or not messages:
            return
        data = {"t": self.task, "m": messages}
        while True:
            try:
                self._client.sync(
                    self._client.scheduler.queue_put,
                    name=self._queue,
                    data=data,
                    timeout=_PUT_WAIT_SEC,
                )
                return
            except (TimeoutError, asyncio.TimeoutError):
                if not self.wanted():
                    self.orphaned = True
                    return
            except Exception:
                # The queue is gone (its runner closed it) or the scheduler is: nobody listens.
                self.orphaned = True
                return


def run_attempt(spec: LaunchSpec, job: Job) -> str:
    """The Dask task of one attempt: claim it, run it as locally, report over the queue.

    Returns how it went (``ended``, ``spawn_failed``); raises ``AttemptDenied`` without running
    anything when the attempt is someone else's.
    """
    dask = _distributed()
    worker = dask.get_worker()
    client = dask.get_client()
    channel = _Channel(job, worker, client)
    space = process_space()
    lock = dask.MultiLock([job.lock], client=client)
    # The claim's details first, the lock second: whoever holds the lock has left its details,
    # so the runner always knows where to look for an attempt that may have started.
    claim = {"worker": worker.address, "space": space}
    client.set_metadata([*job.claims, lock.id], claim)
    if not lock.acquire(blocking=False):
        # Not holding it: nothing for the runner to release when it forgets the claims.
        client.set_metadata([*job.claims, lock.id], {**claim, "held": False})
        raise AttemptDenied(f"attempt {spec.mark} was claimed before (Dask ran it again)")
    if not channel.wanted():
        raise AttemptDenied(f"attempt {spec.mark} was cancelled before it started")
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid, reap = launch.spawn(spec, out_w, err_w)
    except SpawnError as exc:
        os.close(out_r)
        os.close(err_r)
        channel.send({"k": "spawn_failed", "m": f"{exc} (on worker {worker.address})"})
        return "spawn_failed"
    finally:
        os.close(out_w)
        os.close(err_w)
    run = _Running(spec.mark, pid, reap, (os.fstat(out_r).st_ino, os.fstat(err_r).st_ino))
    with _REGISTRY_GUARD:
        _REGISTRY[spec.mark] = run
    try:
        started = {
            "k": "started",
            "pid": pid,
            "sid": procinfo.start_id(pid, zombie_too=True),
            "pipes": list(run.pipes),
            "w": worker.address,
            "space": space,
        }
        channel.hold(started, HOLD_STARTED_SEC)
        returncode, leaked = _Watch(run, spec, (out_r, err_r), channel).run()
    except BaseException:
        _kill_attempt(run)
        raise
    finally:
        with _REGISTRY_GUARD:
            _REGISTRY.pop(spec.mark, None)
    channel.send({"k": "ended", "rc": returncode, "leaked": leaked})
    return "ended"


def _kill_attempt(run: _Running) -> None:
    """The task failed after its spawn (an engine bug): nothing of the attempt may live on."""
    run.signal_group(signal.SIGKILL)
    for process in _marked(run.mark, exact=True):
        with contextlib.suppress(OSError):
            os.kill(process.pid, signal.SIGKILL)
    run.reap_now()


class _Phase(Enum):
    RUNNING = auto()
    #: The leader exited; the group got SIGTERM and is given its grace period.
    DRAINING = auto()
    #: Everything is killed; waiting (briefly) for the last bytes of output.
    CLOSING = auto()


class _Watch:
    """The task thread's loop over one attempt: output out, exit in, group drained."""

    def __init__(
        self, run: _Running, spec: LaunchSpec, fds: tuple[int, int], channel: _Channel
    ) -> None:
        self._run = run
        self._spec = spec
        self._channel = channel
        self._streams = {fds[0]: 1, fds[1]: 2}
        self._selector = selectors.DefaultSelector()
        self._exit_fd = -1
        self._leaked: list[int] = []

    def run(self) -> tuple[int, list[int]]:
        for fd, stream in self._streams.items():
            os.set_blocking(fd, False)
            self._selector.register(fd, selectors.EVENT_READ, stream)
        self._exit_fd = self._watch_exit()
        self._selector.register(self._exit_fd, selectors.EVENT_READ, 0)
        try:
            self._loop()
        finally:
            for fd in list(self._streams):
                self._close(fd)
            self._close_exit_fd()
            self._selector.close()
        return self._run.reap_now(), self._leaked

    def _close_exit_fd(self) -> None:
        if self._exit_fd >= 0:
            self._selector.unregister(self._exit_fd)
            os.close(self._exit_fd)
            self._exit_fd = -1

    def _loop(self) -> None:
        phase, check_at, deadline, pause = _Phase.RUNNING, 0.0, 0.0, _GROUP_CHECK_AFTER_SEC
        holders_checked = False
        while True:
            due = self._channel.flush_at if phase is _Phase.RUNNING else check_at
            if phase is not _Phase.RUNNING and self._channel.flush_at is not None:
                due = min(check_at, self._channel.flush_at)
            timeout = None if due is None else max(0.0, due - time.monotonic())
            for key, _ in self._selector.select(timeout):
                if key.data == 0:
                    self._close_exit_fd()
                    phase = _Phase.DRAINING
                    self._run.signal_group(signal.SIGTERM)
                    now = time.monotonic()
                    deadline = now + self._spec.kill_grace_sec
                    check_at = now if not self._streams else now + _GROUP_CHECK_AFTER_SEC
                elif self._pump(key.fd, key.data) and phase is _Phase.DRAINING:
                    check_at = time.monotonic() if not self._streams else check_at
            now = time.monotonic()
            if self._channel.flush_at is not None and now >= self._channel.flush_at:
                self._channel.send()
            if phase is _Phase.DRAINING and now >= check_at:
                ours = self._ours()
                if any(p.pgid == self._run.pid for p in ours) and now < deadline:
                    pause = min(pause * 2, 0.2)
                    check_at = min(now + pause, deadline)
                    continue
                self._kill_group(ours)
                phase, check_at = _Phase.CLOSING, time.monotonic() + _GROUP_CHECK_AFTER_SEC
            if phase is _Phase.CLOSING:
                if not self._streams:
                    return
                if time.monotonic() >= check_at:
                    if holders_checked:
                        return  # something unkillable holds the pipes: do not wait forever
                    holders_checked = True
                    self._kill_holders()
                    check_at = time.monotonic() + KILL_WAIT_SEC

    def _watch_exit(self) -> int:
        """A descriptor readable once the leader exited (the leader is not reaped by it)."""
        if oscaps.has_pidfd():
            return os.pidfd_open(self._run.pid)
        wake_r, wake_w = os.pipe()

        def wait() -> None:
            if oscaps.HAS_WAITID:
                os.waitid(os.P_PID, self._run.pid, os.WEXITED | os.WNOWAIT)
            else:
                self._run.wait_and_reap()  # no way to wait without reaping (macOS before 3.13)
            os.write(wake_w, b"x")
            os.close(wake_w)

        threading.Thread(target=wait, name=f"wf-wait-{self._run.pid}", daemon=True).start()
        return wake_r

    def _pump(self, fd: int, stream: int) -> bool:
        """Forward what a pipe holds; True at its end of file (then it is closed)."""
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return False
        if data:
            self._channel.send({"k": "out", "s": stream, "d": data})
            return False
        self._close(fd)
        return True

    def _close(self, fd: int) -> None:
        if self._streams.pop(fd, None) is not None:
            self._selector.unregister(fd)
            os.close(fd)

    def _ours(self) -> list[procinfo.MarkedProcess]:
        return [p for p in _scan() if p.key == self._run.mark]

    def _kill_group(self, ours: list[procinfo.MarkedProcess]) -> None:
        """SIGKILL the group; terminate the marked processes that left it (they leaked)."""
        self._run.signal_group(signal.SIGKILL)
        # Once the leader is reaped (no waitid), the group is killed process by process.
        out = ours if self._run.reaped else [p for p in ours if p.pgid != self._run.pid]
        leaked = [p for p in out if p.pgid != self._run.pid]
        self._leaked += [p.pid for p in leaked]
        if out:
            terminate(out, self._spec.kill_grace_sec)

    def _kill_holders(self) -> None:
        """The group is gone but the pipes are still open: their holders inherited them from the
        attempt (they left the group and shed its mark). Linux only."""
        me = os.getpid()
        pids = {
            pid
            for pids in (procinfo.pipe_holders(set(self._run.pipes)) or {}).values()
            for pid in pids
        }
        found = [procinfo.holder(pid, self._run.mark) for pid in pids - {me}]
        leaked = [p for p in found if p is not None and p.pgid != self._run.pid]
        if leaked:
            self._leaked += [p.pid for p in leaked]
            terminate(leaked, self._spec.kill_grace_sec)
