"""The imperative shell: one scheduler thread that owns a run's state and its log.

Each turn of the loop::

    observations (attempt exits, stop requests) --+
                                                  +--> fold --> append + fsync (one batch)
    decide(state, now) until it has nothing more -+              |
                                                                 v
                                    hooks (durable records, seq order) --> act: spawn / signal

The fold, the batch and the hooks are ``wf_engine.runtime.commit.Commit``'s, as they are for
creating and resuming a run; the loop only says what to record and acts on what was committed.

Nothing is acted on before it is durable: a RUNNING record is fsynced before its process is
spawned, a SUCCEEDED record only follows an observed exit 0, and a dependent becomes READY in
the same batch as its dependencies' SUCCEEDED or a later one (a batch is durable as a whole).
Attempts are started, signalled and heard from only through an executor
(``wf_engine.runtime.executor``; the local one by default), whose thread never touches the
state: it puts small messages on ``self._inbox`` and the loop blocks on that queue with a
timeout equal to the next timer (a retry falling due, a timeout, a SIGKILL escalation). There is
no polling sleep.

The clocks and that queue come from a ``Timebase`` (``wf_engine.runtime.timebase``): real time
by default; the simulation tier passes a virtual one, and the loop does not know the difference.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import os
import queue
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from wf_engine.core import clock
from wf_engine.core.decide import (
    AttemptResult,
    attempt_finished,
    command_event,
    decide,
    next_retry_at,
)
from wf_engine.core.events import CancelRequested, Event, RunnerStarted, Spawned, StepTransition
from wf_engine.core.model import MAX_SECONDS
from wf_engine.core.states import RunStatus, StepState
from wf_engine.errors import StoreError
from wf_engine.log.storefiles import open_regular_fd
from wf_engine.plugins.manager import BadHookValue, Plugins
from wf_engine.runtime import procinfo
from wf_engine.runtime.commit import Commit
from wf_engine.runtime.executor import (
    AttemptKey,
    AttemptOutcome,
    AttemptStoreError,
    Executor,
    LaunchSpec,
    News,
    Report,
    SpawnFailed,
    Started,
)
from wf_engine.runtime.launch import direct_argv
from wf_engine.runtime.localexec import LocalExecutor
from wf_engine.runtime.ownership import RunLock
from wf_engine.runtime.stopsignals import StopSignals
from wf_engine.runtime.store import RunPaths
from wf_engine.runtime.timebase import REAL_TIME, Inbox, Timebase


@dataclass(frozen=True, slots=True)
class _Reported:
    """What the executor said about an attempt: started, could not start, or ended."""

    step: int
    attempt: int
    news: News


@dataclass(frozen=True, slots=True)
class _StopRequest:
    """Ctrl-C, SIGTERM, or ``wf cancel``; ``force`` skips the grace period (second Ctrl-C)."""

    force: bool


_Message = _Reported | _StopRequest

#: Builds the executor a runner uses, given where the run lives and where outcomes go.
ExecutorFactory = Callable[[RunPaths, Report], Executor]

#: How long a ``spawned`` record may wait for company before it is committed on its own. It
#: is an observation no decision waits on, and the pid journal (``steps/.pids``) names the
#: process meanwhile, so it usually rides along with the attempt's end or the next decision
#: instead of costing an fsync of its own.
SPAWNED_COMMIT_DELAY_SEC = 0.2


def read_cancel_request(paths: RunPaths) -> CancelRequested | None:
    """The request ``wf cancel`` left in the run folder, if any (advisory).

    Read without blocking (a FIFO planted in its place is ignored), and taken apart defensively:
    only a ``source`` string and a ``grace_sec`` within the documented bounds are kept.
    """
    try:
        fd = open_regular_fd(paths.cancel_request)
    except (OSError, StoreError):
        return None
    try:
        value = json.loads(os.read(fd, 64 * 1024))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    if not isinstance(value, dict):
        return None
    source = str(value.get("source") or "wf cancel")[:100]
    grace = value.get("grace_sec")
    if (
        isinstance(grace, int | float)
        and not isinstance(grace, bool)
        and math.isfinite(grace)
        and 0 <= grace <= MAX_SECONDS
    ):
        return CancelRequested(source, grace_sec=float(grace))
    return CancelRequested(source)


class Runner:
    """Executes one run to its end (or to a stop), as the run's single owner."""

    def __init__(
        self,
        paths: RunPaths,
        commit: Commit,
        plugins: Plugins,
        lock: RunLock,
        signals: StopSignals | None = None,
        executor: ExecutorFactory = LocalExecutor,
        timebase: Timebase = REAL_TIME,
    ) -> None:
        self.paths = paths
        self._commit = commit
        self.state = commit.state
        self.plugins = plugins
        self._lock = lock
        #: Installed by the command before the run was created or taken over, so a signal at
        #: any instant of start-up reaches this runner as a stop request.
        self._signals = signals
        #: Wall time (records, decisions), monotonic time (timers) and the queue the loop waits
        #: on: the real ones unless a simulation drives this runner.
        self._now_us = timebase.now_us
        self._monotonic = timebase.monotonic
        self._inbox: Inbox[_Message] = timebase.inbox()
        #: Step index -> attempt number of every attempt started and not yet reported over.
        self._attempts: dict[int, int] = {}
        self.executor = executor(paths, self._on_report)
        self._timed_out: set[int] = set()
        self._stopped: set[int] = set()
        self._timers: list[tuple[float, int, str, int, int]] = []
        self._tiebreak = itertools.count()
        self._pending: list[Event | AttemptResult] = []
        self._stop_asked = False
        self._flush_by = 0.0
        self._base_env = dict(os.environ)

    @property
    def run_id(self) -> str:
        return self.state.run_id

    # -- entry points ------------------------------------------------------------------------

    def release(self) -> None:
        """Give up ownership without running (``--detach`` hands the run to another process)."""
        self.executor.close()
        self._commit.close()
        self._lock.close()

    def execute(self) -> RunStatus:
        """Run until ``run_finished``; on a log write failure, kill the steps and re-raise."""
        signals = self._signals or StopSignals().install()
        signals.listen(lambda force: self._inbox.put(_StopRequest(force)))
        try:
            if read_cancel_request(self.paths) is not None:
                self._inbox.put(_StopRequest(force=False))
            while True:
                now = self._now_us()
                self._fire_timers()
                self._observe(now)
                self._decide(now)
                if self._commit.pending:
                    self._act(self._commit.commit(now))
                if self.state.finished is not None:
                    return self.state.finished
                self._wait()
        except BaseException:
            self.executor.kill_all()
            raise
        finally:
            signals.listen(None)
            if self._signals is None:
                signals.restore()
            self.executor.close()
            self._commit.close()
            self._lock.close()

    # -- the loop ----------------------------------------------------------------------------

    def _observe(self, now: int) -> None:
        """Record what happened since the last turn: spawns, exits, stop requests."""
        while True:
            try:
                self._receive(self._inbox.get_nowait())
            except queue.Empty:
                break
        pending, self._pending = self._pending, []
        for item in pending:
            self._commit.record(
                attempt_finished(self.state, item, now) if isinstance(item, AttemptResult) else item
            )

    def _receive(self, message: _Message) -> None:
        if isinstance(message, _Reported):
            self._heard(message.step, message.attempt, message.news)
        elif message.force:
            self.executor.kill_all()
        if isinstance(message, _StopRequest) and not self._stop_asked:
            self._stop_asked = True
            request = read_cancel_request(self.paths) or CancelRequested("signal")
            if not self.state.cancel_requested:
                self._pending.append(request)

    def _heard(
        self, index: int, attempt: int, news: Started | SpawnFailed | AttemptOutcome
    ) -> None:
        if isinstance(news, Started):
            if not self._pending:
                self._flush_by = self._monotonic() + SPAWNED_COMMIT_DELAY_SEC
            step_id = self.state.step_id(index)
            self._pending.append(Spawned(step_id, attempt, news.pid, news.pgid, news.start_id))
            return
        self._attempts.pop(index, None)
        if isinstance(news, SpawnFailed):
            self._pending.append(AttemptResult(index, attempt, spawn_error=news.message))
            return
        if news.store_error is not None:
            raise AttemptStoreError(news.store_error)
        self._pending.append(
            AttemptResult(
                step=index,
                attempt=attempt,
                exit_code=None if news.interrupted is not None else news.returncode,
                timed_out=index in self._timed_out,
                stopped=index in self._stopped,
                stderr_tail=news.stderr_tail,
                leaked_pids=news.leaked_pids,
                interrupted=news.interrupted,
            )
        )
        self._timed_out.discard(index)
        self._stopped.discard(index)

    def _decide(self, now: int) -> None:
        """Ask ``decide`` until it has nothing more to say; each answer sees the last folded."""
        while commands := decide(self.state, now):
            for command in commands:
                self._commit.record(command_event(self.state, command))

    def _act(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, StepTransition) and event.to is StepState.RUNNING:
                self._spawn(self.state.workflow.index_of(event.step), event.attempt)
        if self.state.stopping:
            for index, attempt in list(self._attempts.items()):
                if index not in self._stopped:
                    self._stopped.add(index)
                    self.executor.signal((index, attempt), signal.SIGTERM)
                    self._schedule("kill", index, attempt, self._stop_grace(index))

    def _wait(self) -> None:
        """Block until there is something to record or a timer is due.

        ``spawned`` records alone do not end the wait until ``SPAWNED_COMMIT_DELAY_SEC`` has
        passed: they wait for company (usually the attempt's own end).
        """
        while not any(not isinstance(item, Spawned) for item in self._pending):
            timeout = self._next_timer_in(self._now_us())
            if self._pending:
                flush_in = self._flush_by - self._monotonic()
                if flush_in <= 0:
                    return
                timeout = flush_in if timeout is None else min(timeout, flush_in)
            if timeout is None and not self._attempts:
                raise RuntimeError("scheduler has nothing to wait for (engine bug)")
            try:
                message = self._inbox.get(timeout=timeout)
            except queue.Empty:
                return
            self._receive(message)
            if not (isinstance(message, _Reported) and isinstance(message.news, Started)):
                return

    def _next_timer_in(self, now: int) -> float | None:
        delays = []
        if self._timers:
            delays.append(self._timers[0][0] - self._monotonic())
        retry_at = None if self.state.stopping else next_retry_at(self.state)
        if retry_at is not None:
            delays.append((retry_at - now) / clock.US_PER_SEC)
        # Bounded: a retry_at far away (an old log, a clock that jumped) must not overflow a wait;
        # waking early is harmless, the loop checks again.
        return min(max(0.0, min(delays)), MAX_SECONDS) if delays else None

    # -- processes ---------------------------------------------------------------------------

    def _spawn(self, index: int, attempt: int) -> None:
        step = self.state.workflow.steps[index]
        argv = (
            ["/bin/sh", "-c", step.command] if isinstance(step.command, str) else list(step.command)
        )
        env = {
            **self._base_env,
            **dict(step.env),
            "WF_RUN_ID": self.run_id,
            "WF_STEP_ID": step.id,
            "WF_ATTEMPT": str(attempt),
            "WF_RUN_DIR": self.paths.root,
        }
        try:
            argv = self.plugins.step_command(self.run_id, step.id, attempt, argv)
            self.plugins.step_env(self.run_id, step.id, attempt, env)
        except BadHookValue as exc:
            self._pending.append(AttemptResult(index, attempt, spawn_error=str(exc)))
            return
        # Set last, so no plugin can take away what finds this attempt's processes later.
        mark = procinfo.attempt_key(self.paths.root, step.id, attempt)
        env[procinfo.ATTEMPT_KEY_VAR] = mark
        direct = direct_argv(argv)
        spec = LaunchSpec(
            argv=argv if direct is None else direct,
            cwd=os.path.normpath(os.path.join(self.state.options.base_dir, step.cwd or "")),
            env=env,
            stdout_path=self.paths.attempt_file(step.id, attempt, "out"),
            stderr_path=self.paths.attempt_file(step.id, attempt, "err"),
            kill_grace_sec=step.kill_grace_sec,
            mark=mark,
            shell_fallback=None if direct is None else argv,
            resources=dict(step.resources),
        )
        self.executor.start((index, attempt), spec)
        self._attempts[index] = attempt
        if step.timeout_sec is not None:
            self._schedule("timeout", index, attempt, step.timeout_sec)

    def _on_report(self, key: AttemptKey, news: News) -> None:
        """Runs in the executor's thread: only report."""
        self._inbox.put(_Reported(key[0], key[1], news))

    def _schedule(self, kind: str, index: int, attempt: int, delay_sec: float) -> None:
        deadline = self._monotonic() + delay_sec
        heapq.heappush(self._timers, (deadline, next(self._tiebreak), kind, index, attempt))

    def _fire_timers(self) -> None:
        now = self._monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, kind, index, attempt = heapq.heappop(self._timers)
            if self._attempts.get(index) != attempt:
                continue
            if kind == "timeout":
                self._timed_out.add(index)
                self.executor.signal((index, attempt), signal.SIGTERM)
                grace = self.state.workflow.steps[index].kill_grace_sec
                self._schedule("kill", index, attempt, grace)
            else:
                self.executor.signal((index, attempt), signal.SIGKILL)

    def _stop_grace(self, index: int) -> float:
        if self.state.cancel_grace_sec is not None:
            return self.state.cancel_grace_sec
        return self.state.workflow.steps[index].kill_grace_sec


def runner_started_event() -> RunnerStarted:
    return RunnerStarted(os.getpid(), tuple(sys.argv[1:]))
