"""Attempt processes: each in its own session, watched by a thread, drained, then reaped.

Data flow (the scheduler thread owns everything on the left; watchers only report)::

    scheduler --start_attempt()--> Popen (new session, stdin closed, output to files,
        ^                                 WF_ATTEMPT_KEY in its environment)
        |   on_exit(key, outcome)              |
        +------------------------------- watcher thread: exit seen -> drain group ->
                                               kill leaked processes -> reap

* **No leaked processes.** When the attempt's main process exits, the watcher signals the whole
  process group (SIGTERM, then SIGKILL after the grace period), then finds every process still
  carrying the attempt's mark outside the group (a daemon that double-forked and called
  ``setsid``), kills it and reports it in the attempt's stderr and its record.
* **No signal to a stranger.** With ``os.waitid`` the main process stays a zombie until its group
  is drained, so its pid, which is also the group id, cannot be reused meanwhile. Without it
  (macOS before Python 3.13) the main process is reaped first; POSIX still forbids reusing a
  group id while any member lives, so only a group that has just ended could be mistaken.
* **Liveness without trusting pids.** Each attempt holds an exclusive ``flock`` on its own lock
  file, inherited by the step's processes and released by the OS when the last holder exits;
  and every process carries the mark ``procinfo.find_marked`` finds. ``kill(pid, 0)`` is never
  the only evidence.
"""

from __future__ import annotations

import fcntl
import os
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from wf_engine.errors import StoreError
from wf_engine.log import durable
from wf_engine.log.storefiles import open_regular_fd
from wf_engine.runtime import oscaps, procinfo
from wf_engine.runtime.ownership import lock_held

AttemptKey = tuple[int, int]
STDERR_TAIL_BYTES = 2048
#: How long the group may hold the lock before the watcher checks who holds it.
_LOCK_CHECK_AFTER_SEC = 0.05
#: How long a SIGKILLed process may take to disappear before it counts as unkillable.
KILL_WAIT_SEC = 2.0


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    argv: list[str]
    cwd: str
    env: dict[str, str]
    stdout_path: str
    stderr_path: str
    lock_path: str
    kill_grace_sec: float
    #: The attempt's mark (``procinfo.attempt_key``), also set in ``env``.
    mark: str


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What the watcher saw: how the main process ended and which escaped processes it killed."""

    returncode: int
    stderr_tail: str
    leaked_pids: tuple[int, ...] = ()


#: Called from the watcher thread with (key, outcome).
ExitCallback = Callable[[AttemptKey, AttemptOutcome], None]


class SpawnError(Exception):
    """The attempt's process could not be started (missing program, bad cwd, …)."""


class AttemptStoreError(StoreError):
    """An attempt's file in the run store could not be created or written (exit 4)."""


class AttemptProcess:
    """A started attempt: its process group, and a thread that waits for it."""

    def __init__(self, key: AttemptKey, popen: subprocess.Popen[bytes], spec: LaunchSpec) -> None:
        self.key = key
        self.pid = popen.pid
        self.pgid = popen.pid  # start_new_session makes the child its own group leader
        self.start_id = procinfo.start_id(popen.pid)
        self._popen = popen
        self._spec = spec
        self._drained = False
        self._guard = threading.Lock()

    def signal(self, signum: int) -> None:
        """Signal the whole group, unless it is already drained (never a reused pid)."""
        with self._guard:
            if not self._drained:
                _killpg(self.pgid, signum)

    def watch(self, on_exit: ExitCallback) -> None:
        thread = threading.Thread(
            target=self._wait, args=(on_exit,), name=f"wf-watch-{self.pid}", daemon=True
        )
        thread.start()

    def _wait(self, on_exit: ExitCallback) -> None:
        spec = self._spec
        if oscaps.HAS_WAITID:
            os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        else:
            self._popen.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        drain_group(self.pgid, spec.lock_path, spec.kill_grace_sec, spec.mark)
        with self._guard:
            returncode = self._popen.wait()
            self._drained = True
        leaked = kill_leaked(spec.mark, self.pgid, spec.kill_grace_sec)
        if leaked:
            _append_note(spec.stderr_path, _leak_note(leaked))
        # Only a failed or stopped attempt's record carries a stderr tail: skip the read on success.
        tail = read_tail(spec.stderr_path, STDERR_TAIL_BYTES) if returncode else ""
        on_exit(self.key, AttemptOutcome(returncode, tail, leaked))


def start_attempt(key: AttemptKey, spec: LaunchSpec) -> AttemptProcess:
    """Start one attempt in a new session.

    Raises ``SpawnError`` if the command cannot start (the attempt fails) and
    ``AttemptStoreError`` naming the file if the run store cannot hold the attempt's files (the
    runner stops). Nothing this function started outlives a failure of its own.
    """
    out_fd = err_fd = lock_fd = -1
    try:
        _make_attempt_dir(os.path.dirname(spec.stdout_path))
        out_fd = _create(spec.stdout_path, os.O_WRONLY | os.O_TRUNC)
        err_fd = _create(spec.stderr_path, os.O_WRONLY | os.O_TRUNC)
        lock_fd = _create(spec.lock_path, os.O_RDWR | os.O_TRUNC)
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            popen = subprocess.Popen(
                spec.argv,
                cwd=spec.cwd,
                env=spec.env,
                stdin=subprocess.DEVNULL,
                stdout=out_fd,
                stderr=err_fd,
                start_new_session=True,
                pass_fds=(lock_fd,),
            )
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            message = f"cannot start {spec.argv[0]!r} in {spec.cwd!r}: {reason}"
            os.write(err_fd, f"wf: {message}\n".encode(errors="replace"))
            raise SpawnError(message) from exc
        process = AttemptProcess(key, popen, spec)
        try:
            durable.write_advisory(lock_fd, f"{process.pid} {process.start_id or '-'}\n".encode())
        except OSError as exc:
            _kill_now(popen)
            raise _store_error(spec.lock_path, "cannot write", exc) from exc
        return process
    finally:
        for fd in (out_fd, err_fd, lock_fd):
            if fd >= 0:
                os.close(fd)


