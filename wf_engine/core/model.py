"""The validated workflow definition: immutable values the rest of the engine trusts.

Nothing in this module parses or checks input; ``wf_engine.core.validation`` is the only way to
build a ``Workflow`` from untrusted JSON, so every other module may assume the invariants listed
here: ids are well formed and unique, dependencies exist, the graph is acyclic, numbers are in
range.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Final

#: Ids of workflows, steps and runs: 1-128 chars of ``[A-Za-z0-9_.-]``, not starting with ``.``
#: or ``-``, so an id can never name a parent folder or look like a CLI option.
ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

DEFAULT_RETRY_BACKOFF_SEC = 1.0
DEFAULT_RETRY_BACKOFF_MAX_SEC = 60.0
DEFAULT_KILL_GRACE_SEC = 5.0

#: Upper bound of every duration a workflow sets (``timeout_sec``, ``retry_backoff_sec``,
#: ``retry_backoff_max_sec``, ``kill_grace_sec``; ``wf cancel --grace`` too): 30 days. A step
#: that needs longer to time out, retry or stop is not a step of a local workflow any more. The
#: bound keeps every wait the engine derives from one of these durations (a queue or lock
#: timeout, a monotonic deadline, a retry's wall-clock due time) far inside what the platform can
#: represent: ``threading.TIMEOUT_MAX`` is about 49.7 days on Windows, 292 years on Linux, and
#: ``datetime`` ends in the year 9999.
MAX_SECONDS: Final = 30 * 24 * 60 * 60
#: Upper bound of ``retries``. Every attempt leaves a log record and three files in the run
#: folder, so the bound caps what one step may write; ten thousand attempts at the longest
#: backoff already span centuries.
MAX_RETRIES: Final = 10_000
#: Upper bound of ``max_parallel``: each running step is a process group, a watcher thread and a
#: lock file, and no single machine runs more than this many at once to any benefit.
MAX_PARALLEL: Final = 10_000
#: Upper bound of one step's amount of a Dask worker resource (``"resources": {"GPU": 1}``):
#: the largest count a float still holds exactly, so what the log says is what Dask is asked.
MAX_RESOURCE: Final = 2**53
#: What may run a workflow's attempts (``wf_engine.runtime.executors``); ``local`` is the default.
EXECUTOR_NAMES: Final = ("local", "dask")


def is_valid_id(value: str) -> bool:
    """True when ``value`` may be used as a workflow, step or run id."""
    return ID_PATTERN.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Step:
    """One step: a command, its dependencies and its failure policy."""

    id: str
    #: A string runs under ``/bin/sh -c``; a tuple is exec'd directly, without a shell.
    command: str | tuple[str, ...]
    depends_on: tuple[str, ...] = ()
    #: Extra attempts after the first one.
    retries: int = 0
    timeout_sec: float | None = None
    env: tuple[tuple[str, str], ...] = ()
    #: Working directory as written, relative to the folder holding the workflow file.
    cwd: str | None = None
    retry_backoff_sec: float = DEFAULT_RETRY_BACKOFF_SEC
    retry_backoff_max_sec: float = DEFAULT_RETRY_BACKOFF_MAX_SEC
    #: Seconds between SIGTERM and SIGKILL when a timeout or cancel stops this step.
    kill_grace_sec: float = DEFAULT_KILL_GRACE_SEC
    #: Dask worker resources an attempt needs, in name order; the local executor ignores them.
    resources: tuple[tuple[str, int | float], ...] = ()

    def backoff_sec(self, failures: int) -> float:
        """Delay before the attempt that follows the ``failures``-th failed attempt:
        ``min(retry_backoff_sec * 2 ** (failures - 1), retry_backoff_max_sec)``.

        Total for every ``failures``: ``2 ** (failures - 1)`` is never built (as a float it
        overflows past 1023 doublings). When the doubled base's binary exponent is above the cap's,
        the product surely exceeds the cap; otherwise it is below twice the cap, so ``ldexp``
        (exactly ``base * 2 ** n``) stays finite.
        """
        base, cap = float(self.retry_backoff_sec), float(self.retry_backoff_max_sec)
        doublings = failures - 1
        if math.frexp(base)[1] + doublings > math.frexp(cap)[1]:
            return cap
        return min(math.ldexp(base, doublings), cap)

    def to_json(self) -> dict[str, Any]:
        """Every field spelled out: a log carries the definition with no defaults left implicit."""
        return {
            "id": self.id,
            "command": self.command if isinstance(self.command, str) else list(self.command),
            "depends_on": list(self.depends_on),
            "retries": self.retries,
            "timeout_sec": self.timeout_sec,
            "env": dict(self.env),
            "cwd": self.cwd,
            "retry_backoff_sec": self.retry_backoff_sec,
            "retry_backoff_max_sec": self.retry_backoff_max_sec,
            "kill_grace_sec": self.kill_grace_sec,
            # Only when set: a log written before resources existed re-encodes to its own bytes.
            **({"resources": dict(self.resources)} if self.resources else {}),
        }


@dataclass(frozen=True, slots=True)
class Workflow:
    """A validated DAG of steps, in definition order (which breaks ties between ready steps)."""

    workflow_id: str
    steps: tuple[Step, ...]
    max_parallel: int | None = None
    #: The executor the file asks for (one of ``EXECUTOR_NAMES``), and the Dask scheduler's
    #: address; the command line and the environment override both.
    executor: str | None = None
    scheduler: str | None = None
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update((step.id, i) for i, step in enumerate(self.steps))

    def index_of(self, step_id: str) -> int:
        """Position of a step in definition order."""
        return self._index[step_id]

    def step(self, step_id: str) -> Step:
        return self.steps[self._index[step_id]]

    def has_step(self, step_id: str) -> bool:
        return step_id in self._index

    def to_json(self) -> dict[str, Any]:
        """The normalised definition: what ``run_created`` stores and ``validate`` accepts back."""
        data: dict[str, Any] = {
            "workflow_id": self.workflow_id,
            "steps": [step.to_json() for step in self.steps],
        }
        if self.max_parallel is not None:
            data["max_parallel"] = self.max_parallel
        if self.executor is not None:
            data["executor"] = self.executor
        if self.scheduler is not None:
            data["scheduler"] = self.scheduler
        return data
