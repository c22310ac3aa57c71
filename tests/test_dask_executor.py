"""The Dask executor on a real ``LocalCluster`` of worker processes (docs/dask.md).

One cluster serves the module: two worker processes (each offering one ``GPU``), started in a
process of their own, as a user's cluster would be. Runners are real ``wf run --executor dask``
and ``wf resume`` processes (resume finds the scheduler in the log), so a SIGKILL of the runner
is a real one; a lost worker is a worker process really SIGKILLed. Steps are real
subprocesses on the workers; every log is checked with ``wf replay --verify``.

Skipped, saying why, when ``distributed`` (the ``dask`` extra) is not installed; CI installs it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import queue
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_wf import TaskKit, WfHarness, dag, process_alive, step, wait_until
from pytest_wf.harness import Record, RunningWf
from wf_engine.core.decide import AttemptResult
from wf_engine.errors import UsageError
from wf_engine.log.eventlog import read_log
from wf_engine.runtime import executors, procinfo
from wf_engine.runtime.executor import (
    AttemptOutcome,
    LaunchSpec,
    News,
    SpawnFailed,
    Started,
)
from wf_engine.runtime.localexec import LocalExecutor
from wf_engine.runtime.store import RunPaths

REPO = Path(__file__).resolve().parent.parent
PIPELINE = REPO / "examples" / "image_pipeline" / "workflow.json"
HAS_DASK = importlib.util.find_spec("distributed") is not None
NO_DASK = "the dask extra is not installed (pip install 'wf-engine[dask]'; CI installs it)"
needs_dask = pytest.mark.skipif(not HAS_DASK, reason=NO_DASK)
#: Whether the runner records a lost worker's attempt as interrupted (docs/dask.md, "What the
#: runner records"): until it does, it records the placeholder exit of the outcome instead.
RUNNER_RECORDS_INTERRUPTIONS = "interrupted" in {f.name for f in dataclasses.fields(AttemptResult)}

#: The module's cluster: runs until its stdin closes.
_CLUSTER = """
import logging, sys
from distributed import LocalCluster
cluster = LocalCluster(n_workers=2, threads_per_worker=8, processes=True, host="127.0.0.1",
                       dashboard_address=None, resources={"GPU": 1}, silence_logs=logging.ERROR)
