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

import functools
import hashlib
import math
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum, auto

from wf_engine.runtime import oscaps

ATTEMPT_KEY_VAR = "WF_ATTEMPT_KEY"


class _Unsure(Enum):
    """A live process whose environment cannot be judged yet (see ``_read_marked``)."""

    UNSURE = auto()


_UNSURE = _Unsure.UNSURE
#: How long ``find_marked`` reads an unsure process again before it counts as unmarked.
_UNSURE_WAIT_SEC = 0.05


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
    return _digest(os.path.abspath(run_root))


@functools.cache
def _digest(path: str) -> str:
    return hashlib.sha1(path.encode()).hexdigest()[:16]


def attempt_key(run_root: str, step_id: str, attempt: int) -> str:
    """``<run mark>/<step>/<attempt>``: ids hold no ``/`` or space, so keys never run together."""
    return f"{run_mark(run_root)}/{step_id}/{attempt}"


def start_id(pid: int, zombie_too: bool = False) -> str | None:
    """An opaque token fixed for the life of process ``pid``; ``None`` if gone or a zombie.

    ``zombie_too``: a zombie's token as well (for recording an exited process's identity).
    """
    if oscaps.HAS_PROCFS:
        stat = _linux_stat(pid)
        return None if stat is None or (stat[0] == "Z" and not zombie_too) else f"linux:{stat[2]}"
    return _ps_start_id(pid, zombie_too)


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


class MarkScanner:
    """``find_marked`` for a runner that asks after every attempt: reads only what is new.

    A full scan lists ``/proc`` and reads every process's environment (about 10 µs each).
    Between two scans, only processes created since need reading: a process that carried no
    mark when it was seen cannot gain one (an attempt's processes are created after the
    attempt, with the mark). The kernel's pid counter (``/proc/sys/kernel/ns_last_pid``) says
    which pids were allocated since the last scan, so the next scan reads those, and the
    processes that carried a mark (they may have exited), without listing ``/proc`` at all. A
    pid allocated since may name a thread (``/proc`` lists processes only): a marked one counts
    only if it leads its thread group. When the counter went backwards (it wrapped at
    ``pid_max``, 32768 by default on Linux), moved by more than ``MAX_NEW_PIDS``, cannot be
    read, or the last scan is over ``FULL_SCAN_AFTER_SEC`` old, the scan is a full one. A
    process whose environment read empty (being exec'd: see ``_read_marked``) is read again by
    the next scans, for up to ``UNSURE_FOR_SEC``. Linux only; elsewhere every scan is
    ``find_marked``'s.
    """

    FULL_SCAN_AFTER_SEC = 1.0
    #: More pids allocated than this since the last scan: listing ``/proc`` is cheaper.
    MAX_NEW_PIDS = 64
    #: How long a process whose environment reads empty is read again before it counts as
    #: unmarked (an exec takes microseconds to milliseconds).
    UNSURE_FOR_SEC = 1.0

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._needle = _needle(prefix)
        #: Pids of the processes the last scan found marked.
        self._marked: list[int] = []
        #: Pids of the processes whose environment read empty, with when it first did.
        self._unsure: dict[int, float] = {}
        #: The pid counter before the last scan looked (None: unknown).
        self._counter: int | None = None
        self._scanned_at = -math.inf
        #: ``ns_last_pid``, kept open: reading it is then one ``pread``, not an ``open``.
        self._counter_fd = -1

    def close(self) -> None:
        """Let go of the pid counter's descriptor (a later scan opens it again)."""
        if self._counter_fd >= 0:
            os.close(self._counter_fd)
            self._counter_fd = -1

    def scan(self, leaders: frozenset[int] = frozenset()) -> list[MarkedProcess]:
        """Marked processes, except ``leaders``: the caller's own attempt leaders, whose marks
        it knows (reading a process that is just starting or exiting can take a millisecond)."""
        if not oscaps.HAS_PROCFS:
            return [p for p in find_marked(self._prefix) if p.pid not in leaders]
        now = time.monotonic()
        # Read before looking: whatever is created from here on has a higher pid (until the
        # counter wraps), so the next scan's range covers it.
        counter, before = self._read_counter(), self._counter
        recent = now - self._scanned_at <= self.FULL_SCAN_AFTER_SEC
        fresh: range | None = None
        if recent and counter is not None and before is not None and before <= counter:
            fresh = range(before + 1, counter + 1)
            if len(fresh) > self.MAX_NEW_PIDS:
                fresh = None
        listed = fresh is None
        if fresh is None:
            candidates = [int(name) for name in os.listdir("/proc") if name.isdigit()]
        else:
            candidates = list(dict.fromkeys([*self._marked, *self._unsure, *fresh]))
        me = os.getpid()
        found: list[MarkedProcess] = []
        unsure: dict[int, float] = {}
        for pid in candidates:
            if pid in leaders or pid == me:
                continue
            process = _read_marked(pid, self._needle)
            if process is _UNSURE:
                since = self._unsure.get(pid, now)
                if now - since <= self.UNSURE_FOR_SEC:
                    unsure[pid] = since
            elif process is not None and (listed or _leads_thread_group(pid)):
                found.append(process)
        self._marked = [process.pid for process in found]
        self._unsure = unsure
        self._counter = counter
        self._scanned_at = now
        return found

    def _read_counter(self) -> int | None:
        """The last pid the kernel allocated in this pid namespace, or None where unreadable."""
        try:
            if self._counter_fd < 0:
                self._counter_fd = os.open(_PID_COUNTER, os.O_RDONLY | os.O_CLOEXEC)
            return int(os.pread(self._counter_fd, 32, 0))
        except (OSError, ValueError):
            return None


