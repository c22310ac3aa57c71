"""``steps/.pids``: which process leads each attempt, written the instant it is started.

An attempt's ``spawned`` record waits a moment for company before it is committed (one fsync for
a short step's spawn and exit), so a runner killed in that moment leaves a RUNNING step with no
recorded process. This journal closes the gap: one line per attempt, appended right after the
spawn without an fsync. That is enough: it only has to outlive the runner, not the machine (a
power loss ends the attempt's processes too). Each line::

    <attempt key> <pid> <start id or -> <stdout pipe inode> <stderr pipe inode>

The pipe inodes find the attempt's processes by the descriptors they inherited
(``procinfo.pipe_holders``) even when they left the group and replaced their environment.
Advisory like the rest of ``steps/``: a lost or damaged journal hides nothing the mark finds.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from wf_engine.errors import StoreError
from wf_engine.log import durable
from wf_engine.log.storefiles import open_regular
from wf_engine.runtime.processes import create_file, make_step_dir, store_error
from wf_engine.runtime.store import RunPaths

#: Bytes of the journal read at take-over (a run's worth of lines, and then some).
_READ_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Leader:
    pid: int
    start_id: str | None
    pipes: tuple[int, ...]


def path_of(paths: RunPaths) -> str:
    return os.path.join(paths.root, "steps", ".pids")


class PidJournal:
    """The writer: opened at the first attempt, appended to after each spawn."""

    def __init__(self, paths: RunPaths) -> None:
        self.path = path_of(paths)
        self._fd = -1
        #: Appends come from every spawning thread; one line is one ``write`` (``O_APPEND``).
        self._guard = threading.Lock()

    def append(self, mark: str, leader: Leader) -> None:
        """Raises ``AttemptStoreError`` naming the journal when it cannot be written."""
        pipes = " ".join(str(inode) for inode in leader.pipes)
        line = f"{mark} {leader.pid} {leader.start_id or '-'} {pipes}\n"
        with self._guard:
            if self._fd < 0:
                make_step_dir(os.path.dirname(self.path))
                self._fd = create_file(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                durable.write_advisory(self._fd, line.encode())
            except OSError as exc:
                raise store_error(self.path, "cannot write", exc) from exc

    def close(self) -> None:
        with self._guard:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def read(paths: RunPaths) -> dict[str, Leader]:
    """Attempt key -> its leader, from whatever of the journal is readable (damage is skipped)."""
    try:
        with open_regular(path_of(paths)) as file:
            text = file.read(_READ_LIMIT).decode(errors="replace")
    except (OSError, StoreError):
        return {}
    leaders: dict[str, Leader] = {}
    for line in text.splitlines():
        words = line.split(" ")
        if len(words) < 3:
            continue
        try:
            pid = int(words[1])
            pipes = tuple(int(word) for word in words[3:5])
        except ValueError:
            continue
        leaders[words[0]] = Leader(pid, None if words[2] == "-" else words[2], pipes)
    return leaders
