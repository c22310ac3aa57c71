"""The simulated outside world of a run: virtual time, the attempts' processes, a user's cancel.

The runner under test is the real ``wf_engine.runtime.runner.Runner``. It meets this world only
through its two seams, so nothing in it knows it is simulated::

    Runner --Timebase--> World.now_us / monotonic        virtual clocks, one integer of µs
           <-----------  _Inbox.get(timeout)             advances virtual time to the next event
           --Executor--> SimulatedExecutor.start/signal  a Process: scripted exit, hang, deafness
           <-----------  report(Started | SpawnFailed | AttemptOutcome), at virtual instants

Nothing here starts a thread, sleeps or spawns: a "process" is a record with scheduled events
(its start, its exit, the death a signal causes) on one heap ordered by (time, insertion), so the
same scenario always unfolds in the same order. The world outlives runners: when a runner dies
(``crash``) its processes live on (a SIGKILLed runner's steps do) unless the power went, their
news reaching nobody, until a new runner's ``clear_leftovers`` kills them.

The world also watches what only it can see, as a step's own side effects would show it: two
processes of one step alive at once, an attempt started twice, a step executed again after its
SUCCEEDED was durable, a step a rerun carried over (reused, or left out by ``--only``) executed
at all. Each is a *violation*, reported with the history, not raised (the runner must not be
able to catch it).
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import json
import math
import os
import queue
import signal
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wf_engine.core.fold import RunState
from wf_engine.runtime.executor import (
    AttemptKey,
    AttemptOutcome,
    LaunchSpec,
    News,
    Notify,
    Report,
    SpawnFailed,
    Started,
)
from wf_engine.runtime.stopsignals import StopSignals
from wf_engine.runtime.store import RunPaths
from wf_engine.runtime.timebase import Inbox

from .scenario import Outcome, Scenario

#: Virtual wall time of a run's start (2030-03-17): a fixed value, so logs are byte-identical.
EPOCH_US = 1_900_000_000_000_000
#: Virtual time from ``start`` to the ``Started`` report, and from a signal to the death it causes.
SPAWN_US = 200
SIGNAL_US = 1_000
#: Waits a runner may make in one history before it counts as stuck (a livelock).
MAX_WAITS = 200_000


class SimulatedCrash(BaseException):
    """The runner's process dies here (SIGKILL or power cut): nothing after this point runs.

    A ``BaseException``, like the ``SystemExit`` a real death resembles, so no ``except
    Exception`` in the engine can take it for an error it handles.
    """


class SimulationStuck(Exception):
    """The runner waits for nothing that can ever come, or spins without virtual time passing."""


@dataclass(slots=True)
class Process:
    """One execution of an attempt, as the step's side effects would witness it."""

    index: int
    step: str
    attempt: int
    pid: int
    outcome: Outcome
    owner: SimulatedExecutor
    #: Generation of the runner that started it (1 for the first).
    runner: int
    started_us: int
    alive: bool = True
    ended_us: int | None = None
    #: How it ended: ``exit 0``, ``exit -9``, ``killed by take-over``, ``power cut``, ...
    end: str = ""


class SimulatedSignals(StopSignals):
    """Stop requests sent by the simulated user; never touches the process's signal handlers."""

    def install(self) -> SimulatedSignals:
        return self

    def deliver(self) -> None:
        """What SIGTERM from ``wf cancel`` does to a live runner."""
        self._handle(signal.SIGTERM, None)


class _Inbox:
    """The runner's queue: ``get`` with an empty queue runs the world until news arrives."""

    def __init__(self, world: World) -> None:
        self._world = world
        self._items: deque[Any] = deque()

    def put(self, item: Any) -> None:
        self._items.append(item)

    def get_nowait(self) -> Any:
        if not self._items:
            raise queue.Empty
        return self._items.popleft()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if not self._items:
            self._world.wait(self, timeout if block else 0.0)
        return self.get_nowait()

    @property
    def has_news(self) -> bool:
        return bool(self._items)