def _make_attempt_dir(path: str) -> None:
    """``steps/<step>/``, private like the rest of the run store (see ``durable.dir_mode``)."""
    for folder in (os.path.dirname(path), path):
        try:
            os.mkdir(folder, durable.dir_mode())
        except FileExistsError:
            continue
        except OSError as exc:
            raise _store_error(folder, "cannot create folder", exc) from exc


def _create(path: str, flags: int) -> int:
    """Open an attempt file for writing; a FIFO or link planted in its place is refused."""
    try:
        fd = os.open(
            path,
            flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
            durable.file_mode(),
        )
    except OSError as exc:
        raise _store_error(path, "cannot create", exc) from exc
    if not _is_regular(fd):
        os.close(fd)
        raise AttemptStoreError(f"{path}: not a regular file; refusing to write an attempt to it")
    os.set_blocking(fd, True)
    return fd


def _is_regular(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)


def _store_error(path: str, what: str, exc: OSError) -> AttemptStoreError:
    return AttemptStoreError(f"{path}: {what}: {exc.strerror or exc}")


def _kill_now(popen: subprocess.Popen[bytes]) -> None:
    """Kill a just-started attempt's whole group and reap it (the runner is about to stop)."""
    _killpg(popen.pid, signal.SIGKILL)
    popen.wait()


def drain_group(pgid: int, lock_path: str, grace_sec: float, mark: str) -> None:
    """Terminate what is left of a process group: SIGTERM, SIGKILL once the grace period ends.

    Waiting ends early when the attempt lock is free (no process that inherited it is left), or
    when the lock's remaining holders have all left the group (a daemon: ``kill_leaked`` deals
    with it; waiting for it would only delay the step by the whole grace period). This runs in a
    watcher thread or a resuming runner, never in the scheduler loop.
    """
    if not _killpg(pgid, signal.SIGTERM):
        return
    started = time.monotonic()
    deadline = started + grace_sec
    pause = 0.001
    while attempt_alive(lock_path) and time.monotonic() < deadline:
        if time.monotonic() - started >= _LOCK_CHECK_AFTER_SEC and not _group_marked(pgid, mark):
            break
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    _killpg(pgid, signal.SIGKILL)


def _group_marked(pgid: int, mark: str) -> bool:
    return any(p.key == mark and p.pgid == pgid for p in procinfo.find_marked(mark))


def kill_leaked(mark: str, pgid: int, grace_sec: float) -> tuple[int, ...]:
    """Kill processes carrying ``mark`` that left the attempt's group; returns their pids.

    Members of the group itself were sent SIGKILL by ``drain_group`` and are not leaks.
    """
    leaked = [p for p in procinfo.find_marked(mark) if p.key == mark and p.pgid != pgid]
    if leaked:
        terminate(leaked, grace_sec)
    return tuple(p.pid for p in leaked)


def terminate(targets: list[procinfo.MarkedProcess], grace_sec: float) -> list[int]:
    """SIGTERM each process, SIGKILL the ones alive after ``grace_sec``; returns pids still alive.

    A process is signalled only while it is still the one that was found (same start id).
    """
    _signal_each(targets, signal.SIGTERM)
    alive = _wait_gone(targets, grace_sec)
    _signal_each(alive, signal.SIGKILL)
    return [p.pid for p in _wait_gone(alive, KILL_WAIT_SEC)]


def _signal_each(targets: list[procinfo.MarkedProcess], signum: int) -> None:
    for process in targets:
        if procinfo.same_process(process.pid, process.start_id):
            try:
                os.kill(process.pid, signum)
            except (ProcessLookupError, PermissionError):
                continue


def _wait_gone(
    targets: list[procinfo.MarkedProcess], timeout: float
) -> list[procinfo.MarkedProcess]:
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        alive = [p for p in targets if procinfo.same_process(p.pid, p.start_id)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _leak_note(pids: tuple[int, ...]) -> str:
    listed = ", ".join(str(pid) for pid in pids)
    return (
        f"wf: killed {len(pids)} process(es) that left the step's process group but still "
        f"carried its mark: {listed}\n"
    )


def _append_note(path: str, text: str) -> None:
    """Add the engine's own remark to an attempt's stderr (advisory, like the file itself)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return
    try:
        if _is_regular(fd):
            os.write(fd, text.encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def attempt_alive(lock_path: str) -> bool:
    """True while any process that inherited the attempt's lock is still running.

    A lock file that cannot be opened (missing, replaced by a link) proves nothing alive here.
    """
    try:
        return lock_held(lock_path)
    except (OSError, StoreError):
        return False


def read_tail(path: str, limit: int) -> str:
    """The last ``limit`` bytes of a file as text (for ``stderr_tail``)."""
    try:
        fd = open_regular_fd(path)
    except (OSError, StoreError):
        return ""
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, limit, max(0, size - limit)).decode(errors="replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def _killpg(pgid: int, signum: int) -> bool:
    """Signal a group; False when no such group exists any more."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True
