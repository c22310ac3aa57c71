"""Crash at event N: a wf plugin that SIGKILLs the engine at the Nth appended record.

Activated by environment variables, so it works in an engine process started by any test::

    WF_PLUGINS=fault_injection.crash
    WF_FAULT_CRASH_AT=7                  # seq of the record
    WF_FAULT_CRASH_POINT=after_sync      # before_write | before_sync | after_sync | power_loss
    WF_FAULT_SYNC_JOURNAL=/tmp/x.jsonl   # power_loss only, optional: where fsyncs are journaled
    WF_FAULT_CRASH_REPORT=/tmp/c.json    # optional: what the engine was doing when it died

``before_write``: the batch holding record N never reaches the file. ``before_sync``: it was
written but not fsynced (on a real power cut it may or may not survive; here it stays in the page
cache, so the crash leaves it complete — use ``fault_injection.logfaults`` to model the loss).
``after_sync``: the batch is durable and the engine dies before acting on it.
``power_loss``: the kill of ``before_sync``; the steps the engine started keep running. What a
power cut then loses is applied afterwards, by whoever waited for the engine's death
(``fault_injection.powerloss.drop_unsynced``; ``WfHarness.crash`` does it). With
``WF_FAULT_SYNC_JOURNAL`` set, the engine also journals every fsync it makes (the inode, its size,
and for a folder its entries), so the model keeps exactly what the engine made durable.

With ``WF_FAULT_CRASH_REPORT`` set, the plugin writes, right before the kill, one JSON object
naming the point, the target ``seq`` and the records of the commit batch it dies in (for
``before_write`` the only trace of that batch, which never reaches the log):
:func:`read_crash_report` reads it back as a :class:`CrashReport`.

``crash_env(seq, point)`` builds the environment. It uses only the hooks any plugin gets, plus
the ``wf_engine.log.durable.sync`` seam for the journal.
"""

from __future__ import annotations

import json
import os
import signal
import stat
from dataclasses import dataclass
from typing import Any

from wf_engine import hookimpl
from wf_engine.log import durable

#: Every crash point; ``pytest_wf``'s ``--wf-crash-points`` and strategies use this tuple.
POINTS = ("before_write", "before_sync", "after_sync", "power_loss")
#: Points whose kill happens after the batch's write and before its fsync.
_BEFORE_SYNC = ("before_sync", "power_loss")
ENV_AT = "WF_FAULT_CRASH_AT"
ENV_POINT = "WF_FAULT_CRASH_POINT"
ENV_JOURNAL = "WF_FAULT_SYNC_JOURNAL"
ENV_REPORT = "WF_FAULT_CRASH_REPORT"
#: Fields of a record a crash report keeps (no workflow, no times).
_REPORTED = ("seq", "batch", "batch_size", "type", "step", "from", "to", "attempt", "reason")


def crash_env(
    seq: int,
    point: str = "after_sync",
    journal: str | os.PathLike[str] | None = None,
    report: str | os.PathLike[str] | None = None,
) -> dict[str, str]:
    """Environment that makes a ``wf`` process kill itself at record ``seq``.

    ``journal`` (``power_loss`` only) names the file the engine's fsyncs are journaled to;
    ``report``, the file that says what the engine was doing when it died.
    """
    if point not in POINTS:
        raise ValueError(f"crash point must be one of {', '.join(POINTS)}, not {point!r}")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise ValueError(f"the crash seq must be an integer >= 1, not {seq!r}")
    env = {"WF_PLUGINS": __name__, ENV_AT: str(seq), ENV_POINT: point}
    if journal is not None:
        if point != "power_loss":
            raise ValueError("a sync journal only goes with the power_loss crash point")
        env[ENV_JOURNAL] = os.fspath(journal)
    if report is not None:
        env[ENV_REPORT] = os.fspath(report)
    return env


@dataclass(frozen=True)
class CrashReport:
    """Where the engine died: the point, the target record and its commit batch's records."""

    point: str
    seq: int
    #: The batch's records as the plugin saw them (``seq``, ``type``, ``step``, ``from``,
    #: ``to``, ``attempt``, ``reason`` as they apply); for ``after_sync`` only record ``seq``.
    records: tuple[dict[str, Any], ...]
    #: First and last ``seq`` of the batch the engine died in.
    batch: tuple[int, int]

    @property
    def record(self) -> dict[str, Any] | None:
        """The target record itself."""
        return next((r for r in self.records if r.get("seq") == self.seq), None)


def read_crash_report(path: str | os.PathLike[str]) -> CrashReport | None:
    """The report ``WF_FAULT_CRASH_REPORT`` made, None if the engine never reached the point."""
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError):
        return None
    first, last = data["batch"]
    return CrashReport(data["point"], data["seq"], tuple(data["records"]), (first, last))


def _target(points: tuple[str, ...]) -> int | None:
    if os.environ.get(ENV_POINT, "after_sync") not in points:
        return None
    value = os.environ.get(ENV_AT, "")
    return int(value) if value.isdigit() else None


def _die(target: int, events: list[dict[str, Any]]) -> None:
    path = os.environ.get(ENV_REPORT)
    if path:
        first = events[0]
        batch = [first.get("batch", first["seq"])]
        batch.append(batch[0] + first.get("batch_size", len(events)) - 1)
        report = {
            "point": os.environ.get(ENV_POINT, "after_sync"),
            "seq": target,
            "batch": batch,
            "records": [{k: e[k] for k in _REPORTED if k in e} for e in events],
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps(report).encode())
        finally:
            os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def _crash_if_in(events: list[dict[str, Any]], points: tuple[str, ...]) -> None:
    target = _target(points)
    if target is not None and any(event["seq"] == target for event in events):
        _die(target, events)


@hookimpl
def wf_log_before_write(events: list[dict[str, Any]]) -> None:
    _crash_if_in(events, ("before_write",))


@hookimpl
def wf_log_before_sync(events: list[dict[str, Any]]) -> None:
    _crash_if_in(events, _BEFORE_SYNC)


@hookimpl
def wf_event_appended(event: dict[str, Any]) -> None:
    target = _target(("after_sync",))
    if target is not None and event["seq"] == target:
        _die(target, [event])


# --------------------------------------------------------------------------- sync journal


def journal_entry(fd: int) -> dict[str, Any]:
    """What an fsync of ``fd`` made durable: a file's size, or a folder's entries (name: inode)."""
    info = os.fstat(fd)
    entry: dict[str, Any] = {"dev": info.st_dev, "ino": info.st_ino}
    if stat.S_ISDIR(info.st_mode):
        entry["entries"] = _inodes(fd)
    else:
        entry["size"] = info.st_size
    return entry


def _inodes(dir_fd: int) -> dict[str, int]:
    """The folder's entries and their inodes; a name removed meanwhile is left out."""
    inodes: dict[str, int] = {}
    for name in os.listdir(dir_fd):
        try:
            inodes[name] = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_ino
        except FileNotFoundError:
            continue
    return inodes


def _install_journal(path: str) -> None:
    """Wrap the engine's one fsync seam so each successful fsync appends a journal line."""
    real_sync = durable.sync

    def journaled_sync(fd: int) -> None:
        real_sync(fd)
        line = json.dumps(journal_entry(fd), separators=(",", ":")) + "\n"
        out = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(out, line.encode())
        finally:
            os.close(out)

    durable.sync = journaled_sync


if os.environ.get(ENV_POINT) == "power_loss" and os.environ.get(ENV_JOURNAL):
    _install_journal(os.environ[ENV_JOURNAL])
