"""The local executor: each attempt a process group on this machine, all watched by one thread.

Data flow (the runner's scheduler thread calls ``start``/``signal``; everything else happens in
the executor's one thread, which only reports)::

    start(key, spec) --> launch.spawn (new session, stdout/stderr = two pipes)
                         pid journal line, register --> executor thread:
                                                          selector over every attempt's
                                                          pipes (output -> files) and pidfd
                                                          (exit) -> drain -> leak scan -> reap
                                                          -> report(key, outcome)

* **Output.** Each attempt's stdout and stderr are pipes the executor drains into
  ``steps/<step>/<n>.out|err``, creating a file only when its first byte arrives: a silent
  attempt creates nothing in the run store. Bytes go to the file as they come (``os.splice`` on
  Linux, a 64 KiB buffer elsewhere), so the engine's memory does not grow with a step's output,
  whatever the engine read is in the file even if the engine is killed, and a reader of the file
  (``wf logs --follow``) never slows the step.
* **No leaked processes.** When the main process exits, its group gets SIGTERM; once no process
  of the group is left (or the step's grace period is over) it gets SIGKILL. Processes that
  carry the attempt's mark outside the group (a daemon that double-forked and called ``setsid``)
  are killed too, reported in the attempt's stderr and its record. One incremental mark scan
  (``procinfo.MarkScanner``) serves every attempt that ends in the same turn.
* **No signal to a stranger.** The main process stays an unreaped zombie until its group is
  drained (a pidfd or ``os.waitid(WNOWAIT)`` tells of its exit without reaping it), so its pid,
  which is also the group id, cannot be reused meanwhile. Without either (macOS before Python
  3.13) it is reaped at once; POSIX still forbids reusing a group id while any member lives.
"""

from __future__ import annotations

import contextlib
import os
import queue
import selectors
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Literal

from wf_engine.core.fold import RunState
from wf_engine.runtime import launch, leftovers, oscaps, pidjournal, procinfo
from wf_engine.runtime.executor import (
    AttemptKey,
    AttemptOutcome,
    AttemptStoreError,
    LaunchSpec,
    Notify,
    Report,
    SpawnError,
    SpawnFailed,
    Started,
)
from wf_engine.runtime.processes import (
    KILL_WAIT_SEC,
    append_note,
    create_file,
    killpg,
    leak_note,
    make_step_dir,
    read_tail,
    store_error,
    terminate,
)
from wf_engine.runtime.store import RunPaths

STDERR_TAIL_BYTES = 2048
#: How long after the main process's exit the group is first checked for survivors.
_GROUP_CHECK_AFTER_SEC = 0.05
_CHUNK = 64 * 1024
#: Threads starting attempts (see ``LocalExecutor._spawner``).
_SPAWNERS = 2
_HAS_SPLICE = hasattr(os, "splice") and oscaps.HAS_PROCFS


class _Phase(Enum):
    RUNNING = auto()
    #: The main process exited; the group got SIGTERM and is given its grace period.
    DRAINING = auto()
    #: Processes that escaped the group are being terminated (in a helper thread).
    LEAKS = auto()
    #: Everything is killed; waiting (briefly) for the last bytes of output.
    CLOSING = auto()


#: Phases that end at a time (``_Attempt.check_at``) rather than on an event.
_TIMED = frozenset({_Phase.DRAINING, _Phase.CLOSING})
#: How long after its spawn a still running attempt's identity is read and reported.
_ANNOUNCE_AFTER_SEC = 0.02


@dataclass(eq=False, slots=True)
class _Capture:
    """One output pipe and the file it is drained into (created at the first byte)."""

    fd: int
    path: str
    file_fd: int = -1
    eof: bool = False


@dataclass(eq=False, slots=True)
class _Attempt:
    key: AttemptKey
    pid: int
    reap: launch.Reaper
    spec: LaunchSpec
    captures: tuple[_Capture, _Capture]
    phase: _Phase = _Phase.RUNNING
    returncode: int | None = None
    reaped: bool = False
    deadline: float = 0.0
    check_at: float = 0.0
    pause: float = _GROUP_CHECK_AFTER_SEC
    leaked: tuple[int, ...] = ()
    store_error: str | None = None
    #: The inodes of the stdout and stderr pipes (for the pid journal).
    pipes: tuple[int, ...] = ()
    #: Whether ``Started`` was reported (see ``LocalExecutor._announce``).
    announced: bool = False
    #: Whether the holders of the output pipes were looked for (see ``_look_for_holders``).
    holders_checked: bool = False
    guard: threading.Lock = field(default_factory=threading.Lock)

    @property
    def output_done(self) -> bool:
        return all(capture.eof for capture in self.captures)