class World:
    """Virtual time and every process of one simulated run, across crashes and resumes."""

    def __init__(
        self,
        scenario: Scenario,
        paths: RunPaths,
        start_us: int = EPOCH_US,
        carried: Mapping[str, str] | None = None,
    ) -> None:
        """``start_us``: when the run is created (a rerun's comes after its origin's end);
        ``carried``: a rerun's carried-over steps and their reason, which must never execute."""
        self.scenario = scenario
        self.paths = paths
        self.now = start_us
        self.carried = carried or {}
        self._events: list[tuple[int, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._waits = 0
        self._inbox: _Inbox | None = None
        #: The live runner's parts (``None`` between a crash and the next runner).
        self.executor: SimulatedExecutor | None = None
        self.signals: SimulatedSignals | None = None
        #: The live runner's state: attempts are scripted by the failures it has folded.
        self.state: RunState | None = None
        self.generation = 0
        self.processes: list[Process] = []
        self._started: set[tuple[int, int]] = set()
        #: Steps whose SUCCEEDED survived a crash and is durable, with its seq: they must never
        #: execute again. ``_succeeded`` has those read back but maybe not fsynced yet: seq and
        #: the offset where the record ends, promoted once an fsync covers it.
        self.durably_succeeded: dict[str, int] = {}
        self._succeeded: dict[str, tuple[int, int]] = {}
        self.violations: list[str] = []
        self.cancel_sent_us: int | None = None
        if scenario.cancel_at_sec is not None:
            self._at(start_us + round(scenario.cancel_at_sec * 1e6), self._cancel)

    # -- the Timebase the runner is given --------------------------------------------------

    def now_us(self) -> int:
        return self.now

    def monotonic(self) -> float:
        return (self.now - EPOCH_US) / 1e6

    def inbox(self) -> Inbox[Any]:
        self._inbox = _Inbox(self)
        return self._inbox

    # -- running the world -----------------------------------------------------------------

    def wait(self, inbox: _Inbox, timeout: float | None) -> None:
        """Run events until news reaches ``inbox`` or ``timeout`` virtual seconds passed."""
        self._waits += 1
        if self._waits > MAX_WAITS:
            raise SimulationStuck(f"the runner waited {MAX_WAITS} times without finishing")
        # Rounded up: a timer must be due when the wait for it ends, never a float's hair before.
        deadline = None if timeout is None else self.now + math.ceil(timeout * 1e6)
        while self._events and (deadline is None or self._events[0][0] <= deadline):
            at, _, action = heapq.heappop(self._events)
            self.now = max(self.now, at)
            action()
            if inbox.has_news:
                return
        if deadline is None:
            raise SimulationStuck("the runner waits with no timeout and nothing can happen")
        self.now = max(self.now, deadline)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass with no runner (between a crash and a resume)."""
        deadline = self.now + round(seconds * 1e6)
        while self._events and self._events[0][0] <= deadline:
            at, _, action = heapq.heappop(self._events)
            self.now = max(self.now, at)
            action()
        self.now = deadline

    def runner_started(self, state: RunState, signals: SimulatedSignals) -> int:
        """A new runner owns the run; returns its (simulated) pid."""
        self.generation += 1
        self.state, self.signals = state, signals
        return 100 + self.generation

    def crash(self, power_loss: bool) -> None:
        """The runner dies; with the power, every process does too."""
        if self.executor is not None:
            self.executor.live = False
        self.executor = self.signals = self.state = self._inbox = None
        if power_loss:
            for process in self.processes:
                if process.alive:
                    self._died(process, "power cut")

    def log_survived(self, records: list[Any], ends: list[int], synced: int) -> None:
        """A crash left ``records`` (record k ends at ``ends[k - 1]``), durable up to ``synced``."""
        self._succeeded = {
            record["step"]: (record["seq"], ends[line])
            for line, record in enumerate(records)
            if record["type"] == "step" and record["to"] == "SUCCEEDED"
        }
        self.synced(synced)

    def synced(self, size: int) -> None:
        """An fsync made the log's first ``size`` bytes durable."""
        for step, (seq, end) in self._succeeded.items():
            if end <= size:
                self.durably_succeeded.setdefault(step, seq)

    def _at(self, at_us: int, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (at_us, next(self._order), action))

    def _cancel(self) -> None:
        """``wf cancel``: the request file first, then SIGTERM to the owner if one lives."""
        self.cancel_sent_us = self.now
        request = {"source": "wf cancel", "grace_sec": self.scenario.cancel_grace_sec}
        with open(self.paths.cancel_request, "w", encoding="utf-8") as file:
            json.dump(request, file)
        if self.signals is not None:
            self.signals.deliver()

    # -- processes -------------------------------------------------------------------------

    def start(self, owner: SimulatedExecutor, key: AttemptKey) -> None:
        index, attempt = key
        step = self.scenario.workflow.steps[index].id
        for other in self.processes:
            if other.alive and other.index == index:
                self.violations.append(
                    f"two attempts of step {step!r} overlapped: attempt {attempt} started while "
                    f"attempt {other.attempt} (pid {other.pid}, runner {other.runner}) still ran"
                )
        if step in self.carried:
            self.violations.append(
                f"step {step!r} was carried over by the rerun ({self.carried[step]}) and "
                f"executed in it (attempt {attempt})"
            )
        if key in self._started:
            self.violations.append(f"attempt {attempt} of step {step!r} was started twice")
        self._started.add(key)
        if step in self.durably_succeeded:
            self.violations.append(
                f"step {step!r} SUCCEEDED durably before a crash (seq "
                f"{self.durably_succeeded[step]}) and executed again after it (attempt {attempt})"
            )
        assert self.state is not None, "an attempt started with no runner"
        outcome = self.scenario.scripts[index].outcome(self.state.steps[index].failures)
        pid = 1000 + len(self.processes)
        process = Process(index, step, attempt, pid, outcome, owner, self.generation, self.now)
        self.processes.append(process)
        if outcome.spawn_error:
            self._died(process, "could not start")
            failed = SpawnFailed(f"simulated: {step} cannot start")
            self._at(self.now + SPAWN_US, lambda: owner.report(key, failed))
            return
        started = Started(pid, pid, f"sim:{pid}")
        self._at(self.now + SPAWN_US, lambda: owner.report(key, started))
        if outcome.exit_code is not None:
            code = outcome.exit_code
            ends = self.now + SPAWN_US + round(outcome.duration_sec * 1e6)
            self._at(ends, lambda: self._exit(process, code))

    def signal(self, key: AttemptKey, signum: int) -> None:
        for process in self.processes:
            heard = signum == signal.SIGKILL or not process.outcome.ignores_term
            if process.alive and (process.index, process.attempt) == key and heard:
                self._at(self.now + SIGNAL_US, functools.partial(self._exit, process, -signum))

    def kill_all(self, owner: SimulatedExecutor) -> None:
        """A live runner stopping on an error kills its attempts; a dead one kills nothing."""
        for process in self.processes:
            if process.alive and process.owner is owner and owner.live:
                kill = functools.partial(self._exit, process, -signal.SIGKILL)
                self._at(self.now + SIGNAL_US, kill)

    def clear_leftovers(self) -> None:
        """Every process still carrying the run's mark is killed before anything starts."""
        for process in self.processes:
            if process.alive:
                self._died(process, "killed by take-over")

    def _exit(self, process: Process, code: int) -> None:
        if process.alive:
            self._died(process, f"exit {code}")
            news = AttemptOutcome(code, "" if code == 0 else f"{process.step}: exit {code}")
            process.owner.report((process.index, process.attempt), news)

    def _died(self, process: Process, how: str) -> None:
        process.alive, process.ended_us, process.end = False, self.now, how


class SimulatedExecutor:
    """The ``Executor`` protocol over the world: what a runner starts becomes a ``Process``.

    One per runner, as a real executor is; once its runner dies (``live`` false) the news of
    its processes reaches nobody. Subclass it to model a faulty executor (a test does, to show
    a broken invariant is caught): the engine itself is never changed for a test.
    """

    def __init__(self, world: World, paths: RunPaths, report: Report) -> None:
        self.world = world
        self._report = report
        self.live = True
        world.executor = self

    def start(self, key: AttemptKey, spec: LaunchSpec) -> None:
        self.world.start(self, key)

    def signal(self, key: AttemptKey, signum: int) -> None:
        self.world.signal(key, signum)

    def kill_all(self) -> None:
        self.world.kill_all(self)

    def close(self) -> None:
        """Nothing to release: no thread, no descriptor."""

    def clear_leftovers(
        self, state: RunState, notify: Notify, stop_requested: Callable[[], bool]
    ) -> None:
        self.world.clear_leftovers()

    def report(self, key: AttemptKey, news: News) -> None:
        if self.live:
            self._report(key, news)


@dataclass(frozen=True, slots=True)
class ExecutorFactory:
    """Builds the executor class ``kind`` on ``world`` for each runner (``Runner``'s factory)."""

    world: World
    kind: type[SimulatedExecutor] = field(default=SimulatedExecutor)

    def __call__(self, paths: RunPaths, report: Report) -> SimulatedExecutor:
        return self.kind(self.world, paths, report)


def remove_cancel_request(paths: RunPaths) -> None:
    """A fresh history starts with no ``wf cancel`` request in the (reused) run folder."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(paths.cancel_request)
