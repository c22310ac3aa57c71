"""Crash at event N: a wf plugin that SIGKILLs the engine at the Nth appended record.

Activated by environment variables, so it works in an engine process started by any test::

    WF_PLUGINS=fault_injection.crash
    WF_FAULT_CRASH_AT=7                  # seq of the record
    WF_FAULT_CRASH_POINT=after_sync      # before_write | before_sync | after_sync | power_loss
    WF_FAULT_SYNC_JOURNAL=/tmp/x.jsonl   # power_loss only, optional: where fsyncs are journaled

``before_write``: the batch holding record N never reaches the file. ``before_sync``: it was
written but not fsynced (on a real power cut it may or may not survive; here it stays in the page
cache, so the crash leaves it complete — use ``fault_injection.logfaults`` to model the loss).
``after_sync``: the batch is durable and the engine dies before acting on it.
``power_loss``: the kill of ``before_sync``; the steps the engine started keep running. What a
power cut then loses is applied afterwards, by whoever waited for the engine's death
(``fault_injection.powerloss.drop_unsynced``; ``WfHarness.crash`` does it). With
``WF_FAULT_SYNC_JOURNAL`` set, the engine also journals every fsync it makes (the inode, its size,
and for a folder its entries), so the model keeps exactly what the engine made durable.

``crash_env(seq, point)`` builds the environment. It uses only the hooks any plugin gets, plus
the ``wf_engine.log.durable.sync`` seam for the journal.
"""

from __future__ import annotations

import json
import os
import signal
import stat
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


def crash_env(seq: int, point: str = "after_sync", journal: str | None = None) -> dict[str, str]:
    """Environment that makes a ``wf`` process kill itself at record ``seq``.

    ``journal`` (``power_loss`` only) names the file the engine's fsyncs are journaled to.
    """
    if point not in POINTS:
        raise ValueError(f"crash point must be one of {', '.join(POINTS)}, not {point!r}")
    env = {"WF_PLUGINS": __name__, ENV_AT: str(seq), ENV_POINT: point}
    if journal is not None:
        if point != "power_loss":
            raise ValueError("a sync journal only goes with the power_loss crash point")
        env[ENV_JOURNAL] = journal
    return env


def _target(points: tuple[str, ...]) -> int | None:
    if os.environ.get(ENV_POINT, "after_sync") not in points:
        return None
    value = os.environ.get(ENV_AT, "")
    return int(value) if value.isdigit() else None


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _crash_if_in(events: list[dict[str, Any]], points: tuple[str, ...]) -> None:
    target = _target(points)
    if target is not None and any(event["seq"] == target for event in events):
        _die()


@hookimpl
def wf_log_before_write(events: list[dict[str, Any]]) -> None:
    _crash_if_in(events, ("before_write",))


@hookimpl
def wf_log_before_sync(events: list[dict[str, Any]]) -> None:
    _crash_if_in(events, _BEFORE_SYNC)


@hookimpl
def wf_event_appended(event: dict[str, Any]) -> None:
    if event["seq"] == _target(("after_sync",)):
        _die()


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
