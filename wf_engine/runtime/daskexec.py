"""The Dask executor: each attempt is one Dask task on a worker; the log stays here, one owner.

The runner decides everything (retries, timeouts, cancels) and writes the log, as with the local
executor; Dask only places and runs tasks. Data flow (the runner's thread calls
``start``/``signal``; one executor thread owns every attempt's state and only reports)::

    start(key, spec) --> executor thread --client.submit(run_attempt, spec, job,
                                              key="wf-<run>/<step>/<n>-<runner token>",
                                              pure=False, retries=0, resources=spec.resources)
                                                   |
                                                   v  worker (wf_engine.runtime.daskworker):
                                                      claim, spawn in a new session, drain
    receiver thread <-- bounded queue on the scheduler <-- "started", output chunks, "ended"
         |
         v
    executor thread: output -> steps/<step>/<n>.out|err, report(Started | SpawnFailed |
                     AttemptOutcome) -> the runner's queue
    signal(key, sig) --> ops thread --client.run(signal_attempt, workers=[its worker])

* **Dask never reruns an attempt.** ``retries=0``; and when Dask itself starts a task again after
  losing the worker that ran it, the task finds the attempt claimed (a lock on the scheduler,
  taken before the spawn) and refuses. Cancelling a future never stops a running task, so a
  timeout or a cancel is a signal to the attempt's process group on its worker.
* **A lost attempt is interrupted, once proven dead.** The worker left the cluster (a
  ``remove-worker`` event), or the task's future failed for it (``KilledWorker``, a refusal as
  above, a cancel by a scheduler that lost it): the executor fences the claim (a task not yet
  started never will), reads where the attempt may have run (every claimant left its worker and
  process space before taking the lock), and sweeps there: every process carrying the attempt's
  mark is killed by a worker (or this machine) in that process space, until one reports none
  alive. Only then is ``AttemptOutcome(interrupted=why)`` reported; the runner records the step
  ``RUNNING -> READY`` (reason ``interrupted``) and starts the next attempt, without a retry used.
  Where nobody can look (no worker left in that space) it waits, and says so in the attempt's
  stderr: a new attempt never runs beside an old one.
* **After the runner dies** (``clear_leftovers``): the same fence and sweep, for every attempt
  of the run at once, before anything starts. With the built-in ``LocalCluster`` the cluster
  died with the runner (its workers are its children) and what the attempts left runs on this
  machine: the local take-over (``wf_engine.runtime.leftovers``) finds it.

``distributed`` is imported only when this executor is built (the ``dask`` extra); everything
it gives is ``Any`` to the type checker and stays inside this module and ``daskworker``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import importlib
import logging
import os
import queue
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Any

from wf_engine.core.fold import RunState
from wf_engine.core.model import DEFAULT_KILL_GRACE_SEC
from wf_engine.errors import StoreError, UsageError
from wf_engine.log import durable
from wf_engine.log.storefiles import open_regular
from wf_engine.runtime import leftovers, pidjournal, procinfo
from wf_engine.runtime.executor import (
    AttemptKey,
    AttemptOutcome,
    AttemptStoreError,
    LaunchSpec,
    Notify,
    Report,
    SpawnFailed,
    Started,
)
from wf_engine.runtime.executors import DASK_EXTRA_MISSING
from wf_engine.runtime.processes import (
    append_note,
    create_file,
    leak_note,
    make_step_dir,
    read_tail,
    store_error,
)
from wf_engine.runtime.store import RunPaths

STDERR_TAIL_BYTES = 2048
#: Messages the queue holds before a worker's ``queue_put`` waits (output chunks are <= 64 KiB).
QUEUE_ITEMS = 64
#: How long ``close`` waits for the receiver thread once it asked it to stop.
_RECEIVE_WAIT_SEC = 5.0
#: Between two sweeps of a lost attempt that could not be proven dead yet.
_SWEEP_AGAIN_SEC = 2.0
#: How often a take-over still waiting for leftovers says so.
_WAIT_NOTICE_EVERY_SEC = 10.0
#: Threads for blocking calls to the cluster (signals, fences, sweeps).
_OPS_THREADS = 4
#: Threads per worker of the built-in LocalCluster: each running attempt holds one, mostly idle.
_LOCAL_THREADS_PER_WORKER = 32


class DaskUnavailable(UsageError):
    """The extra is missing, or no scheduler answers at the address given (exit 2)."""


def load_distributed() -> Any:
    """The ``distributed`` module, or ``DaskUnavailable`` naming the extra to install."""
    try:
        return importlib.import_module("distributed")
    except ImportError as exc:
        raise DaskUnavailable(DASK_EXTRA_MISSING) from exc


class _Phase(Enum):
    #: Submitted; no worker said it started it (it may be queued, or claimed and starting).
    SUBMITTED = auto()
    RUNNING = auto()
    #: Its worker or its task was lost: being fenced and swept until proven dead.
    LOST = auto()


@dataclass(eq=False, slots=True)
class _Attempt:
    key: AttemptKey
    spec: LaunchSpec
    #: The Dask task's key.
    task: str
    #: The scheduler's id when the task was submitted (claims live on that scheduler).
    scheduler_id: str
    future: Any = None
    phase: _Phase = _Phase.SUBMITTED
    worker: str | None = None
    space: str | None = None
    pipes: tuple[int, ...] = ()
    #: The strongest signal asked for before the attempt started.
    pending: int | None = None
    fencing: bool = False
    #: Why the attempt was lost, and whether that is an interruption (else a failure).
    lost: str | None = None
    interrupted: bool = True
    #: Process spaces where a lost attempt may have run: each must be swept clean.
    candidates: frozenset[str] | None = None
    sweep_due: float | None = None
    waiting_noted: bool = False
    killed: list[int] = field(default_factory=list)
    #: Output files by stream (1 stdout, 2 stderr), created at their first byte.
    files: dict[int, int] = field(default_factory=dict)
    store_error: str | None = None

    def path(self, stream: int) -> str:
        return self.spec.stdout_path if stream == 1 else self.spec.stderr_path


class WhereJournal:
    """``steps/.workers``: where each attempt started, one line as soon as the runner hears it.

    ``<attempt mark> <worker address> <process space>``, appended without an fsync (it only has
    to outlive the runner, as the pid journal does). The claims on the scheduler say the same,
    but die with it: a runner resuming after the scheduler restarted still knows which process
    spaces must prove the dead runner's attempts dead. Advisory: a lost line hides nothing the
    claims or the sweep of every worker find.
    """

    def __init__(self, paths: RunPaths) -> None:
        self.path = os.path.join(paths.root, "steps", ".workers")
        self._fd = -1

    def append(self, mark: str, worker: str, space: str) -> None:
        """Raises ``AttemptStoreError`` naming the file when it cannot be written."""
        if self._fd < 0:
            make_step_dir(os.path.dirname(self.path))
            self._fd = create_file(self.path, os.O_WRONLY | os.O_APPEND)
        line = f"{mark} {worker} {space}\n".encode(errors="replace")
        try:
            durable.write_advisory(self._fd, line)
        except OSError as exc:
            raise store_error(self.path, "cannot write", exc) from exc

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @staticmethod
    def spaces(paths: RunPaths) -> dict[str, set[str]]:
        """Attempt mark -> process spaces it started in, from whatever of the file is readable."""
        try:
            with open_regular(os.path.join(paths.root, "steps", ".workers")) as file:
                text = file.read(64 * 1024 * 1024).decode(errors="replace")
        except (OSError, StoreError):
            return {}
        found: dict[str, set[str]] = {}
        for line in text.split("\n")[:-1]:  # whole lines only: the last may be cut short
            words = line.split(" ", 2)
            if len(words) == 3 and words[0].count("/") == 2 and words[2]:
                found.setdefault(words[0], set()).add(words[2])
        return found


class DaskExecutor:
    """Runs attempts as Dask tasks (see the module docstring).

    ``scheduler``: the address of a running scheduler (``tcp://HOST:PORT``); without one, a
    ``LocalCluster`` of ``workers`` worker processes (default: one per CPU) is started on the
    loopback interface for this runner and closed with it. ``worker_resources`` are the
    resources each of its workers offers (``{"GPU": 1}``).
    """

    def __init__(
        self,
        paths: RunPaths,
        report: Report,
        scheduler: str | None = None,
        *,
        workers: int | None = None,
        threads_per_worker: int = _LOCAL_THREADS_PER_WORKER,
        worker_resources: dict[str, float] | None = None,
        connect_timeout: float = 30.0,
    ) -> None:
        self._dask = load_distributed()
        from wf_engine.runtime import daskworker

        self._worker_module = daskworker
        self._paths = paths
        self._report = report
        self._run_mark = procinfo.run_mark(paths.root)
        self._token = secrets.token_hex(4)
        self.scheduler = scheduler
        self._cluster: Any = None
        if scheduler is None:
            self._cluster = _local_cluster(
                self._dask, workers, threads_per_worker, worker_resources
            )
        address = scheduler if scheduler is not None else self._cluster.scheduler_address
        try:
            self._client: Any = self._dask.Client(
                address, timeout=connect_timeout, set_as_default=False
            )
        except Exception as exc:  # refused, timed out, a malformed address, not a scheduler
            self._close_cluster()
            raise DaskUnavailable(
                f"cannot connect to the Dask scheduler at {address}: {exc or type(exc).__name__}"
            ) from exc
        self._queue_name = f"{daskworker.NAMESPACE}:{self._run_mark}:{self._token}"
        try:
            self._queue: Any = self._prepare_scheduler()
            self._scheduler_id = self._current_scheduler_id()
            #: Process spaces of every worker seen: where an attempt of unknown place may be.
            self._spaces: set[str] = set(self._client.run(daskworker.process_space).values())
        except ModuleNotFoundError as exc:
            self._client.close()
            self._close_cluster()
            raise DaskUnavailable(
                f"the Dask workers at {address} cannot import {exc.name!r}: install "
                "wf-engine (the same version) on every worker"
            ) from exc
        except BaseException:
            self._client.close()
            self._close_cluster()
            raise
        self._local_space = daskworker.process_space()
        self._spaces.add(self._local_space)
        #: The built-in cluster's attempts run here: journal them for a local take-over.
        self._journal = pidjournal.PidJournal(paths) if self._cluster is not None else None
        self._where = WhereJournal(paths)
        self._attempts: dict[AttemptKey, _Attempt] = {}
        self._by_task: dict[str, _Attempt] = {}
        self._watched: set[str] = set()
        self._inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._receiver: threading.Thread | None = None
        self._ops: concurrent.futures.ThreadPoolExecutor | None = None
        self._closing = threading.Event()
        self._closed = False

    @property
    def address(self) -> str:
        """The scheduler's address (the built-in cluster's, when none was given)."""
        return str(self._client.scheduler.address)

    # -- the runner's side -------------------------------------------------------------------

    def start(self, key: AttemptKey, spec: LaunchSpec) -> None:
        if self._thread is None:
            self._start_threads()
        self._post(("start", key, spec))

    def signal(self, key: AttemptKey, signum: int) -> None:
        self._post(("signal", key, signum))

    def kill_all(self) -> None:
        self._post(("kill_all",))

    def close(self) -> None:
        """Stop the threads, forget this runner's claims and queue, disconnect (and stop the
        built-in cluster). Bounded: a cluster that does not answer is left as it is."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._post(("close",))
            self._thread.join()
        self._closing.set()
        with contextlib.suppress(Exception):
            self._queue.put({"stop": True}, timeout=5)
        if self._receiver is not None:
            self._receiver.join(timeout=_RECEIVE_WAIT_SEC)
        if self._ops is not None:
            self._ops.shutdown(wait=True)
        futures = [a.future for a in self._attempts.values() if a.future is not None]
        with contextlib.suppress(Exception):
            if futures:
                self._client.cancel(futures, force=True)
            self._forget_claims()
        with contextlib.suppress(Exception):
            self._queue.close()
        with contextlib.suppress(Exception):
            self._client.close(timeout=10)
        self._close_cluster()
        if self._journal is not None:
            self._journal.close()
        self._where.close()

    def clear_leftovers(
        self, state: RunState, notify: Notify, stop_requested: Callable[[], bool]
    ) -> None:
        """Return only once no process of the run's earlier attempts lives; kill what is found.

        The built-in cluster died with the dead runner: its attempts' processes run on this
        machine, found as a local run's are. On a cluster: fence every RUNNING attempt (so a
        task still queued never starts), learn where each may have run, and sweep the whole
        run's mark there (and here) until every such process space reports nothing alive.
        """
        if self._cluster is not None:
            leftovers.clear_leftovers(self._paths, state, notify, stop_requested)
            return
        try:
            self._clear_cluster_leftovers(state, notify, stop_requested)
        except leftovers.TakeoverInterrupted:
            raise
        except Exception as exc:
            raise DaskUnavailable(
                f"the Dask scheduler at {self.address} failed while the leftovers of the "
                f"run's attempts were being looked for ({type(exc).__name__}: {exc}); nothing "
                "was started and the run was left as it was"
            ) from exc

    def _clear_cluster_leftovers(
        self, state: RunState, notify: Notify, stop_requested: Callable[[], bool]
    ) -> None:
        grace = max(
            (state.workflow.steps[index].kill_grace_sec for index in state.running),
            default=DEFAULT_KILL_GRACE_SEC,
        )
        candidates: set[str] = set()
        started_in = WhereJournal.spaces(self._paths) if state.running else {}
        for index in state.running:
            mark = procinfo.attempt_key(
                self._paths.root, state.step_id(index), state.steps[index].attempt
            )
            acquired, spaces = self._fence(mark)
            # Where it started (the claims die with a scheduler that restarted; this journal
            # does not), and where it was claimed.
            candidates |= started_in.get(mark, set())
            if not acquired:
                candidates |= spaces or self._spaces
        next_notice = 0.0
        while True:
            results = self._sweep(self._run_mark + "/", False, [], grace, local=True)
            self._spaces.update(str(r["space"]) for r in results)
            for result in results:
                for pid, mark in result["killed"]:
                    notify(f"{_owner(mark)}: killing leftover process {pid} {_on(result)}")
            clean = {r["space"] for r in results if not r["alive"]}
            missing = candidates - clean
            alive = [(pid, mark, r) for r in results for pid, mark in r["alive"]]
            if not missing and not alive:
                return
            now = time.monotonic()
            if now >= next_notice:
                notify(f"waiting before running anything: {_describe_wait(missing, alive)}")
                next_notice = now + _WAIT_NOTICE_EVERY_SEC
            deadline = now + _SWEEP_AGAIN_SEC
            while time.monotonic() < deadline:
                if stop_requested():
                    raise leftovers.TakeoverInterrupted(
                        "interrupted while waiting for leftover processes on the cluster ("
                        f"{_describe_wait(missing, alive)}); nothing was started and the run "
                        "was left as it was"
                    )
                time.sleep(0.1)

    # -- blocking calls to the cluster (ops threads, or the caller at take-over) ------------

    def _prepare_scheduler(self) -> Any:
        """Register the worker plugin and create this runner's queue; returns the queue."""
        worker = self._worker_module
        self._client.register_plugin(worker.WfWorkerPlugin(), name=worker.NAMESPACE)
        return self._dask.Queue(self._queue_name, client=self._client, maxsize=QUEUE_ITEMS)

    def _current_scheduler_id(self) -> str:
        return str(self._client.scheduler_info(n_workers=0)["id"])

    def _fence(self, mark: str) -> tuple[bool, set[str]]:
        """Take the attempt's claim for this runner, so that no task starts it any more.

        Returns whether it was free (then nothing ever ran the attempt) and, if not, the process
        spaces of everyone who tried to claim it (the holder among them).
        """
        worker = self._worker_module
        path = list(worker.claim_path(self._run_mark, mark))
        lock = self._dask.MultiLock([worker.lock_name(mark)], client=self._client)
        acquired = bool(lock.acquire(blocking=False))
        # Kept so that the lock is released with the run's claims (``_forget_claims``).
        self._client.set_metadata([*path, lock.id], {"fence": True, "held": acquired})
        claims = self._client.get_metadata(path, None) or {}
        spaces = {
            str(claim["space"])
            for claim in claims.values()
            if isinstance(claim, dict) and "space" in claim
        }
        return acquired, spaces

    def _sweep(
        self, prefix: str, exact: bool, pipes: list[int], grace: float, local: bool
    ) -> list[dict[str, Any]]:
        """Every worker (and, with ``local``, this machine) kills what ``prefix`` names."""
        worker = self._worker_module
        results: list[dict[str, Any]] = []
        try:
            answers = self._client.run(worker.sweep, prefix, exact, pipes, grace, on_error="return")
        except Exception:
            answers = {}
        for address, answer in answers.items():
            if isinstance(answer, dict):
                results.append({**answer, "worker": str(address)})
        if local:
            here = worker.sweep_here(prefix, exact, tuple(pipes), grace)
            results.append({**here, "worker": None})
        return results

    def _forget_claims(self) -> None:
        """Release every lock this run's attempts took and drop their claims (at close: no
        task of this run can start any more)."""
        namespace = self._worker_module.NAMESPACE
        claims = self._client.get_metadata([namespace, self._run_mark], None) or {}
        ids = [
            lock_id
            for by_id in claims.values()
            if isinstance(by_id, dict)
            for lock_id, claim in by_id.items()
            if not (isinstance(claim, dict) and claim.get("held") is False)
        ]
        if ids:
            self._client.sync(_release_locks, self._client, ids)
        self._client.set_metadata([namespace, self._run_mark], None)

    # -- threads -----------------------------------------------------------------------------

    def _start_threads(self) -> None:
        self._ops = concurrent.futures.ThreadPoolExecutor(
            max_workers=_OPS_THREADS, thread_name_prefix="wf-dask-op"
        )
        self._receiver = threading.Thread(target=self._receive, name="wf-dask-recv", daemon=True)
        self._receiver.start()
        self._thread = threading.Thread(target=self._loop, name="wf-dask", daemon=True)
        self._thread.start()

    def _post(self, message: tuple[Any, ...]) -> None:
        self._inbox.put(message)

    def _op(self, function: Callable[..., Any], *args: Any) -> None:
        """Run a blocking call to the cluster off the executor thread; it posts its answer."""
        assert self._ops is not None
        with contextlib.suppress(RuntimeError):  # shut down: the runner is closing
            self._ops.submit(function, *args)

    def _receive(self) -> None:
        """The receiver thread: messages from the workers, in batches, to the executor thread.

        Its ``get`` waits on the scheduler until a message comes (no timeout: one that expires
        is logged there as an error); ``close`` wakes it with a message of its own.
        """
        while not self._closing.is_set():
            try:
                first = self._queue.get()
            except Exception:
                # The scheduler is unreachable (lost futures tell the executor what that means
                # for the attempts), or it is a new one: then the queue and plugin are made again.
                self._closing.wait(0.5)
                self._after_scheduler_change()
                continue
            # The first message goes on at once; whatever queued up behind it follows together.
            batch: list[dict[str, Any]] = [first]
            while batch:
                self._post(("items", batch))
                if any(item.get("stop") for item in batch):
                    return
                try:
                    batch = self._queue.get(batch=True)
                except Exception:
                    break

    def _after_scheduler_change(self) -> None:
        with contextlib.suppress(Exception):
            current = self._current_scheduler_id()
            if current != self._scheduler_id:
                self._queue = self._prepare_scheduler()
                self._scheduler_id = current

    def _loop(self) -> None:
        """The executor thread: the only one touching attempts."""
        while True:
            due = [a.sweep_due for a in self._attempts.values() if a.sweep_due is not None]
            timeout = max(0.0, min(due) - time.monotonic()) if due else None
            try:
                message = self._inbox.get(timeout=timeout)
            except queue.Empty:
                message = None
            if message is not None:
                if message[0] == "close":
                    return
                self._handle(message)
            now = time.monotonic()
            for attempt in list(self._attempts.values()):
                if attempt.sweep_due is not None and attempt.sweep_due <= now:
                    # Again: the fence if it never got an answer, else the sweep.
                    attempt.sweep_due = None
                    if attempt.candidates is None:
                        self._op(self._fence_op, attempt.task, attempt.spec.mark)
                    else:
                        self._sweep_later(attempt)

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "start":
            self._launch(message[1], message[2])
        elif kind == "signal":
            self._signal(message[1], message[2])
        elif kind == "kill_all":
            for key in list(self._attempts):
                self._signal(key, signal.SIGKILL)
        elif kind == "items":
            for item in message[1]:
                attempt = self._by_task.get(str(item.get("t")))
                for said in item.get("m") or ():
                    if attempt is not None and attempt.task in self._by_task:
                        self._item(attempt, said)
        elif kind == "future":
            self._future_over(message[1], message[2], message[3])
        elif kind == "removed":
            self._worker_removed(message[1], message[2])
        elif kind == "fenced":
            self._fenced(*message[1:])
        elif kind == "stop-fenced":
            self._stop_fenced(message[1], message[2])
        elif kind == "swept":
            self._swept(message[1], message[2])
        elif kind == "op-failed":
            attempt = self._by_task.get(message[1])
            if attempt is not None and attempt.phase is _Phase.LOST:
                attempt.sweep_due = time.monotonic() + _SWEEP_AGAIN_SEC

    # -- starting, signalling --------------------------------------------------------------

    def _launch(self, key: AttemptKey, spec: LaunchSpec) -> None:
        _, step_id, number = spec.mark.split("/", 2)
        run_id = spec.env.get("WF_RUN_ID", self._run_mark)
        task = f"wf-{run_id}/{step_id}/{number}-{self._token}"
        attempt = _Attempt(key, spec, task, self._scheduler_id)
        worker = self._worker_module
        job = worker.Job(
            queue=self._queue_name,
            claims=worker.claim_path(self._run_mark, spec.mark),
            lock=worker.lock_name(spec.mark),
        )
        try:
            attempt.future = self._client.submit(
                worker.run_attempt,
                spec,
                job,
                key=task,
                pure=False,
                retries=0,
                resources=dict(spec.resources) or None,
            )
        except Exception as exc:
            message = f"cannot submit the attempt to Dask: {exc}"
            append_note(spec.stderr_path, f"wf: {message}\n")
            self._report(key, SpawnFailed(message))
            return
        self._attempts[key] = attempt
        self._by_task[task] = attempt
        attempt.future.add_done_callback(functools.partial(self._future_done, task))

    def _future_done(self, task: str, future: Any) -> None:
        """In Dask's callback thread: what became of a task, for the executor thread."""
        status = str(future.status)
        if status == "finished":
            self._post(("future", task, "finished", ""))
            return
        if status != "error":
            self._post(("future", task, "cancelled", status))
            return
        try:
            error = future.exception(timeout=30)
        except Exception as exc:  # the error itself could not be fetched: the task is lost
            self._post(("future", task, "cancelled", f"{type(exc).__name__}: {exc}"))
            return
        if isinstance(error, self._worker_module.AttemptDenied):
            kind = "denied"
        elif isinstance(error, self._dask.KilledWorker):
            kind = "killed"
        else:
            kind = "error"
        self._post(("future", task, kind, f"{type(error).__name__}: {error}"))

    def _signal(self, key: AttemptKey, signum: int) -> None:
        attempt = self._attempts.get(key)
        if attempt is None:
            return
        if attempt.phase is _Phase.RUNNING and attempt.worker is not None:
            self._op(self._deliver_op, attempt.worker, attempt.spec.mark, signum)
        elif attempt.phase is _Phase.SUBMITTED:
            # Not started anywhere yet: take its claim so that it never starts; if a worker has
            # it already, the signal goes out as soon as it says it started.
            attempt.pending = (
                signal.SIGKILL if signal.SIGKILL in (attempt.pending, signum) else signum
            )
            if not attempt.fencing:
                attempt.fencing = True
                self._op(self._stop_fence_op, attempt.task, attempt.spec.mark)

    def _deliver_op(self, worker: str, mark: str, signum: int) -> None:
        with contextlib.suppress(Exception):  # a worker that left: its loss is reported
            self._client.run(
                self._worker_module.signal_attempt,
                mark,
                signum,
                workers=[worker],
                on_error="return",
            )

    def _stop_fence_op(self, task: str, mark: str) -> None:
        try:
            acquired, _ = self._fence(mark)
        except Exception:
            acquired = False  # the scheduler is unreachable: its loss decides
        self._post(("stop-fenced", task, acquired))

    def _stop_fenced(self, task: str, acquired: bool) -> None:
        attempt = self._by_task.get(task)
        if attempt is None or attempt.phase is not _Phase.SUBMITTED or not acquired:
            return
        self._op(self._cancel_op, attempt.future)
        append_note(attempt.spec.stderr_path, "wf: stopped before a worker started it\n")
        assert attempt.pending is not None
        outcome = AttemptOutcome(-attempt.pending, "", (), attempt.store_error)
        self._finish(attempt, outcome)

    def _cancel_op(self, future: Any) -> None:
        with contextlib.suppress(Exception):
            self._client.cancel([future], force=True)

    # -- what the workers say --------------------------------------------------------------

    def _item(self, attempt: _Attempt, item: dict[str, Any]) -> None:
        kind = item.get("k")
        if kind == "out":
            self._write(attempt, int(item["s"]), bytes(item["d"]))
        elif kind == "started":
            self._started(attempt, item)
        elif kind == "ended":
            self._ended(attempt, item)
        elif kind == "spawn_failed":
            message = str(item["m"])
            append_note(attempt.spec.stderr_path, f"wf: {message}\n")
            self._finish(attempt, SpawnFailed(message))

    def _started(self, attempt: _Attempt, item: dict[str, Any]) -> None:
        worker, space = str(item["w"]), str(item["space"])
        attempt.worker, attempt.space = worker, space
        attempt.pipes = tuple(int(inode) for inode in item["pipes"])
        self._spaces.add(space)
        if attempt.phase is _Phase.LOST:
            if attempt.candidates is not None:
                attempt.candidates |= {space}
            return
        attempt.phase = _Phase.RUNNING
        pid, start_id = int(item["pid"]), item["sid"]
        self._watch_worker(worker)
        try:
            self._where.append(attempt.spec.mark, worker, space)
            if self._journal is not None and space == self._local_space:
                leader = pidjournal.Leader(pid, start_id, attempt.pipes)
                self._journal.append(attempt.spec.mark, leader)
        except AttemptStoreError as exc:
            # Nothing may run that no record or journal names: the run stops (exit 4).
            attempt.store_error = str(exc)
            attempt.pending = signal.SIGKILL
        self._report(attempt.key, Started(pid, pid, start_id, where=worker))
        if attempt.pending is not None:
            self._op(self._deliver_op, worker, attempt.spec.mark, attempt.pending)

    def _ended(self, attempt: _Attempt, item: dict[str, Any]) -> None:
        """The worker drained the attempt's group: its processes are all gone."""
        returncode = int(item["rc"])
        leaked = tuple(int(pid) for pid in item["leaked"])
        self._close_files(attempt)
        if leaked:
            append_note(attempt.spec.stderr_path, leak_note(leaked))
        tail = read_tail(attempt.spec.stderr_path, STDERR_TAIL_BYTES) if returncode else ""
        self._finish(attempt, AttemptOutcome(returncode, tail, leaked, attempt.store_error))

    def _write(self, attempt: _Attempt, stream: int, data: bytes) -> None:
        fd = attempt.files.get(stream)
        path = attempt.path(stream)
        if fd is None:
            if attempt.store_error is not None:
                return
            try:
                make_step_dir(os.path.dirname(path))
                fd = create_file(path, os.O_WRONLY | os.O_TRUNC)
            except AttemptStoreError as exc:
                attempt.store_error = str(exc)
                return
            attempt.files[stream] = fd
        if fd < 0:
            return  # the file failed: the run stops, the rest is dropped
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            attempt.store_error = str(store_error(path, "cannot write", exc))
            os.close(fd)
            attempt.files[stream] = -1

    def _close_files(self, attempt: _Attempt) -> None:
        for stream, fd in list(attempt.files.items()):
            if fd >= 0:
                os.close(fd)
            attempt.files[stream] = -1

    def _finish(self, attempt: _Attempt, news: SpawnFailed | AttemptOutcome) -> None:
        self._close_files(attempt)
        self._attempts.pop(attempt.key, None)
        self._by_task.pop(attempt.task, None)
        if attempt.future is not None:
            # Forgotten by the scheduler: a result lost with a worker is never recomputed.
            with contextlib.suppress(Exception):
                attempt.future.release()
            attempt.future = None
        self._report(attempt.key, news)

    # -- losing attempts -------------------------------------------------------------------

    def _watch_worker(self, worker: str) -> None:
        """Hear when ``worker`` leaves the cluster (its ``remove-worker`` event)."""
        if worker in self._watched:
            return
        self._watched.add(worker)
        self._client.subscribe_topic(worker, functools.partial(self._worker_event, worker))
        self._op(self._check_worker_op, worker)

    def _worker_event(self, worker: str, event: Any) -> None:
        """In the client's event loop: pass a worker's removal on."""
        _, message = event
        if isinstance(message, dict) and message.get("action") == "remove-worker":
            tasks = frozenset(str(key) for key in message.get("processing-tasks") or ())
            self._post(("removed", worker, tasks))

    def _check_worker_op(self, worker: str) -> None:
        """A worker that left before we listened would never be heard of: ask once."""
        try:
            present = worker in self._client.scheduler_info(n_workers=-1)["workers"]
        except Exception:
            return
        if not present:
            self._post(("removed", worker, frozenset()))

    def _worker_removed(self, worker: str, tasks: frozenset[str]) -> None:
        for attempt in list(self._attempts.values()):
            if attempt.phase is not _Phase.LOST and (
                attempt.worker == worker or attempt.task in tasks
            ):
                self._lose(attempt, f"its worker {worker} left the Dask cluster")

    def _future_over(self, task: str, kind: str, detail: str) -> None:
        attempt = self._by_task.get(task)
        if attempt is None or attempt.phase is _Phase.LOST or kind == "finished":
            return  # a finished task's "ended" (or "spawn_failed") is on the queue before it
        if kind == "denied":
            self._lose(attempt, "its worker was lost (Dask started the task again elsewhere)")
        elif kind == "killed":
            self._lose(attempt, f"Dask lost the workers running it ({detail})")
        elif kind == "cancelled":
            self._lose(attempt, f"the Dask scheduler lost its task ({detail})")
        else:
            self._lose(attempt, f"its Dask task failed ({detail})", interrupted=False)

    def _lose(self, attempt: _Attempt, why: str, interrupted: bool = True) -> None:
        attempt.phase = _Phase.LOST
        attempt.lost, attempt.interrupted = why, interrupted
        self._op(self._cancel_op, attempt.future)
        self._op(self._fence_op, attempt.task, attempt.spec.mark)

    def _fence_op(self, task: str, mark: str) -> None:
        try:
            acquired, spaces = self._fence(mark)
            scheduler_id = self._current_scheduler_id()
        except Exception:
            self._post(("op-failed", task))
            return
        self._post(("fenced", task, acquired, frozenset(spaces), scheduler_id))

    def _fenced(self, task: str, acquired: bool, spaces: frozenset[str], scheduler_id: str) -> None:
        attempt = self._by_task.get(task)
        if attempt is None or attempt.phase is not _Phase.LOST:
            return
        same_scheduler = scheduler_id == attempt.scheduler_id
        if acquired and same_scheduler and attempt.space is None:
            self._resolve(attempt)  # nobody ever claimed it: nothing of it ever ran
            return
        candidates = set(spaces)
        if attempt.space is not None:
            candidates.add(attempt.space)
        if not same_scheduler or not candidates:
            # Its claims lived on a scheduler that is gone: it may have run anywhere we know of.
            candidates |= self._spaces
        attempt.candidates = frozenset(candidates)
        self._sweep_later(attempt)

    def _sweep_later(self, attempt: _Attempt) -> None:
        """Sweep for a lost attempt now, in an ops thread (with what it needs copied)."""
        assert attempt.candidates is not None
        local = self._local_space in attempt.candidates
        spec = attempt.spec
        args = (attempt.task, spec.mark, list(attempt.pipes), spec.kill_grace_sec, local)
        self._op(self._sweep_op, *args)

    def _sweep_op(self, task: str, mark: str, pipes: list[int], grace: float, local: bool) -> None:
        try:
            results = self._sweep(mark, True, pipes, grace, local=local)
        except Exception:
            self._post(("op-failed", task))
            return
        self._post(("swept", task, results))

    def _swept(self, task: str, results: list[dict[str, Any]]) -> None:
        attempt = self._by_task.get(task)
        if attempt is None or attempt.phase is not _Phase.LOST or attempt.candidates is None:
            return
        attempt.killed += [int(pid) for r in results for pid, _ in r["killed"]]
        self._spaces.update(str(r["space"]) for r in results)
        clean = {str(r["space"]) for r in results if not r["alive"]}
        missing = attempt.candidates - clean
        if not missing:
            self._resolve(attempt)
            return
        if not attempt.waiting_noted:
            attempt.waiting_noted = True
            alive = [(pid, mark, r) for r in results for pid, mark in r["alive"]]
            append_note(
                attempt.spec.stderr_path,
                f"wf: {attempt.lost}; waiting until it is proven dead before anything runs "
                f"again: {_describe_wait(missing, alive)}\n",
            )
        attempt.sweep_due = time.monotonic() + _SWEEP_AGAIN_SEC

    def _resolve(self, attempt: _Attempt) -> None:
        """A lost attempt is proven dead: report it interrupted (or failed)."""
        assert attempt.lost is not None
        killed = sorted(set(attempt.killed))
        listed = f" (killed: {', '.join(map(str, killed))})" if killed else ""
        verdict = "interrupted" if attempt.interrupted else "failed"
        append_note(
            attempt.spec.stderr_path,
            f"wf: {attempt.lost}; none of its processes lives{listed}: attempt {verdict}\n",
        )
        self._close_files(attempt)
        if attempt.interrupted:
            tail = read_tail(attempt.spec.stderr_path, STDERR_TAIL_BYTES)
            outcome = AttemptOutcome(
                -signal.SIGKILL, tail, (), attempt.store_error, interrupted=attempt.lost
            )
            self._finish(attempt, outcome)
        elif attempt.space is None:
            self._finish(attempt, SpawnFailed(attempt.lost))
        else:
            tail = read_tail(attempt.spec.stderr_path, STDERR_TAIL_BYTES)
            self._finish(attempt, AttemptOutcome(-signal.SIGKILL, tail, (), attempt.store_error))

    def _close_cluster(self) -> None:
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close(timeout=10)
            self._cluster = None


