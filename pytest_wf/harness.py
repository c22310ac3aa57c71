"""Drive the real ``wf`` CLI in an isolated home, the way a user's CI would (no pytest needed).

Every call is a real subprocess (``python -m wf_engine``), so a test exercises exactly what a user
runs: argument parsing, exit codes, signals, files on disk. Results are read back through the same
fold the engine uses, so a test can assert on states without parsing text.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import wf_engine
from fault_injection.powerloss import PowerLoss, drop_unsynced, unsynced_batch_start
from wf_engine.errors import WfError
from wf_engine.log.eventlog import Record, read_log
from wf_engine.runtime.runview import read_run, run_summary
from wf_engine.runtime.store import RunPaths, RunStore

WorkflowSpec = Mapping[str, Any] | str | os.PathLike[str]
#: The folder holding the ``wf_engine`` package this process runs, first on child PYTHONPATHs.
_ENGINE_ROOT = str(Path(wf_engine.__file__).resolve().parent.parent)


@dataclass(frozen=True)
class RunResult:
    """What one ``wf`` command did: exit code, output, and the run as its log tells it."""

    returncode: int
    stdout: str
    stderr: str
    run_id: str | None
    home: str
    status: dict[str, Any] | None = field(default=None, repr=False)
    #: ``wf run --json``: the state the runner held when it stopped (None if it was killed).
    live: dict[str, Any] | None = field(default=None, repr=False)
    #: ``crash(..., point="power_loss")``: what the modelled power cut removed or truncated.
    lost: PowerLoss | None = field(default=None, repr=False)

    @property
    def state(self) -> str | None:
        return None if self.status is None else self.status["state"]

    @property
    def steps(self) -> dict[str, dict[str, Any]]:
        return {} if self.status is None else self.status["steps"]

    def step_state(self, step: str) -> str:
        return str(self.steps[step]["state"])

    @property
    def paths(self) -> RunPaths:
        assert self.run_id is not None
        return RunStore(self.home).paths(self.run_id)

    @property
    def events(self) -> list[Record]:
        records, _ = read_log(self.paths.events)
        return records

    def transitions(self, step: str | None = None) -> list[tuple[str, str, str]]:
        """``(step, from, to)`` for every step record, in log order."""
        return [
            (r["step"], r["from"], r["to"])
            for r in self.events
            if r["type"] == "step" and (step is None or r["step"] == step)
        ]


class WfHarness:
    """Runs workflows through the CLI in one home folder; see ``pytest_wf`` for the fixture."""

    def __init__(self, home: str | os.PathLike[str], workdir: str | os.PathLike[str]) -> None:
        self.home = str(home)
        self.workdir = Path(workdir)
        self._ids = itertools.count(1)
        self._started: list[RunningWf] = []

    # -- building blocks -----------------------------------------------------------------------

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "wf_engine", "--home", self.home, *args]

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of ``wf`` processes: they run the engine this process imported."""
        env = dict(os.environ)
        env.pop("WF_HOME", None)
        paths = [_ENGINE_ROOT, *env.get("PYTHONPATH", "").split(os.pathsep)]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if p))
        env.update(extra or {})
        return env

    def workflow_file(self, workflow: WorkflowSpec) -> str:
        """A path for ``workflow``: written to the work folder when given as a dict."""
        if isinstance(workflow, Mapping):
            name = str(workflow.get("workflow_id", "workflow"))
            path = self.workdir / f"{name}-{next(self._ids)}.json"
            path.write_text(json.dumps(workflow, indent=2))
            return str(path)
        return os.fspath(workflow)

    def new_run_id(self, prefix: str = "run") -> str:
        return f"{prefix}-{os.getpid()}-{next(self._ids)}"

    # -- commands ------------------------------------------------------------------------------

    def cli(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``wf ARGS`` to completion."""
        return subprocess.run(
            self.command(*args),
            capture_output=True,
            text=True,
            env=self.env(env),
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
        args = ["run", self.workflow_file(workflow), "--run-id", run_id, *options]
        if "--json" not in options:
            args.append("--json")
        return self.cli(*args, env=env, timeout=timeout)

    def _with_live(
        self, done: subprocess.CompletedProcess[str], run_id: str, lost: PowerLoss | None = None
    ) -> RunResult:
        result = replace(self._result(done, run_id), lost=lost)
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
    ) -> RunResult:
        """``wf run`` SIGKILLed by the crash plugin at record ``seq`` (fault_injection.crash).

        ``power_loss`` then applies ``fault_injection.powerloss.drop_unsynced`` (seeded by
        ``seed``, default ``seq``) to the run folder before the result is read, while the steps
        the engine started keep running; ``lost`` on the result says what it dropped.
        """
        from fault_injection.crash import crash_env

        if point != "power_loss":
            return self.run(workflow, *options, env=crash_env(seq, point))
        run_id = self.new_run_id()
        journal = str(self.workdir / f"{run_id}.syncs.jsonl")
        env = crash_env(seq, point, journal=journal)
        done = self._run_only(workflow, options, run_id, env, timeout=120)
        lost = None
        if done.returncode == -signal.SIGKILL:  # else the run ended first: all of it is durable
            lost = self._power_cut(run_id, journal, seq if seed is None else seed)
        return self._with_live(done, run_id, lost)

    def _power_cut(self, run_id: str, journal: str, seed: int) -> PowerLoss | None:
        """Drop what the killed engine never fsynced (nothing if the run was never created)."""
        paths = RunStore(self.home).paths(run_id)
        if not os.path.exists(paths.events):
            return None
        return drop_unsynced(paths.root, unsynced_batch_start(paths.events), seed, journal)

    def resume_until_finished(self, run_id: str, limit: int = 5) -> RunResult:
        """``wf resume`` until the run has finished (a resume may itself be cut short)."""
        for _ in range(limit):
            result = self.resume(run_id)
            if result.state not in (None, "RUNNING"):
                return result
        raise AssertionError(
            f"run {run_id} still unfinished after {limit} resumes: {result.stderr}"
        )

    def resume(self, run_id: str, *options: str, env: Mapping[str, str] | None = None) -> RunResult:
        return self._result(self.cli("resume", run_id, *options, env=env), run_id)

    def cancel(self, run_id: str, *options: str) -> RunResult:
        return self._result(self.cli("cancel", run_id, *options), run_id)

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
        path = self.workflow_file(workflow)
        return self._background(run_id, env, "run", path, "--run-id", run_id, *options)

    def start_resume(self, run_id: str, env: Mapping[str, str] | None = None) -> RunningWf:
        """Start ``wf resume RUN_ID`` in the background."""
        return self._background(run_id, env, "resume", run_id)

    def _background(self, run_id: str, env: Mapping[str, str] | None, *args: str) -> RunningWf:
        process = subprocess.Popen(
            self.command(*args),
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
        """Kill every runner this harness started in the background and is still running."""
        for running in self._started:
            running.close()

    def _result(self, done: subprocess.CompletedProcess[str], run_id: str) -> RunResult:
        return RunResult(
            done.returncode, done.stdout, done.stderr, run_id, self.home, self._status(run_id)
        )

    def _status(self, run_id: str) -> dict[str, Any] | None:
        """What ``wf status --json`` prints, computed by the same functions in this process.

        No second interpreter per command: a crash point costs a few ``wf`` processes, and this
        one only read the log. ``None`` when the run does not exist or cannot be read.
        """
        store = RunStore(self.home)
        if not store.exists(run_id):
            return None
        try:
            summary = run_summary(read_run(store.existing(run_id)))
        except (WfError, OSError):
            return None
        status: dict[str, Any] = json.loads(json.dumps(summary))
        return status


class RunningWf:
    """A ``wf run`` process started in the background."""

    def __init__(self, harness: WfHarness, run_id: str, process: subprocess.Popen[str]) -> None:
        self.harness = harness
        self.run_id = run_id
        self.process = process

    @property
    def paths(self) -> RunPaths:
        return RunStore(self.harness.home).paths(self.run_id)

    def events(self) -> list[Record]:
        if not os.path.exists(self.paths.events):
            return []
        records, _ = read_log(self.paths.events)
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


def process_alive(pid: int) -> bool:
    """True if ``pid`` is a running process; a zombie counts as dead.

    A zombie answers ``kill(pid, 0)`` until its parent reaps it (and a container's PID 1 may
    never do so), so the state is read from ``/proc`` on Linux and from ``ps`` elsewhere.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        if sys.platform.startswith("linux"):
            return False
    except OSError:
        return True
    state = subprocess.run(
        ["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, check=False
    ).stdout.strip()
    return bool(state) and not state.startswith("Z")


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
        self.record = os.fspath(record)

    def __call__(self, behaviour: str, *args: str, label: str | None = None) -> list[str]:
        """A list command (no shell): ``tasks("fail-first", "2")``."""
        command = [sys.executable, "-m", "fault_injection.task", "--record", self.record]
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
