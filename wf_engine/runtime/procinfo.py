"""Process identity: telling an attempt's processes apart from every other process.

Two questions, each with a ``/proc`` answer on Linux and a ``ps`` answer elsewhere (macOS, or
``WF_PORTABLE=1``; see ``wf_engine.runtime.oscaps``):

* **Is pid P still the process we recorded?** ``start_id`` is a token fixed for a process's life
  (its start time), so a reused pid is told apart; ``None`` means gone (a zombie counts as gone).
* **Which live processes belong to an attempt?** Every attempt's processes carry its mark in
  their environment, ``WF_ATTEMPT_KEY=<run mark>/<step>/<attempt>``, inherited by children and
  grandchildren whatever they do with file descriptors or process groups. ``find_marked`` finds
  them without any file the engine wrote, so a lost lock file or ``steps/`` folder hides nothing.
  What still escapes: a process that replaces its whole environment (``env -i``) *and* closes the
  attempt's descriptors (docs/design.md, "What can escape").
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from wf_engine.runtime import oscaps

ATTEMPT_KEY_VAR = "WF_ATTEMPT_KEY"


@dataclass(frozen=True, slots=True)
class MarkedProcess:
    """A live process carrying an attempt's mark."""

    pid: int
    pgid: int
    key: str
    start_id: str | None


def run_mark(run_root: str) -> str:
    """A short token for one run folder: the first part of every attempt key of that run.

    Derived from the folder's absolute path, so a resuming runner computes it from nothing but
    where the run lives; distinct run stores on one machine never share it.
    """
    return hashlib.sha1(os.path.abspath(run_root).encode()).hexdigest()[:16]


def attempt_key(run_root: str, step_id: str, attempt: int) -> str:
    """``<run mark>/<step>/<attempt>``: ids hold no ``/`` or space, so keys never run together."""
    return f"{run_mark(run_root)}/{step_id}/{attempt}"


def start_id(pid: int) -> str | None:
    """An opaque token fixed for the life of process ``pid``; ``None`` if gone or a zombie."""
    if oscaps.HAS_PROCFS:
        stat = _linux_stat(pid)
        return None if stat is None or stat[0] == "Z" else f"linux:{stat[2]}"
    return _ps_start_id(pid)


def same_process(pid: int, recorded: str | None) -> bool:
    """True if ``pid`` is alive and is the very process whose start id was recorded."""
    return recorded is not None and start_id(pid) == recorded


def find_marked(prefix: str) -> list[MarkedProcess]:
    """Live processes (zombies excluded) whose attempt key starts with ``prefix``.

    ``prefix`` is a run mark followed by ``/`` (every attempt of a run) or a whole key followed
    by nothing; callers wanting one attempt compare ``key`` for equality. This process itself is
    never listed.
    """
    found = _linux_marked(prefix) if oscaps.HAS_PROCFS else _ps_marked(prefix)
    me = os.getpid()
    return [process for process in found if process.pid != me]


def lock_holders(path: str) -> list[int] | None:
    """Pids of processes with ``path`` open, or ``None`` when this system cannot tell."""
    try:
        target = os.stat(path)
    except OSError:
        return []
    if oscaps.HAS_PROCFS:
        return list(_linux_holders(target.st_dev, target.st_ino))
    lsof = shutil.which("lsof")
    if lsof is None:
        return None
    done = subprocess.run(
        [lsof, "-t", "--", path], capture_output=True, text=True, check=False
    )  # exit 1 with no output means "nobody"
    return [int(word) for word in done.stdout.split() if word.isdigit()]


# -- Linux: /proc ------------------------------------------------------------------------------


def _linux_stat(pid: int) -> tuple[str, int, str] | None:
    """(state, pgid, start time in clock ticks) from ``/proc/<pid>/stat``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return None
    # Field 2 (comm) may contain spaces and parentheses: split after its closing parenthesis.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[2]), fields[19].decode()


def _linux_marked(prefix: str) -> Iterator[MarkedProcess]:
    needle = f"{ATTEMPT_KEY_VAR}={prefix}".encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as file:
                environ = file.read()
        except OSError:
            continue
        if needle not in environ:
            continue
        key = _key_in(environ.split(b"\0"), needle)
        stat = _linux_stat(int(name))
        if key is not None and stat is not None and stat[0] != "Z":
            yield MarkedProcess(int(name), stat[1], key, f"linux:{stat[2]}")


def _key_in(entries: list[bytes], needle: bytes) -> str | None:
    for entry in entries:
        if entry.startswith(needle):
            return entry.partition(b"=")[2].decode(errors="replace")
    return None


def _linux_holders(device: int, inode: int) -> Iterator[int]:
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        folder = f"/proc/{name}/fd"
        try:
            descriptors = os.listdir(folder)
        except OSError:
            continue
        for fd in descriptors:
            try:
                info = os.stat(os.path.join(folder, fd))
            except OSError:
                continue
            if info.st_ino == inode and info.st_dev == device:
                yield int(name)
                break


# -- elsewhere: ps -----------------------------------------------------------------------------

#: ``lstart`` prints five words (``Mon Nov 30 02:32:44 2026``).
_LSTART_WORDS = 5


def _ps(*args: str) -> str:
    try:
        done = subprocess.run(["ps", *args], capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return done.stdout


def _ps_start_id(pid: int) -> str | None:
    words = _ps("-o", "stat=,lstart=", "-p", str(pid)).split()
    if len(words) != 1 + _LSTART_WORDS or words[0].startswith("Z"):
        return None
    return "ps:" + " ".join(words[1:])


def _ps_marked(prefix: str) -> Iterator[MarkedProcess]:
    """``ps e`` appends each process's environment to its command line."""
    needle = f" {ATTEMPT_KEY_VAR}={prefix}"
    for line in _ps("axeww", "-o", "pid=,pgid=,stat=,lstart=,command=").splitlines():
        at = line.find(needle)
        if at < 0:
            continue
        words = line.split(maxsplit=3 + _LSTART_WORDS)
        if len(words) < 3 + _LSTART_WORDS or words[2].startswith("Z"):
            continue
        key = line[at + len(needle) - len(prefix) :].split(" ", 1)[0]
        lstart = " ".join(words[3 : 3 + _LSTART_WORDS])
        yield MarkedProcess(int(words[0]), int(words[1]), key, f"ps:{lstart}")