async def _release_locks(client: Any, ids: Iterable[str]) -> None:
    """Release many claim locks at once (one round trip's worth of time, not one each)."""
    await asyncio.gather(
        *(client.scheduler.multi_lock_release(id=lock_id) for lock_id in ids),
        return_exceptions=True,
    )


def _local_cluster(
    dask: Any, workers: int | None, threads: int, resources: dict[str, float] | None
) -> Any:
    """Worker processes on this machine, listening on loopback only, for one runner.

    Dask never runs a task again after losing its worker here (``allowed-failures: 0``): the
    task fails with ``KilledWorker`` at once and the executor reports the attempt interrupted.
    """
    config = importlib.import_module("dask.config")
    with config.set({"distributed.scheduler.allowed-failures": 0}):
        return dask.LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=threads,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
            resources=resources,
        )


def _owner(mark: str) -> str:
    """``step 'x' attempt 2`` for an attempt's mark (``<run mark>/<step>/<attempt>``)."""
    parts = mark.split("/", 2)
    return f"step {parts[1]!r} attempt {parts[2]}" if len(parts) == 3 else f"mark {mark!r}"


def _on(result: dict[str, Any]) -> str:
    worker = result.get("worker")
    return f"on worker {worker}" if worker else "on this machine"


def _describe_wait(missing: Iterable[str], alive: list[tuple[int, str, dict[str, Any]]]) -> str:
    parts = [f"{_owner(mark)}: pid {pid} still alive {_on(r)}" for pid, mark, r in alive]
    parts += [f"no worker answers for {space!r}" for space in sorted(missing)]
    return "; ".join(parts) + " (a new attempt never runs beside an old one)"