print(cluster.scheduler_address, flush=True)
sys.stdin.read()
cluster.close(timeout=30)
"""

# -- choosing the executor (no cluster needed) -----------------------------------------------


def test_local_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(executors.EXECUTOR_VAR, raising=False)
    assert executors.executor_factory() is LocalExecutor
    assert executors.executor_factory("local") is LocalExecutor


def test_an_unknown_executor_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match=r"unknown executor 'kubernetes'.*local, dask"):
        executors.executor_factory("kubernetes")
    monkeypatch.setenv(executors.EXECUTOR_VAR, "slurm")
    with pytest.raises(UsageError, match=r"'slurm' \(from \$WF_EXECUTOR\)") as raised:
        executors.executor_factory()
    assert raised.value.exit_code == 2


def test_a_scheduler_is_for_the_dask_executor_only(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="--executor dask"):
        executors.executor_factory("local", "tcp://127.0.0.1:8786")
    monkeypatch.setenv(executors.SCHEDULER_VAR, "tcp://10.0.0.7:8786")  # for Dask, if chosen
    assert executors.resolve("local") == executors.ExecutorChoice("local", None)


def test_arguments_beat_the_environment_which_beats_the_workflow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    choose, Choice = executors.resolve, executors.ExecutorChoice
    workflow = Choice("dask", "tcp://from-workflow:1")
    monkeypatch.delenv(executors.EXECUTOR_VAR, raising=False)
    monkeypatch.delenv(executors.SCHEDULER_VAR, raising=False)
    assert choose(default=workflow) == workflow
    assert choose(None, "tcp://from-cli:2", workflow) == Choice("dask", "tcp://from-cli:2")
    assert choose("local", None, workflow) == Choice("local", None)
    assert choose("dask") == Choice("dask", None)  # no address: a LocalCluster of its own
    monkeypatch.setenv(executors.SCHEDULER_VAR, "tcp://from-env:3")
    assert choose(default=workflow) == Choice("dask", "tcp://from-env:3")
    monkeypatch.setenv(executors.EXECUTOR_VAR, "local")
    assert choose(default=workflow) == Choice("local", None)
    assert choose("DASK") == Choice("dask", "tcp://from-env:3")
    monkeypatch.delenv(executors.EXECUTOR_VAR)
    with pytest.raises(UsageError, match=r"'ray' \(from the workflow\)"):
        choose(default=Choice("ray"))


def test_without_the_extra_dask_is_refused_naming_it(tmp_path: Path) -> None:
    """``distributed`` made unimportable in a fresh interpreter: the message names the extra."""
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "from wf_engine.errors import UsageError\n"
        "from wf_engine.runtime.executors import executor_factory\n"
        "try:\n    executor_factory('dask')\n"
        "except UsageError as e:\n    print(e, e.exit_code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert done.stdout == "the dask executor needs `pip install 'wf-engine[dask]'` 2\n"


def test_the_command_line_refuses_a_scheduler_without_dask_and_creates_nothing(
    wf: WfHarness, wf_tasks: TaskKit
) -> None:
    workflow = dag("plain", [step("a", wf_tasks("ok"))])
    refused = wf.cli("run", str(wf.workflow_file(workflow)), "--scheduler", "tcp://10.0.0.7:1")
    assert refused.returncode == 2 and "--executor dask" in refused.stderr
    unknown = wf.cli("run", str(wf.workflow_file(workflow)), env={"WF_EXECUTOR": "ray"})
    assert unknown.returncode == 2 and "unknown executor 'ray'" in unknown.stderr
    assert wf.cli("list", "--json").stdout.strip() == "[]"

    local = wf.run(workflow)
    assert local.returncode == 0
    assert "executor" not in local.events[0]["options"]  # a local run's log is as it was
    moved = wf.cli("resume", local.run_id, "--scheduler", "tcp://10.0.0.7:1")
    assert moved.returncode == 2 and "uses the local executor, not dask" in moved.stderr
    assert "Traceback" not in refused.stderr + unknown.stderr + moved.stderr


def test_where_attempts_started_outlives_the_scheduler_s_claims(tmp_path: Path) -> None:
    """``steps/.workers`` (advisory): read back by a take-over after a scheduler restart."""
    from wf_engine.runtime.daskexec import WhereJournal

    paths = RunPaths(str(tmp_path / "run"))
    os.makedirs(paths.root)
    journal = WhereJournal(paths)
    journal.append("m/a/1", "tcp://10.0.0.7:4000", "host-7|boot|pid:[1]")
    journal.append("m/a/1", "tcp://10.0.0.8:4000", "host-8|boot|pid:[1]")
    journal.close()
    with open(journal.path, "a") as damaged:
        damaged.write("m/b/1 tcp://10.0.0.9:4000 host-9|bo")  # cut short by a crash
    assert WhereJournal.spaces(paths) == {"m/a/1": {"host-7|boot|pid:[1]", "host-8|boot|pid:[1]"}}
    assert WhereJournal.spaces(RunPaths(str(tmp_path / "nothing"))) == {}


@needs_dask
def test_the_environment_picks_dask_and_its_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    from wf_engine.runtime.daskexec import DaskExecutor

    monkeypatch.setenv(executors.EXECUTOR_VAR, "dask")
    monkeypatch.setenv(executors.SCHEDULER_VAR, "tcp://10.0.0.7:8786")
    factory = executors.executor_factory()
    assert getattr(factory, "func", None) is DaskExecutor
    assert getattr(factory, "keywords", None) == {"scheduler": "tcp://10.0.0.7:8786"}
    assert getattr(executors.executor_factory("dask", "tcp://h:1"), "keywords", None) == {
        "scheduler": "tcp://h:1"
    }
    # Resuming builds exactly what the run recorded, whatever the environment says.
    recorded = executors.factory_for(executors.ExecutorChoice("dask", None))
    assert getattr(recorded, "keywords", None) == {"scheduler": None}
    assert executors.factory_for(executors.ExecutorChoice("local")) is LocalExecutor


@needs_dask
def test_a_scheduler_that_does_not_answer_is_a_usage_error(tmp_path: Path) -> None:
    from wf_engine.runtime.daskexec import DaskExecutor, DaskUnavailable

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(DaskUnavailable, match=f"cannot connect to the Dask scheduler at {address}"):
        DaskExecutor(RunPaths(str(tmp_path)), _Reports(), scheduler=address, connect_timeout=1)


# -- the cluster -----------------------------------------------------------------------------


@dataclasses.dataclass
class Cluster:
    address: str
    client: Any
    log: Path

    def worker_pids(self) -> dict[str, int]:
        """Worker address -> pid of its worker process, once both workers are up."""
        self.client.wait_for_workers(2, timeout=120)
        pids: dict[str, int] = self.client.run(os.getpid)
        return pids


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    distributed = pytest.importorskip("distributed", reason=NO_DASK)
    log = tmp_path_factory.mktemp("dask") / "cluster.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", _CLUSTER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=_env(),
            start_new_session=True,
        )
    assert process.stdin is not None and process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 180)
    address = process.stdout.readline().decode().strip() if ready else ""
    if not address.startswith("tcp://"):
        process.kill()
        pytest.fail(f"the LocalCluster did not start:\n{log.read_text()[-3000:]}")
    client = distributed.Client(address, set_as_default=False, timeout=60)
    try:
        yield Cluster(address, client, log)
    finally:
        client.close()
        process.stdin.close()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO), *env.get("PYTHONPATH", "").split(os.pathsep)]
    env["PYTHONPATH"] = os.pathsep.join(p for p in dict.fromkeys(paths) if p)
    return env


def _runner(wf: WfHarness, scheduler: str, command: str, target: str, run_id: str) -> RunningWf:
    """``wf run TARGET --executor dask`` (``scheduler`` ``-``: a LocalCluster of its own), or
    ``wf resume RUN_ID``, which finds the executor and scheduler in the run's log."""
    if command == "run":
        address = [] if scheduler == "-" else ["--scheduler", scheduler]
        args = ["run", target, "--run-id", run_id, "--executor", "dask", *address]
    else:
        args = ["resume", run_id]
    process = subprocess.Popen(
        wf.command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=wf.env(),
        cwd=wf.workdir,
        start_new_session=True,
    )
    running = RunningWf(wf, run_id, process)
    wf._started.append(running)  # killed at teardown if still running
    return running


