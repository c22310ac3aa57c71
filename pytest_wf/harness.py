"""Drive the real ``wf`` CLI in an isolated home, the way a user's CI would (no pytest needed).

Every call is a real ``wf`` process running the CLI's ``__main__``: by default forked from a
server that has imported the engine once (``pytest_wf.forkserver``: milliseconds instead of a
third of a second per command), or a new interpreter (``launch="exec"``). So a test exercises
what a user runs: argument parsing, exit codes, signals, files on disk. Results are read back
through the same fold the engine uses, so a test can assert on states without parsing text.

Every process a harness starts carries its tag (``PYTEST_WF_TAG``) in its environment, and the
engine passes its environment on to every step, so :meth:`WfHarness.close` finds and kills
whatever is left -- runners, steps, their children -- however the test ended.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import wf_engine
from fault_injection.crash import CrashReport, read_crash_report
from fault_injection.executions import executions_env, read_executions
from fault_injection.powerloss import PowerLoss, drop_unsynced, unsynced_batch_start
from pytest_wf import forkserver
from pytest_wf.processes import TAG_VAR, StepProcess, kill_tagged, process_alive
from wf_engine.errors import WfError
from wf_engine.log.eventlog import Record, read_log
from wf_engine.runtime.runview import read_run, run_summary
from wf_engine.runtime.store import RunPaths, RunStore

__all__ = [
    "Execution",
    "RunFiles",
    "RunResult",
    "RunningWf",
    "TaskKit",
    "WfHarness",
    "dag",
    "process_alive",
    "session_tag_prefix",
    "step",
    "wait_until",
]

WorkflowSpec = Mapping[str, Any] | str | os.PathLike[str]
#: The folder holding the ``wf_engine`` package this process runs, first on child PYTHONPATHs.
_ENGINE_ROOT = str(Path(wf_engine.__file__).resolve().parent.parent)
#: Run ids and file names count up over the whole process, across harnesses: a run id (and so
#: ``$WF_RUN_ID``) never repeats within a test session.
_COUNTER = itertools.count(1)
#: This process's tag prefix: ``pwf-<pid>-<random>-``, then one number per harness.
_SESSION_TAG = f"pwf-{os.getpid()}-{secrets.token_hex(3)}-"
#: Variables of the test process that are never passed on to ``wf`` processes.
_DROPPED = ("WF_HOME", TAG_VAR)


#: ``WfHarness(launch=None)``: this, else ``$PYTEST_WF_LAUNCH``, else ``fork``.
_DEFAULT_LAUNCH: str | None = None


def set_default_launch(launch: str | None) -> str | None:
    """Make ``launch`` the default of new harnesses (``--wf-launch``); returns the old one."""
    global _DEFAULT_LAUNCH
    before, _DEFAULT_LAUNCH = _DEFAULT_LAUNCH, launch
    return before


def session_tag_prefix() -> str:
    """The tag prefix of every process the harnesses of this test process start."""
    return _SESSION_TAG


def _after_fork_in_child() -> None:
    global _SESSION_TAG
    _SESSION_TAG = f"pwf-{os.getpid()}-{secrets.token_hex(3)}-"


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class RunFiles:
    """The files of one run folder, as ``pathlib.Path`` (the engine's layout, not copied)."""

    def __init__(self, paths: RunPaths) -> None:
        self._paths = paths

    @property
    def root(self) -> Path:
        return Path(self._paths.root)

    @property
    def events(self) -> Path:
        """``events.jsonl``: the run's log, its only source of truth."""
        return Path(self._paths.events)

    @property
    def runner_lock(self) -> Path:
        return Path(self._paths.runner_lock)

    @property
    def cancel_request(self) -> Path:
        return Path(self._paths.cancel_request)

    def step_dir(self, step_id: str) -> Path:
        """Where the step's captured output lives (advisory; ``wf logs`` is the interface)."""
        return Path(self._paths.step_dir(step_id))

    def attempt_file(self, step_id: str, attempt: int, suffix: str) -> Path:
        """An attempt's captured ``out`` or ``err`` (advisory; may be absent)."""
        return Path(self._paths.attempt_file(step_id, attempt, suffix))

    def __repr__(self) -> str:
        return f"RunFiles({str(self.root)!r})"


@dataclass(frozen=True)
class RunResult:
    """What one ``wf`` command did: exit code, output, and the run as its log tells it."""

    returncode: int
    stdout: str
    stderr: str
    run_id: str | None
    home: Path
    status: dict[str, Any] | None = field(default=None, repr=False)
    #: ``wf run --json``: the state the runner held when it stopped (None if it was killed).
    live: dict[str, Any] | None = field(default=None, repr=False)
    #: ``crash(..., point="power_loss")``: what the modelled power cut removed or truncated.
    lost: PowerLoss | None = field(default=None, repr=False)
    #: ``crash(...)``: where the engine died (None if it finished before the crash point).
    crash: CrashReport | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.home, Path):
            object.__setattr__(self, "home", Path(self.home))

    @property
    def state(self) -> str | None:
        return None if self.status is None else self.status["state"]

    @property
    def steps(self) -> dict[str, dict[str, Any]]:
        return {} if self.status is None else self.status["steps"]

    def step_state(self, step: str) -> str:
        return str(self.steps[step]["state"])

    @property
    def paths(self) -> RunFiles:
        assert self.run_id is not None
        return RunFiles(RunStore(os.fspath(self.home)).paths(self.run_id))

    @property
    def events(self) -> list[Record]:
        records, _ = read_log(os.fspath(self.paths.events))
        return records

    def transitions(self, step: str | None = None) -> list[tuple[str, str, str]]:
        """``(step, from, to)`` for every step record, in log order."""
        return [
            (r["step"], r["from"], r["to"])
            for r in self.events
            if r["type"] == "step" and (step is None or r["step"] == step)
        ]

    def step_processes(self, step: str | None = None) -> list[StepProcess]:
        """Every attempt's process the log recorded (``spawned``), oldest first."""
        return _spawned(self.events, step)


