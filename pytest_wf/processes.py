"""Processes as a test sees them: alive or not, a step's process group, and what a test left.

Everything here reads the system, never the engine's internals: ``/proc`` on Linux, ``ps``
elsewhere (macOS), so a test can ask the same questions on every platform the engine runs on.

* :func:`process_alive` and :func:`group_gone` answer "did it really stop?" (a zombie is dead:
  it has exited and only waits for its parent to collect its status).
* :class:`StepProcess` is a step's attempt as its ``spawned`` record gives it (``pid``,
  ``pgid``), with those two questions as methods.
* Every process the harness starts carries a tag in its environment (``PYTEST_WF_TAG``), and
  the engine hands its environment on to every step, so :func:`tagged_processes` finds all of
  them -- engines, steps, their children and grandchildren -- and :func:`kill_tagged` ends
  them: that is how fixture teardown leaves nothing behind, whether the test passed, failed,
  timed out or was interrupted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from wf_engine.runtime import procinfo

__all__ = [
    "TAG_VAR",
    "StepProcess",
    "TaggedProcess",
    "group_gone",
    "kill_tagged",
    "process_alive",
    "tagged_processes",
]

#: The environment variable every process started by a ``WfHarness`` carries.
TAG_VAR = "PYTEST_WF_TAG"
_LINUX = sys.platform.startswith("linux")


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
    state = _state(pid)
    return state is None or not state.startswith("Z")


def _state(pid: int) -> str | None:
    """The process's state letter(s) (``Z`` for a zombie); None if it cannot be told."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        if _LINUX:
            return "Z"  # gone between kill(0) and here: as dead as a zombie
    except (OSError, IndexError):
        return None
    state = procinfo.ps("-o", "stat=", "-p", str(pid)).strip()
    return state or "Z"


def group_gone(pgid: int) -> bool:
    """True once no live (non-zombie) process is left in process group ``pgid``.

    ``killpg(pgid, 0)`` is not enough: a group whose members are all zombies still answers it.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return not any(True for _ in _group_members(pgid))


def _group_members(pgid: int) -> Iterator[int]:
    """Live members of a process group."""
    if _LINUX:
        for pid in _linux_pids():
            stat = _linux_stat(pid)
            if stat is not None and stat[1] == pgid and stat[0] != "Z":
                yield pid
        return
    for line in procinfo.ps("-A", "-o", "pid=,pgid=,stat=").splitlines():
        words = line.split()
        if len(words) == 3 and int(words[1]) == pgid and not words[2].startswith("Z"):
            yield int(words[0])


@dataclass(frozen=True)
class StepProcess:
    """One attempt's main process, from its ``spawned`` record: the attempt runs in its own
    session, so ``pgid`` names the group of everything it started (unless they left it)."""

    step: str
    attempt: int
    pid: int
    pgid: int

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> StepProcess:
        return cls(str(record["step"]), int(record["attempt"]), record["pid"], record["pgid"])

    def alive(self) -> bool:
        """The attempt's main process still runs (not a zombie)."""
        return process_alive(self.pid)

    def group_gone(self) -> bool:
        """Nothing is left alive in the attempt's process group."""
        return group_gone(self.pgid)


# --------------------------------------------------------------------------- tagged processes


@dataclass(frozen=True)
class TaggedProcess:
    pid: int
    pgid: int
    tag: str


def tagged_processes(prefix: str) -> list[TaggedProcess]:
    """Live processes whose ``PYTEST_WF_TAG`` starts with ``prefix`` (never this process)."""
    me = os.getpid()
    found = _linux_tagged(prefix) if _LINUX else _ps_tagged(prefix)
    return [process for process in found if process.pid != me]


def kill_tagged(prefix: str, timeout: float = 10.0) -> list[TaggedProcess]:
    """SIGKILL every process tagged ``prefix...`` and, for a group leader, its whole group.

    A step runs in its own session, so killing the group of a tagged leader also ends what the
    step started and that dropped its environment. Repeats until nothing tagged is left (a
    process may fork while it is being killed) or ``timeout`` runs out. Returns what it killed.
    """
    killed: list[TaggedProcess] = []
    own_group = os.getpgrp()
    deadline = time.monotonic() + timeout
    while True:
        found = tagged_processes(prefix)
        if not found:
            return killed
        for process in found:
            if process.pgid == process.pid and process.pgid != own_group:
                with contextlib.suppress(OSError):
                    os.killpg(process.pgid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGKILL)
        killed.extend(found)
        if time.monotonic() > deadline:
            return killed
        time.sleep(0.01)


def _linux_pids() -> Iterator[int]:
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if name.isdigit():
            yield int(name)


def _linux_stat(pid: int) -> tuple[str, int] | None:
    """(state, pgid) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[2])


def _linux_tagged(prefix: str) -> Iterator[TaggedProcess]:
    needle = f"{TAG_VAR}={prefix}".encode()
    for pid in _linux_pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as file:
                environ = file.read()
        except OSError:
            continue
        if needle not in environ:
            continue
        stat = _linux_stat(pid)
        if stat is None or stat[0] == "Z":
            continue
        for entry in environ.split(b"\0"):
            if entry.startswith(needle):
                tag = entry.split(b"=", 1)[1].decode(errors="replace")
                yield TaggedProcess(pid, stat[1], tag)
                break


def _ps_tagged(prefix: str) -> Iterator[TaggedProcess]:
    """``ps e`` appends each process's environment to its command line."""
    needle = f" {TAG_VAR}={prefix}"
    for line in procinfo.ps("axeww", "-o", "pid=,pgid=,stat=,command=").splitlines():
        at = line.find(needle)
        words = line.split(maxsplit=3)
        if at < 0 or len(words) < 3 or words[2].startswith("Z"):
            continue
        tag = line[at + len(f" {TAG_VAR}=") :].split(" ", 1)[0]
        yield TaggedProcess(int(words[0]), int(words[1]), tag)