def _run(wf: WfHarness, cluster: Cluster, workflow: dict[str, Any], run_id: str) -> RunningWf:
    return _runner(wf, cluster.address, "run", wf.workflow_file(workflow), run_id)


def _spawned(events: list[Record], step_id: str, attempt: int = 1) -> Record | None:
    return next(
        (
            r
            for r in events
            if r["type"] == "spawned" and r["step"] == step_id and r["attempt"] == attempt
        ),
        None,
    )


def _verified(wf: WfHarness, run_id: str) -> None:
    done = wf.cli("replay", run_id, "--verify")
    assert done.returncode == 0, done.stdout + done.stderr


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def _once_then(first: Sequence[str], later: Sequence[str]) -> str:
    """A shell command running ``first`` in attempt 1 and ``later`` in every other attempt."""
    return (
        f'if [ "$WF_ATTEMPT" = 1 ]; then exec {shlex.join(first)}; '
        f"else exec {shlex.join(later)}; fi"
    )


# -- through a runner ------------------------------------------------------------------------


@needs_dask
def test_the_example_pipeline_succeeds_on_the_cluster(wf: WfHarness, cluster: Cluster) -> None:
    run_id = wf.new_run_id("pipeline")
    result = _runner(wf, cluster.address, "run", str(PIPELINE), run_id).wait(timeout=240)

    assert result.returncode == 0, result.stderr
    assert result.state == "SUCCEEDED"
    assert {s["state"] for s in result.steps.values()} == {"SUCCEEDED"}
    report = PIPELINE.parent / "out" / run_id / "report.html"
    assert report.exists()
    shutil.rmtree(report.parent)
    published = Path(result.paths.root) / "steps" / "publish" / "1.out"
    assert wf.cli("logs", run_id, "publish").stdout == published.read_text()
    assert str(report) in published.read_text()
    _verified(wf, run_id)


