"""Reruns in the store: preparing one from its origin, and finding the reruns of a run.

The plan itself is pure (``wf_engine.core.rerun``); what needs the disk is here: the origin's
log, folded as ``wf status`` folds it, and the changed workflow file when one is given. Creating
the rerun is ``create_run`` with the plan in its request (``RunRequest.rerun``), so a rerun
starts, runs, crashes and resumes as any run does.

The link from a rerun to its origin is in the rerun's ``run_created``; the other way round
(``wf status``/``wf list``: "rerun as") is found by reading the first line of each log.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from wf_engine.core.fold import RunState
from wf_engine.core.model import Workflow
from wf_engine.core.rerun import RerunPlan, RerunRefused, plan_rerun
from wf_engine.errors import WfError
from wf_engine.log.storefiles import open_regular
from wf_engine.runtime.runview import read_run
from wf_engine.runtime.store import RunStore
from wf_engine.runtime.workflow_file import load_workflow


@dataclass(frozen=True, slots=True)
class RerunSource:
    """What a rerun starts from: its origin's final state and the definition to run."""

    origin: RunState
    workflow: Workflow
    #: The folder steps run in by default: the workflow file's, else the origin's.
    base_dir: str

    def plan(self, from_steps: Sequence[str] = (), only_steps: Sequence[str] = ()) -> RerunPlan:
        return plan_rerun(self.origin, self.workflow, self.base_dir, from_steps, only_steps)


def prepare_rerun(
    store: RunStore, origin_run_id: str, workflow_file: str | None = None
) -> RerunSource:
    """Read and check the origin, and load ``workflow_file`` (else reuse the origin's
    definition); ``RerunRefused`` (exit 2) when the origin has not finished."""
    view = read_run(store.existing(origin_run_id))
    origin = view.state
    if origin.finished is None:
        if view.runner_alive:
            raise RerunRefused(
                f"run {origin_run_id} is still RUNNING (its runner is alive): only a finished "
                f"run can be rerun; wait for it, or stop it with: wf cancel {origin_run_id}"
            )
        raise RerunRefused(
            f"run {origin_run_id} did not finish (its runner died): continue it with: "
            f"wf resume {origin_run_id}"
        )
    if workflow_file is None:
        workflow, base_dir = origin.workflow, origin.options.base_dir
    else:
        workflow = load_workflow(workflow_file)
        base_dir = os.path.dirname(os.path.abspath(workflow_file))
    return RerunSource(origin, workflow, base_dir)


def reruns_by_origin(store: RunStore) -> dict[str, list[str]]:
    """Origin run id -> the runs of the store that rerun it, oldest folder first.

    Only each log's first line is read (``run_created``, where the origin is named); a run whose
    first line cannot be read names no origin here: ``wf status`` of it says why.
    """
    found: dict[str, list[str]] = {}
    for run_id in store.run_ids():
        try:
            with open_regular(store.paths(run_id).events) as log:
                named = _ORIGIN.search(log.readline())
        except (OSError, WfError):
            continue
        if named is not None:
            found.setdefault(named.group(1).decode("ascii"), []).append(run_id)
    return found


#: ``run_created``'s last members: ``origin_run_id`` (a run id: no character JSON escapes),
#: then the checksum. Found at the end of the line, the definition before it is not parsed:
#: ``wf status`` looks at every run's first line, which holds a whole workflow.
_ORIGIN = re.compile(rb',"origin_run_id":"([A-Za-z0-9_.-]+)","crc":"[0-9a-f]{8}"\}\n?\Z')