_Message = (
    tuple[Literal["watch"], _Attempt]
    | tuple[Literal["exited"], _Attempt]
    | tuple[Literal["leaks-done"], _Attempt]
)


class LocalExecutor:
    """Runs attempts as local process groups (see the module docstring)."""

    def __init__(self, paths: RunPaths, report: Report) -> None:
        self._paths = paths
        self._report = report
        self._journal = pidjournal.PidJournal(paths)
        self._scanner = procinfo.MarkScanner(procinfo.run_mark(paths.root) + "/")
        self._live: dict[AttemptKey, _Attempt] = {}
        #: Attempts asked for and not spawned yet, with the signal they got meanwhile, if any.
        self._starting: dict[AttemptKey, int | None] = {}
        self._live_guard = threading.Lock()
        self._messages: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._spawn_requests: queue.SimpleQueue[tuple[AttemptKey, LaunchSpec] | None] = (
            queue.SimpleQueue()
        )
        self._selector: selectors.BaseSelector | None = None
        self._wake_r = self._wake_w = -1
        self._thread: threading.Thread | None = None
        self._spawners: list[threading.Thread] = []
        self._closing = False
        self._use_pidfd = oscaps.has_pidfd()

    # -- the runner's side -------------------------------------------------------------------

    def start(self, key: AttemptKey, spec: LaunchSpec) -> None:
        if self._thread is None:
            self._start_thread()
        with self._live_guard:
            self._starting[key] = None
        self._spawn_requests.put((key, spec))

    def signal(self, key: AttemptKey, signum: int) -> None:
        with self._live_guard:
            attempt = self._live.get(key)
            if attempt is None and key in self._starting:
                # Not started yet: the signal is delivered right after the spawn.
                self._starting[key] = _stronger(self._starting[key], signum)
                return
        if attempt is not None:
            _signal_group(attempt, signum)

    def kill_all(self) -> None:
        with self._live_guard:
            attempts = list(self._live.values())
            for key in self._starting:
                self._starting[key] = signal.SIGKILL
        for attempt in attempts:
            _signal_group(attempt, signal.SIGKILL)

    def close(self) -> None:
        for _ in self._spawners:
            self._spawn_requests.put(None)
        for spawner in self._spawners:
            spawner.join(timeout=KILL_WAIT_SEC)
        self._journal.close()
        if self._thread is not None:
            self._closing = True
            self._wake()
            self._thread.join(timeout=KILL_WAIT_SEC)

    def clear_leftovers(
        self, state: RunState, notify: Notify, stop_requested: Callable[[], bool]
    ) -> None:
        leftovers.clear_leftovers(self._paths, state, notify, stop_requested)

    # -- the executor's thread ---------------------------------------------------------------

    def _start_thread(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._loop, name="wf-executor", daemon=True)
        self._thread.start()
        for n in range(_SPAWNERS):
            spawner = threading.Thread(target=self._spawner, name=f"wf-spawn-{n}", daemon=True)
            spawner.start()
            self._spawners.append(spawner)

    def _post(self, message: _Message) -> None:
        self._messages.put(message)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a full wake pipe: already awake
            os.write(self._wake_w, b"\0")

    def _loop(self) -> None:
        assert self._selector is not None
        active: list[_Attempt] = []
        while not (self._closing and not active):
            timeout = min((a.check_at for a in active if _timed(a)), default=None)
            if timeout is not None:
                timeout = max(0.0, timeout - time.monotonic())
            for selected, _ in self._selector.select(timeout):
                data = selected.data
                if data is None:
                    self._take_messages(active)
                elif isinstance(data, tuple):
                    self._pump(*data)
                else:
                    self._selector.unregister(selected.fd)
                    os.close(selected.fd)
                    self._exited(data)
            self._advance(active)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._selector.close()
        self._scanner.close()

    def _take_messages(self, active: list[_Attempt]) -> None:
        assert self._selector is not None
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        while True:
            try:
                message = self._messages.get_nowait()
            except queue.Empty:
                return
            if message[0] == "watch":
                self._watch(message[1], active)
            elif message[0] == "exited":
                self._exited(message[1])
            else:
                attempt = message[1]
                attempt.phase = _Phase.CLOSING
                wait = KILL_WAIT_SEC if attempt.holders_checked else _GROUP_CHECK_AFTER_SEC
                attempt.check_at = time.monotonic() + wait

    def _spawner(self) -> None:
        """A spawning thread: ``subprocess`` waits (without the interpreter lock) until the
        child has exec'd, up to milliseconds on a busy machine; with two of these, one slow
        exec does not hold up the next attempt."""
        while True:
            request = self._spawn_requests.get()
            if request is None:
                return
            attempt = self._launch(*request)
            if attempt is not None:
                self._post(("watch", attempt))

    def _launch(self, key: AttemptKey, spec: LaunchSpec) -> _Attempt | None:
        """Spawn an attempt and journal its leader; report a failure to start."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            pid, reap = launch.spawn(spec, out_w, err_w)
        except SpawnError as exc:
            for fd in (out_r, err_r):
                os.close(fd)
            with self._live_guard:
                del self._starting[key]
            _write_spawn_error(spec.stderr_path, str(exc))
            self._report(key, SpawnFailed(str(exc)))
            return None
        finally:
            os.close(out_w)
            os.close(err_w)
        captures = (_Capture(out_r, spec.stdout_path), _Capture(err_r, spec.stderr_path))
        attempt = _Attempt(key, pid, reap, spec, captures)
        attempt.pipes = (os.fstat(out_r).st_ino, os.fstat(err_r).st_ino)
        attempt.check_at = time.monotonic() + _ANNOUNCE_AFTER_SEC
        try:
            self._journal.append(spec.mark, pidjournal.Leader(pid, None, attempt.pipes))
        except AttemptStoreError as exc:
            # Nothing may run that no record or journal names: the run stops (exit 4).
            killpg(pid, signal.SIGKILL)
            reap()
            attempt.reaped = True
            attempt.store_error = str(exc)
        with self._live_guard:
            pending = self._starting.pop(key)
            if not attempt.reaped:
                self._live[key] = attempt
        if attempt.store_error is not None:
            for fd in (out_r, err_r):
                os.close(fd)
            self._report(key, AttemptOutcome(-signal.SIGKILL, "", (), attempt.store_error))
            return None
        if pending is not None:
            _signal_group(attempt, pending)
        return attempt

    def _watch(self, attempt: _Attempt, active: list[_Attempt]) -> None:
        """From now on the executor's thread drains the attempt's output and waits for it."""
        assert self._selector is not None
        active.append(attempt)
        for capture in attempt.captures:
            os.set_blocking(capture.fd, False)
            self._selector.register(capture.fd, selectors.EVENT_READ, (attempt, capture))
        self._watch_exit(attempt)

    def _watch_exit(self, attempt: _Attempt) -> None:
        assert self._selector is not None
        if self._use_pidfd:
            self._selector.register(os.pidfd_open(attempt.pid), selectors.EVENT_READ, attempt)
        else:
            threading.Thread(
                target=self._wait_exit, args=(attempt,), name=f"wf-wait-{attempt.pid}", daemon=True
            ).start()

    def _wait_exit(self, attempt: _Attempt) -> None:
        """Without pidfds: a thread per attempt, blocked until its main process exits."""
        if oscaps.HAS_WAITID:
            os.waitid(os.P_PID, attempt.pid, os.WEXITED | os.WNOWAIT)
        else:
            # Reaped at once (no way to wait without reaping): a signal racing this may find the
            # pid gone, never reused while the group lives (see the module docstring).
            returncode = attempt.reap()
            with attempt.guard:
                attempt.returncode = returncode
                attempt.reaped = True
        self._post(("exited", attempt))

    def _announce(self, attempt: _Attempt) -> None:
        """Report ``Started`` with the leader's start id, read once the leader is past its start.

        Reading ``/proc/<pid>/stat`` while a process is being exec'd (or is exiting) blocks for
        up to a millisecond; a short step is therefore read as the zombie it has become, a long
        one ``_ANNOUNCE_AFTER_SEC`` after its spawn, when its journal line gets the start id too.
        """
        attempt.announced = True
        start_id = procinfo.start_id(attempt.pid, zombie_too=True)
        if attempt.phase is _Phase.RUNNING:
            leader = pidjournal.Leader(attempt.pid, start_id, attempt.pipes)
            try:
                self._journal.append(attempt.spec.mark, leader)
            except AttemptStoreError as exc:
                attempt.store_error = str(exc)
                _signal_group(attempt, signal.SIGKILL)
        self._report(attempt.key, Started(attempt.pid, attempt.pid, start_id))

    def _exited(self, attempt: _Attempt) -> None:
        attempt.phase = _Phase.DRAINING
        if not attempt.announced:
            self._announce(attempt)
        _signal_group(attempt, signal.SIGTERM)
        now = time.monotonic()
        attempt.deadline = now + attempt.spec.kill_grace_sec
        attempt.check_at = now if attempt.output_done else now + _GROUP_CHECK_AFTER_SEC

    def _pump(self, attempt: _Attempt, capture: _Capture) -> None:
        """Move what a pipe holds into its file; at end of file, close both."""
        try:
            moved = self._move(capture, attempt)
        except BlockingIOError:
            return
        if moved == 0:
            self._end_capture(capture)
            if attempt.output_done and attempt.phase is _Phase.DRAINING:
                attempt.check_at = time.monotonic()

    def _move(self, capture: _Capture, attempt: _Attempt) -> int:
        """Bytes moved from the pipe to the file (0 at end of file); the file is created at the
        first byte, so a silent stream leaves nothing behind."""
        if capture.file_fd < 0:
            data = os.read(capture.fd, _CHUNK)
            if data and attempt.store_error is None:
                self._write_first(capture, attempt, data)
            return len(data)
        try:
            if _HAS_SPLICE:
                return os.splice(capture.fd, capture.file_fd, _CHUNK * 16)
            data = os.read(capture.fd, _CHUNK)
            _write_fully(capture.file_fd, data)
            return len(data)
        except BlockingIOError:
            raise
        except OSError as exc:
            self._lose_output(capture, attempt, exc)
            return len(os.read(capture.fd, _CHUNK))

    def _write_first(self, capture: _Capture, attempt: _Attempt, data: bytes) -> None:
        try:
            make_step_dir(os.path.dirname(capture.path))
            capture.file_fd = create_file(capture.path, os.O_WRONLY | os.O_TRUNC)
        except AttemptStoreError as exc:
            attempt.store_error = str(exc)
            return
        try:
            _write_fully(capture.file_fd, data)
        except OSError as exc:
            self._lose_output(capture, attempt, exc)

    @staticmethod
    def _lose_output(capture: _Capture, attempt: _Attempt, exc: OSError) -> None:
        """The file cannot take more: the run stops (exit 4); meanwhile the pipe is drained
        into nothing, so the step never blocks on a full pipe."""
        attempt.store_error = str(store_error(capture.path, "cannot write", exc))
        os.close(capture.file_fd)
        capture.file_fd = -1

    def _end_capture(self, capture: _Capture) -> None:
        assert self._selector is not None
        if capture.eof:
            return
        capture.eof = True
        self._selector.unregister(capture.fd)
        os.close(capture.fd)
        if capture.file_fd >= 0:
            os.close(capture.file_fd)
            capture.file_fd = -1

    def _advance(self, active: list[_Attempt]) -> None:
        """Move every attempt whose time has come on to its next phase; one scan for all."""
        now = time.monotonic()
        for attempt in active:
            if not attempt.announced and attempt.check_at <= now:
                self._announce(attempt)
        due = [a for a in active if a.phase is _Phase.DRAINING and a.check_at <= now]
        if due:
            with self._live_guard:
                leaders = frozenset(attempt.pid for attempt in self._live.values())
            found = self._scanner.scan(leaders)
            for attempt in due:
                self._drain_step(attempt, found, now)
        for attempt in [a for a in active if a.phase is _Phase.CLOSING]:
            if not attempt.output_done and attempt.check_at <= now and not attempt.holders_checked:
                self._look_for_holders(attempt, now)
            elif attempt.output_done or attempt.check_at <= now:
                active.remove(attempt)
                self._finish(attempt)

    def _drain_step(
        self, attempt: _Attempt, found: list[procinfo.MarkedProcess], now: float
    ) -> None:
        mark, pgid = attempt.spec.mark, attempt.pid
        ours = [p for p in found if p.key == mark]
        in_group = any(p.pgid == pgid for p in ours)
        if in_group and now < attempt.deadline:
            attempt.pause = min(attempt.pause * 2, 0.2)
            attempt.check_at = min(now + attempt.pause, attempt.deadline)
            return
        _signal_group(attempt, signal.SIGKILL)
        attempt.phase = _Phase.CLOSING
        attempt.check_at = now + _GROUP_CHECK_AFTER_SEC
        leaked = [p for p in ours if p.pgid != pgid]
        if leaked:
            self._kill_leaked(attempt, leaked)

    def _look_for_holders(self, attempt: _Attempt, now: float) -> None:
        """The group is gone but the output pipes are still open: whoever holds them inherited
        them from the attempt (it left the group and shed its mark). Linux only."""
        attempt.holders_checked = True
        attempt.check_at = now + KILL_WAIT_SEC
        me = os.getpid()
        pids = {
            pid
            for pids in (procinfo.pipe_holders(set(attempt.pipes)) or {}).values()
            for pid in pids
        }
        found = [procinfo.holder(pid, attempt.spec.mark) for pid in pids - {me}]
        leaked = [p for p in found if p is not None and p.pgid != attempt.pid]
        if leaked:
            self._kill_leaked(attempt, leaked)

    def _kill_leaked(self, attempt: _Attempt, leaked: list[procinfo.MarkedProcess]) -> None:
        """Terminate processes that escaped the group, in a helper thread (it waits a grace
        period); the attempt is reported once they are gone."""
        attempt.phase = _Phase.LEAKS
        attempt.leaked += tuple(p.pid for p in leaked)
        threading.Thread(
            target=self._terminate_leaks, args=(attempt, leaked), name="wf-leaks", daemon=True
        ).start()

    def _terminate_leaks(self, attempt: _Attempt, leaked: list[procinfo.MarkedProcess]) -> None:
        terminate(leaked, attempt.spec.kill_grace_sec)
        self._post(("leaks-done", attempt))

    def _finish(self, attempt: _Attempt) -> None:
        for capture in attempt.captures:
            self._end_capture(capture)
        with attempt.guard:
            if not attempt.reaped:
                attempt.returncode = attempt.reap()
                attempt.reaped = True
        with self._live_guard:
            self._live.pop(attempt.key, None)
        assert attempt.returncode is not None
        if attempt.leaked:
            append_note(attempt.spec.stderr_path, leak_note(attempt.leaked))
        # Only a failed or stopped attempt's record carries a stderr tail: skip the read on success.
        tail = read_tail(attempt.spec.stderr_path, STDERR_TAIL_BYTES) if attempt.returncode else ""
        self._report(
            attempt.key,
            AttemptOutcome(attempt.returncode, tail, attempt.leaked, attempt.store_error),
        )


def _timed(attempt: _Attempt) -> bool:
    """Whether the attempt moves on at ``check_at`` (rather than on an event)."""
    return attempt.phase in _TIMED or (attempt.phase is _Phase.RUNNING and not attempt.announced)


def _stronger(current: int | None, signum: int) -> int:
    """Of two signals for the same attempt, the one to deliver (SIGKILL beats SIGTERM)."""
    return signal.SIGKILL if signal.SIGKILL in (current, signum) else signum


def _signal_group(attempt: _Attempt, signum: int) -> None:
    """Signal the attempt's group unless its leader was reaped (its id may be reused since)."""
    with attempt.guard:
        if not attempt.reaped:
            killpg(attempt.pid, signum)


def _write_spawn_error(path: str, message: str) -> None:
    """The reason an attempt could not start, in its stderr (``wf logs`` shows it)."""
    append_note(path, f"wf: {message}\n")


def _write_fully(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
