"""Attempt processes: each in its own session, watched by a thread, drained, then reaped.

Data flow (the scheduler thread owns everything on the left; watchers only report)::

    scheduler --start_attempt()--> Popen (new session, stdin closed, output to files)
        ^                               |
        |   on_exit(key, code, tail)    v
        +------------------------- watcher thread: waitid(WNOWAIT) -> drain group -> reap

* **No leaked processes.** When the attempt's main process exits, the watcher signals the whole
  process group (SIGTERM, then SIGKILL after the grace period) before reaping the main process.
* **No signal to a stranger.** The main process stays a zombie until its group is drained, so its
  pid, which is also the group id, cannot be reused meanwhile; ``signal`` and the reaping share a
  lock, so the scheduler never signals a group whose leader was already reaped.
* **Liveness without trusting pids.** Each attempt holds an exclusive ``flock`` on its own lock
  file; the lock's open file description is inherited by the step's processes and released by the
  OS when the last of them exits. ``attempt_alive`` asks the lock, never ``kill(pid, 0)``.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from wf_engine import procinfo

AttemptKey = tuple[int, int]
#: Called from the watcher thread with (key, returncode, stderr tail).
ExitCallback = Callable[[AttemptKey, int, str], None]
STDERR_TAIL_BYTES = 2048


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    argv: list[str]
    cwd: str
    env: dict[str, str]
    stdout_path: str
    stderr_path: str
    lock_path: str
    kill_grace_sec: float


class SpawnError(Exception):
    """The attempt's process could not be started (missing program, bad cwd, …)."""


class AttemptProcess:
    """A started attempt: its process group, and a thread that waits for it."""

    def __init__(self, key: AttemptKey, popen: subprocess.Popen[bytes], spec: LaunchSpec) -> None:
        self.key = key
        self.pid = popen.pid
        self.pgid = popen.pid  # start_new_session makes the child its own group leader
        self.start_id = procinfo.start_id(popen.pid)
        self._popen = popen
        self._spec = spec
        self._reaped = False
        self._guard = threading.Lock()

    def signal(self, signum: int) -> None:
        """Signal the whole group, unless it is already gone (never a reused pid)."""
        with self._guard:
            if not self._reaped:
                _killpg(self.pgid, signum)

    def watch(self, on_exit: ExitCallback) -> None:
        thread = threading.Thread(
            target=self._wait, args=(on_exit,), name=f"wf-watch-{self.pid}", daemon=True
        )
        thread.start()

    def _wait(self, on_exit: ExitCallback) -> None:
        os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        drain_group(self.pgid, self._spec.lock_path, self._spec.kill_grace_sec)
        with self._guard:
            returncode = self._popen.wait()
            self._reaped = True
        # Only a failed or stopped attempt's record carries a stderr tail: skip the read on success.
        tail = read_tail(self._spec.stderr_path, STDERR_TAIL_BYTES) if returncode else ""
        on_exit(self.key, returncode, tail)


def start_attempt(key: AttemptKey, spec: LaunchSpec) -> AttemptProcess:
    """Start one attempt in a new session; raises ``SpawnError`` if it cannot start."""
    out_fd = err_fd = lock_fd = -1
    try:
        os.makedirs(os.path.dirname(spec.stdout_path), exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        out_fd = os.open(spec.stdout_path, flags, 0o644)
        err_fd = os.open(spec.stderr_path, flags, 0o644)
        lock_fd = os.open(spec.lock_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
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
        except OSError as exc:
            message = f"cannot start {spec.argv[0]!r} in {spec.cwd!r}: {exc.strerror or exc}"
            os.write(err_fd, f"wf: {message}\n".encode())
            raise SpawnError(message) from exc
        process = AttemptProcess(key, popen, spec)
        os.pwrite(lock_fd, f"{process.pid} {process.start_id or '-'}\n".encode(), 0)
        return process
    finally:
        for fd in (out_fd, err_fd, lock_fd):
            if fd >= 0:
                os.close(fd)


def drain_group(pgid: int, lock_path: str, grace_sec: float) -> None:
    """Terminate what is left of a process group: SIGTERM, SIGKILL once the grace period ends.

    Waiting ends early when the attempt lock is free, i.e. when no process that inherited it is
    left. This runs in a watcher thread or a resuming runner, never in the scheduler loop.
    """
    if not _killpg(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace_sec
    pause = 0.001
    while attempt_alive(lock_path) and time.monotonic() < deadline:
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    _killpg(pgid, signal.SIGKILL)


def attempt_alive(lock_path: str) -> bool:
    """True while any process that inherited the attempt's lock is still running."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def read_tail(path: str, limit: int) -> str:
    """The last ``limit`` bytes of a file as text (for ``stderr_tail``)."""
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - limit))
            return file.read().decode(errors="replace")
    except OSError:
        return ""


def _killpg(pgid: int, signum: int) -> bool:
    """Signal a group; False when no such group exists any more."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True