@needs_dask
def test_the_workflow_file_can_choose_dask_and_name_worker_resources(
    wf: WfHarness, wf_tasks: TaskKit, cluster: Cluster
) -> None:
    """No flag: the file's ``executor``/``scheduler`` are used and recorded, and each step's
    ``resources`` reach Dask (placement itself: ``test_resources_go_to_dask``)."""
    gpu_steps = [step(f"g{i}", wf_tasks("sleep", "0.3"), resources={"GPU": 1}) for i in range(3)]
    workflow = dag("gpus", gpu_steps, executor="dask", scheduler=cluster.address)

    result = wf.run(workflow, timeout=240)

    assert result.returncode == 0, result.stderr
    options = result.events[0]["options"]
    assert (options["executor"], options["scheduler"]) == ("dask", cluster.address)
    definition = result.events[0]["workflow"]["steps"]
    assert [s["resources"] for s in definition] == [{"GPU": 1}] * 3
    assert all(wf_tasks.starts(f"g{i}") == 1 for i in range(3))
    _verified(wf, result.run_id)


@needs_dask
def test_a_step_runs_on_a_worker_as_it_would_locally(
    wf: WfHarness, cluster: Cluster, tmp_path: Path
) -> None:
    """Its own session, the runner's environment plus the step's, the step's folder; its
    output streamed into the run store, whole (more than the scheduler's queue holds)."""
    (wf.workdir / "stepdir").mkdir()
    script = (
        'echo "$WF_STEP_ID $WF_ATTEMPT $COLOUR $PPID $$ $(ps -o sid= -p $$) $(pwd)"; echo e >&2'
    )
    big = [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'x' * 9_000_000)"]
    workflow = dag(
        "onworker",
        [
            step("where", script, env={"COLOUR": "teal"}, cwd="stepdir"),
            step("big", big),
            step("missing", "no-such-program-anywhere"),
        ],
    )
    run_id = wf.new_run_id("onworker")
    result = _run(wf, cluster, workflow, run_id).wait(timeout=120)

    assert result.state == "FAILED", result.stderr
    steps = Path(result.paths.root) / "steps"
    words = (steps / "where" / "1.out").read_text().split()
    assert words[:3] == ["where", "1", "teal"]
    assert int(words[3]) in cluster.worker_pids().values()  # a worker process started it
    assert words[4] == words[5]  # the leader of its own session
    assert words[6] == str(wf.workdir / "stepdir")
    assert (steps / "where" / "1.err").read_text() == "e\n"
    assert (steps / "big" / "1.out").stat().st_size == 9_000_000
    missing = result.steps["missing"]
    assert (missing["state"], missing["exit_code"]) == ("FAILED", 127)
    _verified(wf, run_id)


@needs_dask
def test_cancel_kills_the_remote_process_group_and_grandchildren(
    wf: WfHarness, wf_tasks: TaskKit, cluster: Cluster, tmp_path: Path
) -> None:
    pidfile = tmp_path / "grandchild.pid"
    workflow = dag(
        "cancel", [step("slow", wf_tasks("hang-with-grandchild", "--pidfile", str(pidfile)))]
    )
    run_id = wf.new_run_id("cancel")
    running = _run(wf, cluster, workflow, run_id)
    running.wait_for(lambda events: _spawned(events, "slow") is not None, 120, "spawned")
    wait_until(pidfile.exists, 60, "grandchild pid file")
    child, grandchild = wf_tasks.pids("start", "slow")[0], int(pidfile.read_text())
    assert _parent(child) in cluster.worker_pids().values()
    assert process_alive(child) and process_alive(grandchild)

    cancel = wf.cancel(run_id, "--grace", "1")

    assert cancel.returncode == 0, cancel.stderr
    result = running.wait()
    assert result.returncode == 3, result.stderr
    assert result.steps["slow"]["state"] == "CANCELLED"
    assert not process_alive(child) and not process_alive(grandchild)
    _verified(wf, run_id)


