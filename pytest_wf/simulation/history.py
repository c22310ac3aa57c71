"""One simulated history: create a run, crash it as planned, resume it, until it finishes.

Creating and resuming follow ``wf_engine.runtime.takeover`` step for step (the first batch,
then the runner; on resume: read the log with the real reader, fold it, cut a torn tail, clear
the leftovers, record the new runner and the interrupted steps) with the real ``EventLog``,
``Commit`` and ``Runner``. Only what binds takeover to the disk and the host is replaced: the
log's bytes live in a ``MemorySink``, the run lock is a held-by-nobody ``RunLock``, and the
runner's pid and argv are fixed values, so one seed always writes the same bytes.

A crash is planned at a record ``seq`` and a point (``fault_injection.crash.POINTS``): the
sink raises ``SimulatedCrash`` before the write of the batch holding that record, between its
write and its fsync (also ``power_loss``), or right after its fsync. What survives is what a
real crash leaves: a SIGKILL keeps every written byte; a power cut keeps the fsynced bytes and a
seeded random subset of the rest (``fault_injection.logfaults.lose_unsynced``, the crash
matrix's own model), and kills every process.

A rerun (``RerunOf``) is created as ``takeover.create_run`` creates one for ``wf rerun``: a run of
its own (``RERUN_ID``, its own folder and log) whose ``run_created`` names the origin and whose
first batch holds the steps ``carry_over`` makes of the plan; from there it runs, crashes and
resumes as any run, in a world that starts when the origin ended.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pluggy

from fault_injection.logfaults import lose_unsynced
from wf_engine.core.events import RunCreated, RunnerStarted, RunOptions
from wf_engine.core.fold import RunState, fold_records
from wf_engine.core.records import Record
from wf_engine.core.rerun import RerunPlan, carry_over
from wf_engine.errors import CorruptLog, IllegalTransition
from wf_engine.log.eventlog import EventLog, LogScan
from wf_engine.plugins import hookspecs
from wf_engine.plugins.manager import Plugins
from wf_engine.runtime.commit import Commit
from wf_engine.runtime.ownership import RunLock
from wf_engine.runtime.runner import Runner
from wf_engine.runtime.store import RunPaths
from wf_engine.runtime.takeover import open_new_run, open_taken_over_run

from .scenario import RerunSpec, Scenario
from .world import (
    ExecutorFactory,
    Process,
    SimulatedCrash,
    SimulatedExecutor,
    SimulatedSignals,
    SimulationStuck,
    World,
    remove_cancel_request,
)

RUN_ID = "sim"
RERUN_ID = "sim-rerun"
#: The run's folder as the log records it (``base_dir``): fixed, so logs do not depend on where
#: the scratch folder is.
BASE_DIR = "/simulated"


@dataclass(frozen=True, slots=True)
class Crash:
    """Kill the runner at record ``seq`` at ``point``; resume ``restart_sec`` virtual s later."""

    seq: int
    point: str
    #: ``power_loss`` only: which of the unsynced pages survive.
    loss_seed: int = 0
    restart_sec: float = 0.5

    def describe(self) -> str:
        return f"crash at seq {self.seq} ({self.point})"


class MemorySink:
    """An event log's bytes in memory (``wf_engine.log.eventlog.LogSink``), crashing on plan.

    Counts records by their newline (JSON Lines: one record, one line), so it knows which
    ``seq`` each write holds without decoding anything.
    """

    def __init__(
        self,
        data: bytes,
        records: int,
        plan: collections.deque[Crash],
        synced: int = 0,
        on_sync: Callable[[int], None] = lambda size: None,
    ) -> None:
        self.data = bytearray(data)
        #: Bytes an fsync made durable; the rest would be lost to a power cut.
        self.synced = synced
        self.records = records
        self._plan = plan
        self._on_sync = on_sync
        self._due: Crash | None = None
        self.crashed: Crash | None = None

    def write(self, data: bytes) -> None:
        first = self.records + 1
        last = self.records + data.count(b"\n")
        while self._plan and self._plan[0].seq < first:
            self._plan.popleft()  # planned inside records a power cut took back: passed by
        self._due = self._plan[0] if self._plan and self._plan[0].seq <= last else None
        if self._due is not None and self._due.point == "before_write":
            self._die()
        self.data += data
        self.records = last

    def sync(self) -> None:
        if self._due is not None and self._due.point in ("before_sync", "power_loss"):
            self._die()
        self.synced = len(self.data)
        self._on_sync(self.synced)
        if self._due is not None:
            self._die()

    def close(self) -> None:
        """The bytes stay: they are the log."""

    def _die(self) -> None:
        self.crashed = self._plan.popleft()
        raise SimulatedCrash(self.crashed)


@dataclass(frozen=True, slots=True)
class RerunOf:
    """What makes a simulated run a rerun of the finished run ``origin``."""

    origin: RunState
    #: What ``plan_rerun`` made of the origin, the rerun's definition and its selection.
    plan: RerunPlan
    #: Virtual µs at which the rerun is created (after the origin's end).
    start_us: int
    #: The command line and fixes the plan was made for.
    spec: RerunSpec

    def describe(self) -> str:
        """The command, then the plan a step at a time: ``s0 reuse (why), s1 run (why)``."""
        steps = ", ".join(
            f"{step} {plan.action.value} ({plan.why})" for step, plan in self.plan.steps.items()
        )
        return f"{self.spec.describe()}; plan: {steps}"


@dataclass
class History:
    """What one history did: its final log, its processes and every violation seen."""

    scenario: Scenario
    crashes: tuple[Crash, ...]
    #: The crashes that happened (a planned one past the end of the run never does).
    happened: list[Crash] = field(default_factory=list)
    log: bytes = b""
    records: list[Record] = field(default_factory=list)
    state: RunState | None = None
    processes: list[Process] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    cancel_sent_us: int | None = None
    #: Set when the run is a rerun: its origin and plan, which the checks hold it to.
    rerun: RerunOf | None = None


def no_plugins() -> Plugins:
    """A plugin manager with the hook specs and no plugin (``$WF_PLUGINS`` is not read)."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    return Plugins(manager)