def _leads_thread_group(pid: int) -> bool:
    """Whether ``pid`` is a process rather than one of its other threads (Linux)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as file:
            for line in file:
                if line.startswith(b"Tgid:"):
                    return int(line.split()[1]) == pid
    except (OSError, ValueError, IndexError):
        pass
    return False


_PID_COUNTER = "/proc/sys/kernel/ns_last_pid"
#: The kernel-thread bit of ``/proc/<pid>/stat``'s flags (``PF_KTHREAD``).
_PF_KTHREAD = 0x00200000


def holder(pid: int, key: str) -> MarkedProcess | None:
    """Live process ``pid`` found by a descriptor it holds rather than by its mark (Linux)."""
    stat = _linux_stat(pid) if oscaps.HAS_PROCFS else None
    if stat is None or stat[0] == "Z":
        return None
    return MarkedProcess(pid, stat[1], key, f"linux:{stat[2]}")


def pipe_holders(inodes: set[int]) -> dict[int, list[int]] | None:
    """Pids of the processes holding each of the pipes ``inodes``; ``None`` where untellable.

    An attempt's stdout and stderr are pipes inherited by all its processes, so a holder is a
    process of that attempt, whatever it did to its environment or process group. Only
    ``/proc`` can tell (``lsof`` cannot look a pipe up by inode everywhere).
    """
    if not oscaps.HAS_PROCFS:
        return None
    wanted = {f"pipe:[{inode}]": inode for inode in inodes}
    holders: dict[int, list[int]] = {}
    if not wanted:
        return holders
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
                inode = wanted.get(os.readlink(f"{folder}/{fd}"))
            except OSError:
                continue
            if inode is not None and int(name) not in holders.setdefault(inode, []):
                holders[inode].append(int(name))
    return holders


# -- Linux: /proc ------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` from the third (state) on; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return None
    # Field 2 (comm) may contain spaces and parentheses: split after its closing parenthesis.
    return stat[stat.rfind(b")") + 2 :].split()


def _linux_stat(pid: int) -> tuple[str, int, str] | None:
    """(state, pgid, start time in clock ticks) from ``/proc/<pid>/stat``."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return fields[0].decode(), int(fields[2]), fields[19].decode()