@needs_dask
@pytest.mark.xfail(
    not RUNNER_RECORDS_INTERRUPTIONS,
    reason="the runner does not record AttemptOutcome.interrupted yet (docs/dask.md)",
    strict=True,
)
def test_a_lost_worker_s_step_runs_again_without_using_a_retry(
    wf: WfHarness, wf_tasks: TaskKit, cluster: Cluster, tmp_path: Path
) -> None:
    pidfile = tmp_path / "grandchild.pid"
    hang = wf_tasks("hang-with-grandchild", "--pidfile", str(pidfile))
    workflow = dag("lost", [step("s", _once_then(hang, wf_tasks("ok")), retries=0)])
    run_id = wf.new_run_id("lost")
    running = _run(wf, cluster, workflow, run_id)
    spawned = running.wait_for(lambda events: _spawned(events, "s") is not None, 120)
    wait_until(pidfile.exists, 60, "grandchild pid file")
    record = _spawned(spawned, "s")
    assert record is not None
    leader, grandchild = int(record["pid"]), int(pidfile.read_text())
    os.kill(_parent(leader), signal.SIGKILL)  # the worker process running the step

    result = running.wait(timeout=120)

    assert result.returncode == 0, result.stderr
    assert not process_alive(leader) and not process_alive(grandchild)
    wf_tasks.assert_no_overlap()
    moves = [(r["from"], r["to"], r.get("reason")) for r in result.events if r["type"] == "step"]
    assert ("RUNNING", "READY", "interrupted") in moves
    assert ("RUNNING", "FAILED", "exit") not in moves
    assert result.steps["s"]["attempts"] == 2
    _verified(wf, run_id)


@needs_dask
def test_sigkill_of_the_runner_then_resume_kills_the_remote_leftovers(
    wf: WfHarness, wf_tasks: TaskKit, cluster: Cluster, tmp_path: Path
) -> None:
    pidfile = tmp_path / "grandchild.pid"
    hang = wf_tasks("hang-with-grandchild", "--pidfile", str(pidfile))
    workflow = dag(
        "resumed",
        [step("first", wf_tasks("ok")), step("slow", _once_then(hang, wf_tasks("ok")), ["first"])],
    )
    run_id = wf.new_run_id("resumed")
    running = _run(wf, cluster, workflow, run_id)
    running.wait_for(lambda events: _spawned(events, "slow") is not None, 120, "spawned")
    wait_until(pidfile.exists, 60, "grandchild pid file")
    child, grandchild = wf_tasks.pids("start", "slow")[0], int(pidfile.read_text())
    running.kill()
    assert process_alive(child) and process_alive(grandchild)  # they live on, on the worker
    created = running.events()[0]
    assert created["options"]["executor"] == "dask"
    assert created["options"]["scheduler"] == cluster.address

    result = _runner(wf, cluster.address, "resume", "-", run_id).wait(timeout=120)

    assert result.returncode == 0, result.stderr
    assert "killing leftover process" in result.stderr
    assert not process_alive(child) and not process_alive(grandchild)
    assert wf_tasks.starts("first") == 1 and wf_tasks.starts("slow") == 2
    wf_tasks.assert_no_overlap()
    events, _ = read_log(result.paths.events)
    interrupted = [(r["step"], r["attempt"]) for r in events if r.get("reason") == "interrupted"]
    assert interrupted == [("slow", 1)]
    _verified(wf, run_id)


