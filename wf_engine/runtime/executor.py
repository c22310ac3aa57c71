"""The executor boundary: the only way the runner starts, signals and hears about attempts.

The runner decides; an executor carries out. The runner hands an executor a ``LaunchSpec`` (what
to run, where, with which environment, where its output goes) after the attempt's RUNNING record
is durable and goes on at once: it learns that the attempt started (``Started``, for the
``spawned`` record) or could not (``SpawnFailed``), and later how it ended (``AttemptOutcome``),
from the ``Report`` callback the executor was built with (called from the executor's own thread:
the callback only puts a message on the runner's queue). Starting off the scheduler thread lets
the runner fold and commit while processes are being created. Nothing else crosses the
boundary, so a second executor (processes on a cluster) plugs in without the runner knowing::

    runner --start(key, spec)-----> executor --> attempt processes
           --signal(key, signum)-->
           <--report(key, Started | SpawnFailed | AttemptOutcome)-- (executor's thread)

An executor also answers for a dead runner's attempts (``clear_leftovers``): before a new owner
starts anything, every process of the old attempts must be gone (docs/design.md, "Never two
attempts at once").

An executor that runs attempts elsewhere can lose one without seeing it end (a Dask worker that
left the cluster, ``wf_engine.runtime.daskexec``): once every process of it is known dead, it
reports an ``AttemptOutcome`` with ``interrupted`` set (why), which the runner records as the step
going back to READY without a failure (docs/dask.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from wf_engine.core.fold import RunState
from wf_engine.errors import StoreError

#: ``(step index, attempt number)``: names one attempt across the boundary.
AttemptKey = tuple[int, int]


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """Everything needed to start one attempt."""

    #: The program and its arguments, exec'd as they are (the runner chose shell or not).
    argv: list[str]
    cwd: str
    env: dict[str, str]
    #: Where the attempt's stdout and stderr are kept; created at the first byte written.
    stdout_path: str
    stderr_path: str
    kill_grace_sec: float
    #: The attempt's mark (``procinfo.attempt_key``), also set in ``env``.
    mark: str
    #: Run through ``/bin/sh -c`` instead when ``argv`` cannot be exec'd (missing program, no
    #: permission), so a command exec'd without a shell fails exactly as the shell would make it.
    shell_fallback: list[str] | None = None
    #: Resources the attempt holds while it runs (``{"GPU": 1}``): the Dask executor asks its
    #: workers for them; the local executor has nothing to ask and ignores them.
    resources: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Started:
    """A running attempt's group leader, as recorded in its ``spawned`` record."""

    pid: int
    pgid: int
    start_id: str | None
    #: Where the leader runs when that is not this machine (a Dask worker's address); the pid
    #: means nothing elsewhere.
    where: str | None = None


@dataclass(frozen=True, slots=True)
class SpawnFailed:
    """The attempt's process could not be started (missing program, bad cwd, …)."""

    message: str


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """How an attempt ended, and which escaped processes were killed after it."""

    returncode: int
    stderr_tail: str
    leaked_pids: tuple[int, ...] = ()
    #: Set when the attempt's output could not be kept in the run store: the runner stops (exit 4).
    store_error: str | None = None
    #: Set when the attempt was lost rather than ended (its Dask worker left the cluster, the
    #: scheduler lost it): why, in words. Every process of the attempt is known dead when this is
    #: reported, but its exit status is unknown (``returncode`` is only a placeholder, -SIGKILL).
    #: The runner records it as ``RUNNING -> READY`` with reason ``interrupted`` (the step runs
    #: again without using up a retry), or as CANCELLED / a timeout if it had stopped the attempt.
    interrupted: str | None = None


#: What an executor reports about an attempt: it started, it could not, or it is over (its
#: processes are all gone).
News = Started | SpawnFailed | AttemptOutcome
#: Called from the executor's thread with each piece of news.
Report = Callable[[AttemptKey, News], None]
#: Prints a take-over progress line (what is being killed, what is waited for).
Notify = Callable[[str], None]


class SpawnError(Exception):
    """Raised inside an executor when a process cannot be started; reported as ``SpawnFailed``."""


class AttemptStoreError(StoreError):
    """An attempt's file in the run store could not be created or written (exit 4)."""


class Executor(Protocol):
    """What the runner needs from whatever runs its attempts."""

    def start(self, key: AttemptKey, spec: LaunchSpec) -> None:
        """Start an attempt; the outcome of starting it is reported, never raised."""
        ...

    def signal(self, key: AttemptKey, signum: int) -> None:
        """Signal every process of an attempt (one not spawned yet gets it once it is); a
        finished attempt is left alone."""
        ...

    def kill_all(self) -> None:
        """SIGKILL every running attempt now (the runner is stopping on an error)."""
        ...

    def close(self) -> None:
        """Release the executor's threads and descriptors once no attempt runs."""
        ...

    def clear_leftovers(
        self, state: RunState, notify: Notify, stop_requested: Callable[[], bool]
    ) -> None:
        """Return only once no process of a dead runner's attempts lives; kill what is found."""
        ...