def _spawned(events: Sequence[Record], step: str | None) -> list[StepProcess]:
    return [
        StepProcess.from_record(r)
        for r in events
        if r["type"] == "spawned" and (step is None or r["step"] == step)
    ]


@dataclass(frozen=True)
class Execution:
    """One attempt the engine really started (``fault_injection.executions``)."""

    step: str
    attempt: int
    #: False: started by the engine that crashed; True: by a ``wf resume`` after it.
    after_crash: bool
    #: The engine's pid.
    runner: int


class WfHarness:
    """Runs workflows through the CLI in one home folder; see ``pytest_wf`` for the fixture.

    ``launch``: ``"fork"`` (the default where ``os.fork`` exists, unless ``$PYTEST_WF_LAUNCH``
    says otherwise) or ``"exec"`` (a new interpreter per command).
    """

    def __init__(
        self,
        home: str | os.PathLike[str],
        workdir: str | os.PathLike[str],
        *,
        launch: str | None = None,
    ) -> None:
        self.home = Path(home).absolute()
        self.workdir = Path(workdir).absolute()
        #: ``PYTEST_WF_TAG`` of its processes; the final dot keeps tag 1 from prefixing tag 12.
        self.tag = f"{_SESSION_TAG}{next(_COUNTER)}."
        chosen = launch or _DEFAULT_LAUNCH or os.environ.get("PYTEST_WF_LAUNCH") or "fork"
        if chosen not in ("fork", "exec"):
            raise ValueError(f"launch must be 'fork' or 'exec', not {chosen!r}")
        self.launch = chosen if forkserver.can_fork() else "exec"
        self._started: list[RunningWf] = []
        #: run id -> (journal of the crashed engine, journal of the engines after it)
        self._journals: dict[str, tuple[Path, Path]] = {}
        self._used = False

    # -- building blocks -----------------------------------------------------------------------

    @property
    def scratch(self) -> Path:
        """The harness's own files (journals, crash reports), apart from the steps' files."""
        path = self.workdir / ".wf-harness"
        path.mkdir(exist_ok=True)
        return path

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "wf_engine", "--home", os.fspath(self.home), *args]

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of ``wf`` processes: they run the engine this process imported.

        The test's environment without ``WF_HOME``, plus ``extra``; ``WF_PLUGINS`` of the two
        are joined. Every process also gets this harness's tag (see the module docstring).
        """
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
        paths = [_ENGINE_ROOT, *env.get("PYTHONPATH", "").split(os.pathsep)]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if p))
        return _merged(env, dict(extra or {}), {TAG_VAR: self.tag})

    def workflow_file(self, workflow: WorkflowSpec) -> Path:
        """A path for ``workflow``: written to the work folder when given as a dict; a relative
        path is resolved against the test's working directory (as a shell would)."""
        if isinstance(workflow, Mapping):
            name = str(workflow.get("workflow_id", "workflow"))
            path = self.workdir / f"{name}-{next(_COUNTER)}.json"
            path.write_text(json.dumps(workflow, indent=2))
            return path
        return Path(os.path.abspath(os.fspath(workflow)))

    def new_run_id(self, prefix: str = "run") -> str:
        """A run id unique within the test session: ``<prefix>-<pid>-<n>``."""
        return f"{prefix}-{os.getpid()}-{next(_COUNTER)}"

    # -- commands ------------------------------------------------------------------------------

    def cli(
        self,
        *args: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``wf ARGS`` to completion (in the work folder); an argument may be a path."""
        self._used = True
        argv = ["--home", os.fspath(self.home), *(os.fspath(arg) for arg in args)]
        full_env = self.env(env)
        if self.launch == "fork":
            try:
                return forkserver.run_command(argv, full_env, self.workdir, timeout, _SESSION_TAG)
            except forkserver.ForkServerUnavailable:
                self.launch = "exec"  # a server that cannot start: new interpreters from now on
        return subprocess.run(
            self.command(*argv[2:]),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            cwd=self.workdir,
            check=False,
        )

    def run(
        self,
        workflow: WorkflowSpec,
        *options: str,
        run_id: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> RunResult:
        """``wf run --json`` to the end; the result carries the live state and ``wf status``."""
        run_id = run_id or self.new_run_id()
        return self._with_live(self._run_only(workflow, options, run_id, env, timeout), run_id)

    def _run_only(
        self,
        workflow: WorkflowSpec,
        options: Sequence[str],
        run_id: str,
        env: Mapping[str, str] | None,
        timeout: float,
    ) -> subprocess.CompletedProcess[str]:
        args = ["run", os.fspath(self.workflow_file(workflow)), "--run-id", run_id, *options]
        if "--json" not in options:
            args.append("--json")
        return self.cli(*args, env=env, timeout=timeout)

    def rerun(
        self,
        origin: str,
        *options: str,
        workflow: WorkflowSpec | None = None,
        from_steps: Sequence[str] = (),
        only: Sequence[str] = (),
        run_id: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> RunResult:
        """``wf rerun ORIGIN --json`` to the end: the new run's result, as :meth:`run` gives.

        ``workflow`` is the changed definition (``--workflow``; default: the origin's own),
        ``from_steps`` and ``only`` the ``--from`` and ``--only`` steps; ``options`` go as they
        are (``--max-parallel 1``).
        """
        run_id = run_id or self.new_run_id("rerun")
        args = self._rerun_args(origin, options, workflow, from_steps, only, run_id)
        return self._with_live(self.cli(*args, env=env, timeout=timeout), run_id)

    def _rerun_args(
        self,
        origin: str,
        options: Sequence[str],
        workflow: WorkflowSpec | None,
        from_steps: Sequence[str],
        only: Sequence[str],
        run_id: str,
    ) -> list[str]:
        args = ["rerun", origin, "--run-id", run_id, *options]
        if workflow is not None:
            args += ["--workflow", os.fspath(self.workflow_file(workflow))]
        args += [arg for name in from_steps for arg in ("--from", name)]
        args += [arg for name in only for arg in ("--only", name)]
        if "--json" not in options:
            args.append("--json")
        return args

    def _with_live(
        self,
        done: subprocess.CompletedProcess[str],
        run_id: str,
        lost: PowerLoss | None = None,
        crash: CrashReport | None = None,
    ) -> RunResult:
        result = replace(self._result(done, run_id), lost=lost, crash=crash)
        if done.stdout.startswith("{"):
            result = replace(result, live=json.loads(done.stdout))
        return result

    def crash(
        self,
        workflow: WorkflowSpec,
        seq: int,
        point: str = "after_sync",
        *options: str,
        seed: int | None = None,
        env: Mapping[str, str] | None = None,
        run_id: str | None = None,
        timeout: float = 120,
    ) -> RunResult:
        """``wf run`` SIGKILLed by the crash plugin at record ``seq`` (fault_injection.crash).

        ``power_loss`` then applies ``fault_injection.powerloss.drop_unsynced`` (seeded by
        ``seed``, default ``seq``) to the run folder before the result is read, while the steps
        the engine started keep running; ``lost`` on the result says what it dropped, ``crash``
        where the engine died. Every attempt the engine starts is journaled (see
        :meth:`executions`), and so are those of the resumes of this run.
        """
        run_id = run_id or self.new_run_id()

        def launch(fault: dict[str, str]) -> subprocess.CompletedProcess[str]:
            return self._run_only(workflow, options, run_id, fault, timeout)

        return self._crashing(run_id, seq, point, seed, env, launch)

    def crash_rerun(
        self,
        origin: str,
        seq: int,
        point: str = "after_sync",
        *options: str,
        workflow: WorkflowSpec | None = None,
        from_steps: Sequence[str] = (),
        only: Sequence[str] = (),
        seed: int | None = None,
        env: Mapping[str, str] | None = None,
        run_id: str | None = None,
        timeout: float = 120,
    ) -> RunResult:
        """:meth:`crash` for ``wf rerun ORIGIN`` (arguments as :meth:`rerun` takes them)."""
        run_id = run_id or self.new_run_id("rerun")
        args = self._rerun_args(origin, options, workflow, from_steps, only, run_id)

        def launch(fault: dict[str, str]) -> subprocess.CompletedProcess[str]:
            return self.cli(*args, env=fault, timeout=timeout)

        return self._crashing(run_id, seq, point, seed, env, launch)

    def _crashing(
        self,
        run_id: str,
        seq: int,
        point: str,
        seed: int | None,
        env: Mapping[str, str] | None,
        launch: Callable[[dict[str, str]], subprocess.CompletedProcess[str]],
    ) -> RunResult:
        """Run ``launch(env)`` with the crash plugin and the execution journal set up for
        ``run_id``; read back what is left (after the power cut, for ``power_loss``)."""
        from fault_injection.crash import crash_env

        scratch = self.scratch
        journal = scratch / f"{run_id}.syncs.jsonl" if point == "power_loss" else None
        report = scratch / f"{run_id}.crash.json"
        before, after = scratch / f"{run_id}.exec-1.jsonl", scratch / f"{run_id}.exec-2.jsonl"
        self._journals[run_id] = (before, after)
        fault = _merged(
            crash_env(seq, point, journal=journal, report=report), executions_env(before)
        )
        done = launch(_merged(dict(env or {}), fault))
        lost = None
        if point == "power_loss" and done.returncode == -signal.SIGKILL:
            # else the run ended first: all of it is durable
            lost = self._power_cut(run_id, journal, seq if seed is None else seed)
        return self._with_live(done, run_id, lost, read_crash_report(report))

    def _power_cut(self, run_id: str, journal: Path | None, seed: int) -> PowerLoss | None:
        """Drop what the killed engine never fsynced (nothing if the run was never created)."""
        paths = RunStore(os.fspath(self.home)).paths(run_id)
        if not os.path.exists(paths.events):
            return None
        return drop_unsynced(paths.root, unsynced_batch_start(paths.events), seed, journal)

    def executions(self, run_id: str) -> list[Execution]:
        """The attempts of a run made by :meth:`crash` that engines really started, in order:
        by the engine that crashed, then by every ``wf resume``/``cancel`` of it since."""
        before, after = self._journals.get(run_id, (None, None))
        found: list[Execution] = []
        for path, later in ((before, False), (after, True)):
            if path is not None:
                for line in read_executions(path, run_id):
                    found.append(Execution(line["step"], line["attempt"], later, line["runner"]))
        return found

    def _journaled(self, run_id: str, env: Mapping[str, str] | None) -> dict[str, str]:
        """``env`` plus the execution journal of a run this harness crashed."""
        journals = self._journals.get(run_id)
        if journals is None:
            return dict(env or {})
        return _merged(dict(env or {}), executions_env(journals[1]))

    def resume_until_finished(
        self, run_id: str, limit: int = 5, env: Mapping[str, str] | None = None
    ) -> RunResult:
        """``wf resume`` until the run has finished (a resume may itself be cut short)."""
        for _ in range(limit):
            result = self.resume(run_id, env=env)
            if result.state not in (None, "RUNNING"):
                return result
        raise AssertionError(
            f"run {run_id} still unfinished after {limit} resumes: {result.stderr}"
        )

    def resume(
        self,
        run_id: str,
        *options: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> RunResult:
        done = self.cli(
            "resume", run_id, *options, env=self._journaled(run_id, env), timeout=timeout
        )
        return self._result(done, run_id)

    def cancel(self, run_id: str, *options: str, env: Mapping[str, str] | None = None) -> RunResult:
        done = self.cli("cancel", run_id, *options, env=self._journaled(run_id, env))
        return self._result(done, run_id)

    def status(self, run_id: str) -> dict[str, Any]:
        done = self.cli("status", run_id, "--json")
        if done.returncode != 0:
            raise AssertionError(f"wf status {run_id} exited {done.returncode}: {done.stderr}")
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def start(
        self,
        workflow: WorkflowSpec,
        *options: str,
        run_id: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> RunningWf:
        """Start ``wf run`` in the background (its own session) and return a handle on it."""
        run_id = run_id or self.new_run_id()
        path = os.fspath(self.workflow_file(workflow))
        return self._background(run_id, env, "run", path, "--run-id", run_id, *options)

    def start_resume(self, run_id: str, env: Mapping[str, str] | None = None) -> RunningWf:
        """Start ``wf resume RUN_ID`` in the background."""
        return self._background(run_id, self._journaled(run_id, env), "resume", run_id)

    def _background(self, run_id: str, env: Mapping[str, str] | None, *args: str) -> RunningWf:
        self._used = True
        process = subprocess.Popen(
            self.command(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(env),
            cwd=self.workdir,
            start_new_session=True,
        )
        running = RunningWf(self, run_id, process)
        self._started.append(running)
        return running

    def close(self) -> None:
        """Kill every runner this harness started in the background, then every process still
        carrying its tag: a crashed engine's steps, a timed-out command's, their children."""
        for running in self._started:
            running.close()
        if self._used:
            kill_tagged(self.tag)

    def leftovers(self) -> list[int]:
        """Pids of the live processes this harness started, directly or not (tagged)."""
        from pytest_wf.processes import tagged_processes

        return [p.pid for p in tagged_processes(self.tag) if p.tag == self.tag]

    def _result(self, done: subprocess.CompletedProcess[str], run_id: str) -> RunResult:
        return RunResult(
            done.returncode, done.stdout, done.stderr, run_id, self.home, self._status(run_id)
        )

    def _status(self, run_id: str) -> dict[str, Any] | None:
        """What ``wf status --json`` prints, computed by the same functions in this process.

        No second process per command: a crash point costs a few ``wf`` processes, and this
        one only reads the log. ``None`` when the run does not exist or cannot be read.
        """
        store = RunStore(os.fspath(self.home))
        if not store.exists(run_id):
            return None
        try:
            summary = run_summary(read_run(store.existing(run_id)))
        except (WfError, OSError):
            return None
        status: dict[str, Any] = json.loads(json.dumps(summary))
        return status


def _merged(*envs: Mapping[str, str]) -> dict[str, str]:
    """Environments applied in order; their ``WF_PLUGINS`` lists are joined, not replaced."""
    merged: dict[str, str] = {}
    plugins: list[str] = []
    for env in envs:
        merged.update(env)
        plugins += [p.strip() for p in env.get("WF_PLUGINS", "").split(",") if p.strip()]
    if plugins:
        merged["WF_PLUGINS"] = ",".join(dict.fromkeys(plugins))
    return merged


class RunningWf:
    """A ``wf run`` process started in the background."""

    def __init__(self, harness: WfHarness, run_id: str, process: subprocess.Popen[str]) -> None:
        self.harness = harness
        self.run_id = run_id
        self.process = process

    @property
    def paths(self) -> RunFiles:
        return RunFiles(RunStore(os.fspath(self.harness.home)).paths(self.run_id))

    def events(self) -> list[Record]:
        if not os.path.exists(self.paths.events):
            return []
        records, _ = read_log(os.fspath(self.paths.events))
        return records

    def wait_for(
        self, predicate: Callable[[list[Record]], bool], timeout: float = 60, what: str = ""
    ) -> list[Record]:
        """Wait until ``predicate(events)`` holds (checked as the log grows)."""
        found: list[Record] = wait_until(
            lambda: _checked(predicate, self.events()), timeout, what or "log"
        )
        return found

    def wait_for_step(self, step: str, state: str, timeout: float = 60) -> list[Record]:
        def reached(events: list[Record]) -> bool:
            return any(
                r["type"] == "step" and r["step"] == step and r["to"] == state for r in events
            )

        return self.wait_for(reached, timeout, f"step {step} {state}")

    def step_process(self, step: str, timeout: float = 60) -> StepProcess:
        """The process of ``step``'s latest attempt, once its ``spawned`` record is in the log:
        ``pid``, ``pgid`` (its own process group), ``alive()``, ``group_gone()``."""
        events = self.wait_for(lambda e: bool(_spawned(e, step)), timeout, f"{step} spawned")
        return _spawned(events, step)[-1]

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL the runner only (its steps live on in their own sessions)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def wait(self, timeout: float = 120) -> RunResult:
        stdout, stderr = self.process.communicate(timeout=timeout)
        done = subprocess.CompletedProcess(
            self.process.args, self.process.returncode, stdout, stderr
        )
        return self.harness._result(done, self.run_id)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def _checked(
    predicate: Callable[[list[Record]], bool], events: list[Record]
) -> list[Record] | None:
    return events if predicate(events) else None


def wait_until(probe: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    """Poll ``probe`` until it returns something truthy (tests only: waits on a condition)."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 1.5, 0.1)


class TaskKit:
    """Step commands from ``fault_injection.task`` that record every start in one file."""

    def __init__(self, record: str | os.PathLike[str]) -> None:
        self.record = Path(record)

    def __call__(self, behaviour: str, *args: str, label: str | None = None) -> list[str]:
        """A list command (no shell): ``tasks("fail-first", "2")``."""
        command = [sys.executable, "-m", "fault_injection.task", "--record", str(self.record)]
        if label is not None:
            command += ["--label", label]
        return [*command, behaviour, *args]

    def records(self) -> list[dict[str, object]]:
        from fault_injection.task import read_records

        return read_records(self.record)

    def starts(self, label: str) -> int:
        from fault_injection.task import count_starts

        return count_starts(self.record, label)

    def overlaps(self, label: str | None = None) -> list[dict[str, object]]:
        """``overlap`` records: executions that began while another of their label still ran."""
        from fault_injection.task import read_overlaps

        return read_overlaps(self.record, label)

    def assert_no_overlap(self) -> None:
        """Fail, naming each step, if two executions of one step (label) ever ran at once."""
        __tracebackhide__ = True
        lines = [
            f"two executions of step {r['label']!r} overlapped: pid {r['pid']} (attempt "
            f"{r.get('attempt')}) started while another one was still running"
            for r in self.overlaps()
        ]
        if lines:
            raise AssertionError("\n".join([*lines, f"(records: {self.record})"]))

    def pids(self, event: str, label: str | None = None) -> list[int]:
        return [
            int(str(r["pid"]))
            for r in self.records()
            if r.get("event") == event and (label is None or r.get("label") == label)
        ]


def dag(workflow_id: str, steps: Sequence[Mapping[str, Any]], **top: Any) -> dict[str, Any]:
    """A workflow dict: ``dag("w", [step("a", cmd), step("b", cmd, ["a"])])``."""
    return {"workflow_id": workflow_id, "steps": list(steps), **top}


def step(
    step_id: str, command: str | Sequence[str], depends_on: Sequence[str] = (), **fields: Any
) -> dict[str, Any]:
    return {
        "id": step_id,
        "command": command if isinstance(command, str) else list(command),
        "depends_on": list(depends_on),
        **fields,
    }