def _linux_marked(prefix: str) -> list[MarkedProcess]:
    """Every marked process; one whose environment reads empty is read again for up to
    ``_UNSURE_WAIT_SEC`` (see ``_read_marked``), all of them in the same rounds."""
    needle = _needle(prefix)
    found: list[MarkedProcess] = []
    unsure: list[int] = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            process = _read_marked(int(name), needle)
            if process is _UNSURE:
                unsure.append(int(name))
            elif process is not None:
                found.append(process)
    deadline = time.monotonic() + _UNSURE_WAIT_SEC
    while unsure and time.monotonic() < deadline:
        time.sleep(0.001)
        still: list[int] = []
        for pid in unsure:
            process = _read_marked(pid, needle)
            if process is _UNSURE:
                still.append(pid)
            elif process is not None:
                found.append(process)
        unsure = still
    return found


def _needle(prefix: str) -> bytes:
    return f"{ATTEMPT_KEY_VAR}={prefix}".encode()


def _read_marked(pid: int, needle: bytes) -> MarkedProcess | _Unsure | None:
    """Process ``pid`` if it lives and carries a mark starting with ``needle``'s prefix;
    ``_UNSURE`` if it lives but its environment reads empty.

    A process being exec'd has no environment to read for a moment: its parent already knows
    the exec succeeded (``subprocess`` returns) while the kernel is still setting up the new
    one. Judged then, a marked process would pass for unmarked, and an incremental scan never
    reads it again. Kernel threads and zombies, whose environment is empty for good, are not
    unsure; a process started with no environment at all is, until the caller gives up on it.
    """
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            environ = file.read()
    except OSError:
        return None
    if not environ:
        return _UNSURE if _is_user_process(pid) else None
    if needle not in environ:
        return None
    key = _key_in(environ.split(b"\0"), needle)
    stat = _linux_stat(pid)
    if key is None or stat is None or stat[0] == "Z":
        return None
    return MarkedProcess(pid, stat[1], key, f"linux:{stat[2]}")


def _is_user_process(pid: int) -> bool:
    """Whether ``pid`` is a live process, neither a zombie nor a kernel thread."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != b"Z" and not int(fields[6]) & _PF_KTHREAD


def _key_in(entries: list[bytes], needle: bytes) -> str | None:
    for entry in entries:
        if entry.startswith(needle):
            return entry.partition(b"=")[2].decode(errors="replace")
    return None


# -- elsewhere: ps -----------------------------------------------------------------------------

#: ``lstart`` prints five words (``Mon Nov 30 02:32:44 2026``).
_LSTART_WORDS = 5


def ps(*args: str) -> str:
    """What ``ps ARGS`` prints, or "" when it cannot run (no ``ps`` on this system)."""
    try:
        done = subprocess.run(["ps", *args], capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return done.stdout


def _ps_start_id(pid: int, zombie_too: bool) -> str | None:
    words = ps("-o", "stat=,lstart=", "-p", str(pid)).split()
    if len(words) != 1 + _LSTART_WORDS or (words[0].startswith("Z") and not zombie_too):
        return None
    return "ps:" + " ".join(words[1:])


def _ps_marked(prefix: str) -> Iterator[MarkedProcess]:
    """``ps e`` appends each process's environment to its command line."""
    needle = f" {ATTEMPT_KEY_VAR}={prefix}"
    for line in ps("axeww", "-o", "pid=,pgid=,stat=,lstart=,command=").splitlines():
        at = line.find(needle)
        if at < 0:
            continue
        words = line.split(maxsplit=3 + _LSTART_WORDS)
        if len(words) < 3 + _LSTART_WORDS or words[2].startswith("Z"):
            continue
        key = line[at + len(needle) - len(prefix) :].split(" ", 1)[0]
        lstart = " ".join(words[3 : 3 + _LSTART_WORDS])
        yield MarkedProcess(int(words[0]), int(words[1]), key, f"ps:{lstart}")
