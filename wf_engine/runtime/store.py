"""The run store on disk: where runs live and what each file in a run folder is for.

``<home>/runs/<run_id>/events.jsonl`` is the only source of truth. Everything else in the folder
(``steps/`` output, lock files, the cancel request) is advisory: deleting it never changes what
``status`` or ``replay`` report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone

from wf_engine.core.model import is_valid_id
from wf_engine.errors import RunNotFound, UsageError
from wf_engine.log import durable

DEFAULT_HOME = ".wf"
_RUN_ID_SUFFIX_LEN = len("-20260101T000000-abcdef")


def resolve_home(home: str | None) -> str:
    """``--home``, else ``$WF_HOME``, else ``./.wf`` — always as an absolute path."""
    return os.path.abspath(home or os.environ.get("WF_HOME") or DEFAULT_HOME)


def check_run_id(run_id: str) -> str:
    """Reject ids that could name anything outside the run store (``..``, ``a/b``, ``-x``)."""
    if not is_valid_id(run_id):
        raise UsageError(
            f"invalid run id {run_id!r}: use 1-128 characters of A-Z a-z 0-9 _ . - "
            "not starting with '.' or '-'"
        )
    return run_id


def new_run_id(workflow_id: str) -> str:
    """``<workflow_id>-<UTC yyyymmddThhmmss>-<6 hex>``, within the 128-character id limit."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    prefix = workflow_id[: 128 - _RUN_ID_SUFFIX_LEN]
    return f"{prefix}-{stamp}-{os.urandom(3).hex()}"


@dataclass(frozen=True, slots=True)
class RunPaths:
    """The files of one run folder."""

    root: str

    @property
    def events(self) -> str:
        return os.path.join(self.root, "events.jsonl")

    @property
    def runner_lock(self) -> str:
        return os.path.join(self.root, "runner.lock")

    @property
    def cancel_request(self) -> str:
        return os.path.join(self.root, "cancel.request")

    def step_dir(self, step_id: str) -> str:
        return os.path.join(self.root, "steps", step_id)

    def attempt_file(self, step_id: str, attempt: int, suffix: str) -> str:
        """``steps/<step>/<attempt>.<suffix>`` with suffix ``out``, ``err`` or ``lock``."""
        return os.path.join(self.root, "steps", step_id, f"{attempt}.{suffix}")


class RunStore:
    def __init__(self, home: str | None = None) -> None:
        self.home = resolve_home(home)
        self.runs_dir = os.path.join(self.home, "runs")

    def paths(self, run_id: str) -> RunPaths:
        return RunPaths(os.path.join(self.runs_dir, check_run_id(run_id)))

    def existing(self, run_id: str) -> RunPaths:
        """Paths of a run that must exist (its log at least)."""
        paths = self.paths(run_id)
        if not os.path.lexists(paths.events):
            raise RunNotFound(run_id, self.home)
        return paths

    def exists(self, run_id: str) -> bool:
        return os.path.lexists(self.paths(run_id).events)

    def create(self, run_id: str) -> RunPaths:
        """A new, durable run folder; refuses an id already taken."""
        paths = self.paths(run_id)
        durable.make_dirs(self.runs_dir)
        try:
            os.mkdir(paths.root, durable.dir_mode())
        except FileExistsError:
            raise UsageError(f"run {run_id!r} already exists in {self.home}") from None
        durable.sync_dir(self.runs_dir)
        return paths

    def run_ids(self) -> list[str]:
        """Ids of every run with a log, oldest folder first.

        The log only has to be there (``lexists``): whatever sits in its place, ``list`` shows
        the run, if only as unreadable. A run folder that cannot be stat'ed sorts last instead of
        failing the listing: one bad run must not hide the others.
        """
        try:
            entries = list(os.scandir(self.runs_dir))
        except FileNotFoundError:
            return []
        runs: list[tuple[int, str]] = []
        for entry in entries:
            try:
                log = os.path.join(entry.path, "events.jsonl")
                is_run = entry.is_dir() and os.path.lexists(log)
            except OSError:
                continue  # nothing says it is a run
            if is_run:
                try:
                    runs.append((entry.stat().st_mtime_ns, entry.name))
                except OSError:
                    runs.append((2**63, entry.name))
        runs.sort()
        return [name for _, name in runs]