class Simulator:
    """Runs histories of one scenario in a scratch folder (the log is read back from a file).

    The real reader takes a path, so a surviving log is written to
    ``<scratch>/<run id>/events.jsonl`` before it is read; ``wf cancel``'s request file lives
    beside it, where the runner looks. With ``rerun`` the scenario is the rerun's
    (``Scenario.rerun_scenario``) and each history a rerun of ``rerun.origin``.
    """

    def __init__(
        self,
        scenario: Scenario,
        scratch: Path,
        executor: type[SimulatedExecutor] = SimulatedExecutor,
        rerun: RerunOf | None = None,
    ) -> None:
        self.scenario = scenario
        self.rerun = rerun
        self.run_id = RUN_ID if rerun is None else RERUN_ID
        self.paths = RunPaths(str(scratch / self.run_id))
        Path(self.paths.root).mkdir(parents=True, exist_ok=True)
        self.executor = executor
        self.plugins = no_plugins()
        self._carried = carry_over(rerun.plan) if rerun is not None else []

    def run(self, crashes: tuple[Crash, ...] = ()) -> History:
        """Create the run, crash and resume it as planned, to its end; check what is checkable."""
        remove_cancel_request(self.paths)
        history = History(self.scenario, crashes, rerun=self.rerun)
        if self.rerun is None:
            world = World(self.scenario, self.paths)
        else:
            carried = {event.step: event.reason or "" for event in self._carried}
            world = World(self.scenario, self.paths, self.rerun.start_us, carried)
        plan = collections.deque(crashes)
        sink = MemorySink(b"", 0, plan)
        try:
            runner = self._create(world, sink)
            while True:
                if runner is not None:
                    with contextlib.suppress(SimulatedCrash):
                        runner.execute()
                if sink.crashed is None:
                    history.log = bytes(sink.data)
                    break
                survived = self._survivors(history, world, sink)
                if survived is None:
                    break  # the crash came before the run existed: nothing to resume
                data, state, crash, synced = survived
                world.advance(crash.restart_sec)
                sink = MemorySink(data, state.last_seq, plan, synced, world.synced)
                if state.finished is not None:
                    history.log = data
                    break
                runner = self._resume(world, sink, state)
        except _Stop:
            pass
        except (SimulationStuck, IllegalTransition, CorruptLog, RuntimeError) as exc:
            history.violations.append(f"the engine failed: {type(exc).__name__}: {exc}")
        history.processes = world.processes
        history.violations[:0] = world.violations
        history.cancel_sent_us = world.cancel_sent_us
        return history

    # -- the takeover steps ------------------------------------------------------------------

    def _create(self, world: World, sink: MemorySink) -> Runner | None:
        """``takeover.create_run``: its first batch (``open_new_run``), written to ``sink``."""
        options = RunOptions(self.scenario.max_parallel, self.scenario.fail_fast, BASE_DIR)
        origin = self.rerun.plan.origin_run_id if self.rerun is not None else None
        created = RunCreated(self.run_id, self.scenario.workflow.to_json(), options, origin)
        commit = Commit.create(EventLog(self.paths.events, sink, 1), created, self.plugins)
        runner, started = self._own(
            world, commit, ("run",) if origin is None else ("rerun", origin)
        )
        try:
            open_new_run(commit, started, self._carried, world.now, self.paths.root)
        except SimulatedCrash:
            return None
        return runner

    def _resume(self, world: World, sink: MemorySink, state: RunState) -> Runner | None:
        """``takeover.resume_run`` once the log is read: its first batch (``open_taken_over_run``:
        leftovers first), written to ``sink``."""
        log = EventLog.continuing(self.paths.events, sink, state.last_seq)
        commit = Commit(log, state, self.plugins)
        runner, started = self._own(world, commit, ("resume", self.run_id))
        try:
            open_taken_over_run(runner, commit, started, lambda _: None, lambda: False, world.now)
        except SimulatedCrash:
            return None
        return runner

    def _own(
        self, world: World, commit: Commit, argv: tuple[str, ...]
    ) -> tuple[Runner, RunnerStarted]:
        """A runner over ``commit``, and the ``runner_started`` its opening batch records."""
        signals = SimulatedSignals()
        pid = world.runner_started(commit.state, signals)
        runner = Runner(
            self.paths,
            commit,
            self.plugins,
            RunLock(self.paths.runner_lock, -1),  # held by nobody: closing it does nothing
            signals,
            ExecutorFactory(world, self.executor),
            timebase=world,
        )
        return runner, RunnerStarted(pid, argv)

    def _survivors(
        self, history: History, world: World, sink: MemorySink
    ) -> tuple[bytes, RunState, Crash, int] | None:
        """What the crash left of the log, read as ``wf resume`` reads it (torn tail cut off),
        and how much of it is durable; ``None`` when no record survived (never created).

        A SIGKILL leaves written bytes in the page cache: readable, yet not durable until an
        fsync covers them. A power cut leaves only what is on the disk, and cutting a torn tail
        fsyncs the log, so then everything left is durable."""
        crash = sink.crashed
        assert crash is not None
        history.happened.append(crash)
        world.crash(power_loss=crash.point == "power_loss")
        path = Path(self.paths.events)
        path.write_bytes(sink.data)
        if crash.point == "power_loss":
            lose_unsynced(str(path), sink.synced, seed=crash.loss_seed)
        data = path.read_bytes()
        scan = LogScan(str(path))
        try:
            records = list(scan)
            if not records:
                return None
            state = fold_records(records, source=str(path))
        except (CorruptLog, IllegalTransition) as exc:
            history.violations.append(f"after the {crash.describe()}: {exc}")
            raise _Stop from exc
        if scan.torn is not None:
            data = data[: scan.torn.offset]
        lost_power = crash.point == "power_loss" or scan.torn is not None
        synced = len(data) if lost_power else min(sink.synced, len(data))
        world.log_survived(records, _line_ends(data), synced)
        return data, state, crash, synced


def _line_ends(data: bytes) -> list[int]:
    """The offset just past each line: record k of a log ends at ``ends[k - 1]``."""
    ends: list[int] = []
    at = data.find(b"\n")
    while at >= 0:
        ends.append(at + 1)
        at = data.find(b"\n", at + 1)
    return ends


class _Stop(Exception):
    """A history cannot go on (its log is unreadable): the violation is already recorded."""
