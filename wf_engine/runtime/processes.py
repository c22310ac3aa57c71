"""Small, careful operations on processes and attempt files, shared by the local executor,
take-over and cancel.

* **No signal to a stranger.** A process found by its mark is signalled only while it is still
  the process that was found (same start id); a group is signalled by the executor only while
  its leader is an unreaped zombie or alive, so its id cannot have been reused.
* **Attempt files are advisory and private.** They are created without following links, only as
  regular files (a FIFO planted in their place is refused, never opened for a blocking write),
  with the run store's modes (``durable.file_mode``).
"""

from __future__ import annotations

import os
import signal
import stat
import time

from wf_engine.errors import StoreError
from wf_engine.log import durable
from wf_engine.log.storefiles import open_regular_fd
from wf_engine.runtime import procinfo
from wf_engine.runtime.executor import AttemptStoreError

#: How long a SIGKILLed process may take to disappear before it counts as unkillable.
KILL_WAIT_SEC = 2.0


def killpg(pgid: int, signum: int) -> bool:
    """Signal a group; False when no such group exists any more (or it is not ours to signal)."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def terminate(targets: list[procinfo.MarkedProcess], grace_sec: float) -> list[int]:
    """SIGTERM each process, SIGKILL those alive after ``grace_sec``; returns pids still alive."""
    _signal_each(targets, signal.SIGTERM)
    alive = _wait_gone(targets, grace_sec)
    _signal_each(alive, signal.SIGKILL)
    return [p.pid for p in _wait_gone(alive, KILL_WAIT_SEC)]


def _signal_each(targets: list[procinfo.MarkedProcess], signum: int) -> None:
    for process in targets:
        if procinfo.same_process(process.pid, process.start_id):
            try:
                os.kill(process.pid, signum)
            except (ProcessLookupError, PermissionError):
                continue


def _wait_gone(
    targets: list[procinfo.MarkedProcess], timeout: float
) -> list[procinfo.MarkedProcess]:
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        alive = [p for p in targets if procinfo.same_process(p.pid, p.start_id)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def leak_note(pids: tuple[int, ...]) -> str:
    listed = ", ".join(str(pid) for pid in pids)
    return (
        f"wf: killed {len(pids)} process(es) that left the step's process group but still "
        f"carried its mark: {listed}\n"
    )


def make_step_dir(path: str) -> None:
    """``steps/<step>/``, private like the rest of the run store (see ``durable.dir_mode``)."""
    for folder in (os.path.dirname(path), path):
        try:
            os.mkdir(folder, durable.dir_mode())
        except FileExistsError:
            continue
        except OSError as exc:
            raise store_error(folder, "cannot create folder", exc) from exc


def create_file(path: str, flags: int) -> int:
    """Open an attempt file for writing (created if missing); a FIFO or link is refused."""
    try:
        fd = os.open(
            path,
            flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
            durable.file_mode(),
        )
    except OSError as exc:
        raise store_error(path, "cannot create", exc) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise AttemptStoreError(f"{path}: not a regular file; refusing to write an attempt to it")
    os.set_blocking(fd, True)
    return fd


def store_error(path: str, what: str, exc: OSError) -> AttemptStoreError:
    return AttemptStoreError(f"{path}: {what}: {exc.strerror or exc}")


def append_note(path: str, text: str) -> None:
    """Add the engine's own remark to an attempt's stderr file (advisory, like the file)."""
    try:
        make_step_dir(os.path.dirname(path))
        fd = create_file(path, os.O_WRONLY | os.O_APPEND)
    except StoreError:
        return
    try:
        os.write(fd, text.encode(errors="replace"))
    except OSError:
        pass
    finally:
        os.close(fd)


def read_tail(path: str, limit: int) -> str:
    """The last ``limit`` bytes of a file as text (for ``stderr_tail``); "" when there is none."""
    try:
        fd = open_regular_fd(path)
    except (OSError, StoreError):
        return ""
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, limit, max(0, size - limit)).decode(errors="replace")
    except OSError:
        return ""
    finally:
        os.close(fd)
