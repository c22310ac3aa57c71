"""Choosing what runs a run's attempts: ``local`` process groups (the default) or ``dask``.

``executor_factory(name, scheduler)`` gives the ``ExecutorFactory`` a ``Runner`` is built with
(``create_run(..., executor=...)``, ``resume_run(..., executor=...)``). What is not given comes
from the environment, then from the workflow's own options (``default``), then the default::

    name       --executor      else $WF_EXECUTOR        else the workflow's  else "local"
    scheduler  --scheduler     else $WF_DASK_SCHEDULER  else the workflow's  else none: a
                                                                                 LocalCluster

``resolve`` makes that choice (an ``ExecutorChoice``, what a run records in its options so that
``wf resume`` reconnects to the same scheduler); ``factory_for`` builds exactly the executor a
choice names, reading nothing else (resuming uses it with the recorded choice). Only ``dask``
takes a scheduler. The Dask executor's module, and ``distributed`` with it, is imported only
when ``dask`` is chosen, so a plain ``wf run`` never pays for it.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
from dataclasses import dataclass

from wf_engine.core.events import RunOptions
from wf_engine.core.model import EXECUTOR_NAMES, Workflow
from wf_engine.errors import UsageError
from wf_engine.runtime.localexec import LocalExecutor
from wf_engine.runtime.runner import ExecutorFactory

EXECUTOR_VAR = "WF_EXECUTOR"
SCHEDULER_VAR = "WF_DASK_SCHEDULER"
LOCAL, DASK = EXECUTOR_NAMES
#: What to tell a user who asked for Dask without the extra.
DASK_EXTRA_MISSING = "the dask executor needs `pip install 'wf-engine[dask]'`"


@dataclass(frozen=True, slots=True)
class ExecutorChoice:
    """An executor by name, and the scheduler it connects to (``None``: a LocalCluster)."""

    name: str = LOCAL
    scheduler: str | None = None

    @classmethod
    def of_workflow(cls, workflow: Workflow) -> ExecutorChoice:
        """What the workflow file asks for (its ``executor`` and ``scheduler``)."""
        return cls(workflow.executor or LOCAL, workflow.scheduler)

    @classmethod
    def recorded(cls, options: RunOptions) -> ExecutorChoice:
        """What a run recorded in ``run_created``: no ``executor`` there means local."""
        return cls(options.executor or LOCAL, options.scheduler)

    def moved_to(self, scheduler: str | None) -> ExecutorChoice:
        """The same cluster at a new address (``None``: where it was); only Dask has one."""
        if scheduler is None:
            return self
        if self.name != DASK:
            raise UsageError(f"--scheduler: this run uses the {self.name} executor, not dask")
        return ExecutorChoice(DASK, scheduler.strip() or None)

    def record_into(self, options: RunOptions) -> RunOptions:
        """``options`` carrying this choice (nothing added for local: its logs stay as before)."""
        if self.name == LOCAL:
            return options
        return dataclasses.replace(options, executor=self.name, scheduler=self.scheduler)


def resolve(
    name: str | None = None,
    scheduler: str | None = None,
    default: ExecutorChoice | None = None,
) -> ExecutorChoice:
    """The executor asked for: arguments, else the environment, else ``default``, else local.

    ``UsageError`` (exit 2) for an unknown name, or a ``scheduler`` argument without Dask.
    """
    fallback = default or ExecutorChoice()
    env_name = os.environ.get(EXECUTOR_VAR) or None
    chosen = (name or env_name or fallback.name).strip().lower()
    if chosen == LOCAL:
        if scheduler:
            raise UsageError("--scheduler is for the dask executor (--executor dask)")
        return ExecutorChoice(LOCAL)
    if chosen != DASK:
        source = "" if name else f" (from ${EXECUTOR_VAR})" if env_name else " (from the workflow)"
        raise _unknown(chosen, source)
    address = scheduler or os.environ.get(SCHEDULER_VAR) or fallback.scheduler
    return ExecutorChoice(DASK, address.strip() if address and address.strip() else None)


def factory_for(choice: ExecutorChoice) -> ExecutorFactory:
    """The factory of exactly ``choice`` (nothing read from the environment); ``UsageError``
    (exit 2) when it is Dask and the extra is not installed, or an unknown name."""
    if choice.name == LOCAL:
        return LocalExecutor
    if choice.name != DASK:
        raise _unknown(choice.name)
    try:
        importlib.import_module("distributed")
    except ImportError:
        raise UsageError(DASK_EXTRA_MISSING) from None
    from wf_engine.runtime.daskexec import DaskExecutor

    return functools.partial(DaskExecutor, scheduler=choice.scheduler)


def executor_factory(name: str | None = None, scheduler: str | None = None) -> ExecutorFactory:
    """``factory_for(resolve(name, scheduler))``: see the module docstring."""
    return factory_for(resolve(name, scheduler))


def _unknown(name: str, source: str = "") -> UsageError:
    return UsageError(
        f"unknown executor {name!r}{source}: choose one of {', '.join(EXECUTOR_NAMES)}"
    )