@needs_dask
def test_with_no_scheduler_the_runner_s_own_cluster_runs_and_resumes(
    wf: WfHarness, wf_tasks: TaskKit, tmp_path: Path
) -> None:
    """No address: a LocalCluster of the runner's own; it dies with the runner, and what its
    attempts left on this machine is found and killed by the local take-over."""
    pidfile = tmp_path / "grandchild.pid"
    hang = wf_tasks("hang-with-grandchild", "--pidfile", str(pidfile))
    workflow = dag("own", [step("slow", _once_then(hang, wf_tasks("ok")))])
    run_id = wf.new_run_id("own")
    running = _runner(wf, "-", "run", wf.workflow_file(workflow), run_id)
    running.wait_for(lambda events: _spawned(events, "slow") is not None, 180, "spawned")
    wait_until(pidfile.exists, 60, "grandchild pid file")
    child, grandchild = wf_tasks.pids("start", "slow")[0], int(pidfile.read_text())
    worker = _parent(child)
    running.kill()
    wait_until(lambda: not process_alive(worker), 60, "the runner's worker to die with it")
    assert process_alive(child) and process_alive(grandchild)

    result = _runner(wf, "-", "resume", "-", run_id).wait(timeout=180)

    assert result.returncode == 0, result.stderr
    assert "killing leftover process group" in result.stderr
    assert not process_alive(child) and not process_alive(grandchild)
    wf_tasks.assert_no_overlap()
    _verified(wf, run_id)


# -- the executor on its own -----------------------------------------------------------------


class _Reports:
    """What an executor reported, in order."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[tuple[int, int], News]] = queue.SimpleQueue()

    def __call__(self, key: tuple[int, int], news: News) -> None:
        self._queue.put((key, news))

    def next(self, timeout: float = 120) -> tuple[tuple[int, int], News]:
        return self._queue.get(timeout=timeout)

    def empty(self) -> bool:
        return self._queue.empty()


def _spec(paths: RunPaths, step_id: str, attempt: int, argv: list[str], **more: Any) -> LaunchSpec:
    mark = procinfo.attempt_key(paths.root, step_id, attempt)
    env = {
        **_env(),
        "WF_RUN_ID": "direct",
        "WF_STEP_ID": step_id,
        "WF_ATTEMPT": str(attempt),
        procinfo.ATTEMPT_KEY_VAR: mark,
    }
    return LaunchSpec(
        argv=argv,
        cwd=paths.root,
        env=env,
        stdout_path=paths.attempt_file(step_id, attempt, "out"),
        stderr_path=paths.attempt_file(step_id, attempt, "err"),
        kill_grace_sec=1.0,
        mark=mark,
        **more,
    )


@pytest.fixture
def executor(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Any, _Reports, RunPaths]]:
    from wf_engine.runtime.daskexec import DaskExecutor

    paths = RunPaths(str(tmp_path / "run"))
    os.makedirs(paths.root)
    reports = _Reports()
    cluster.worker_pids()  # both workers up (a test before may have lost one)
    executor = DaskExecutor(paths, reports, scheduler=cluster.address)
    try:
        yield executor, reports, paths
    finally:
        executor.close()


@needs_dask
def test_a_lost_worker_s_attempt_is_interrupted_once_its_processes_are_dead(
    executor: tuple[Any, _Reports, RunPaths],
    wf_tasks: TaskKit,
    cluster: Cluster,
    tmp_path: Path,
) -> None:
    dask, reports, paths = executor
    pidfile = tmp_path / "grandchild.pid"
    dask.start(
        (0, 1), _spec(paths, "s", 1, wf_tasks("hang-with-grandchild", "--pidfile", str(pidfile)))
    )
    key, started = reports.next()
    assert key == (0, 1) and isinstance(started, Started)
    wait_until(pidfile.exists, 60, "grandchild pid file")
    child, grandchild = started.pid, int(pidfile.read_text())
    worker = cluster.worker_pids()[str(started.where)]
    assert _parent(child) == worker

    os.kill(worker, signal.SIGKILL)
    key, outcome = reports.next()

    assert key == (0, 1) and isinstance(outcome, AttemptOutcome)
    assert outcome.interrupted is not None and "left the Dask cluster" in outcome.interrupted
    assert not process_alive(child) and not process_alive(grandchild)
    assert "attempt interrupted" in Path(paths.attempt_file("s", 1, "err")).read_text()
    dask.start((0, 2), _spec(paths, "s", 2, wf_tasks("ok")))
    _, again = reports.next()
    assert isinstance(again, Started) and again.where != started.where
    _, done = reports.next()
    assert isinstance(done, AttemptOutcome) and done.returncode == 0 and done.interrupted is None
    wf_tasks.assert_no_overlap()


@needs_dask
def test_resources_go_to_dask(executor: tuple[Any, _Reports, RunPaths], wf_tasks: TaskKit) -> None:
    """Each worker offers one GPU: two attempts wanting one run on two workers, a third waits
    for a GPU; an attempt wanting what no worker offers never starts, and a stop ends it."""
    dask, reports, paths = executor
    gate = paths.root + "/gate"
    wait = [
        sys.executable,
        "-c",
        f"import os, time\nwhile not os.path.exists({gate!r}): time.sleep(0.02)",
    ]
    for index in range(3):
        dask.start((index, 1), _spec(paths, f"g{index}", 1, wait, resources={"GPU": 1}))
    dask.start((3, 1), _spec(paths, "tpu", 1, wf_tasks("ok"), resources={"TPU": 1}))
    first, second = reports.next()[1], reports.next()[1]
    assert isinstance(first, Started) and isinstance(second, Started)
    assert first.where != second.where  # one GPU each: never both on one worker
    assert reports.empty()  # the third waits for a GPU, the TPU attempt for a TPU

    Path(gate).touch()
    seen: dict[int, list[str]] = {}
    while len([k for k, kinds in seen.items() if "AttemptOutcome" in kinds]) < 3:
        (index, _), news = reports.next()
        seen.setdefault(index, []).append(type(news).__name__)
    assert seen.get(3) is None  # still no TPU anywhere
    dask.signal((3, 1), signal.SIGTERM)
    key, stopped = reports.next()
    assert key == (3, 1) and isinstance(stopped, AttemptOutcome)
    assert stopped.returncode == -signal.SIGTERM
    assert (
        "stopped before a worker started it"
        in Path(paths.attempt_file("tpu", 1, "err")).read_text()
    )
    assert wf_tasks.starts("tpu") == 0


@needs_dask
def test_a_program_that_cannot_start_is_a_spawn_failure(
    executor: tuple[Any, _Reports, RunPaths],
) -> None:
    dask, reports, paths = executor
    dask.start((0, 1), _spec(paths, "bad", 1, ["/no/such/program"]))
    _, news = reports.next()
    assert isinstance(news, SpawnFailed)
    assert "/no/such/program" in news.message and "on worker tcp://" in news.message
    assert news.message in Path(paths.attempt_file("bad", 1, "err")).read_text()


@needs_dask
def test_a_daemon_that_left_the_group_is_killed_and_reported(
    executor: tuple[Any, _Reports, RunPaths], wf_tasks: TaskKit, tmp_path: Path
) -> None:
    """Double fork and ``setsid`` on the worker: found by its mark once the step ends."""
    dask, reports, paths = executor
    pidfile = tmp_path / "daemon.pid"
    dask.start(
        (0, 1), _spec(paths, "d", 1, wf_tasks("daemonize", "300", "--pidfile", str(pidfile)))
    )
    _, started = reports.next()
    assert isinstance(started, Started)
    _, outcome = reports.next()

    assert isinstance(outcome, AttemptOutcome) and outcome.returncode == 0
    daemon = int(pidfile.read_text())
    assert outcome.leaked_pids == (daemon,)
    assert not process_alive(daemon)
    note = Path(paths.attempt_file("d", 1, "err")).read_text()
    assert f"left the step's process group but still carried its mark: {daemon}" in note
