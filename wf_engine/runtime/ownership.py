"""One owner per run: an exclusive ``flock`` on ``runner.lock`` held for the runner's lifetime.

The OS drops the lock when the owner dies, however it dies, so a stale lock never needs clearing.
The descriptor is close-on-exec and never passed to steps, so a step's leftover process cannot
keep a dead runner's run locked.
"""

from __future__ import annotations

import fcntl
import os
import stat

from wf_engine.errors import RunBusy, StoreError
from wf_engine.log import durable
from wf_engine.log.storefiles import kind_of, not_regular, open_regular, open_regular_fd


class RunLock:
    """The held ownership of one run; release with ``close``."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def acquire(cls, path: str, run_id: str) -> RunLock:
        """Take ownership now, or raise ``RunBusy`` naming the live owner."""
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        fd = os.open(path, flags, durable.file_mode())
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise not_regular(path, kind_of(mode))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunBusy(run_id, owner_pid(path)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def lock_held(path: str) -> bool:
    """True while some process holds an ``flock`` on the regular file at ``path``.

    The probe: a shared, non-blocking lock on a fresh descriptor, dropped at once by closing it.
    A missing file holds no lock (False); any other failure to open it (``StoreError`` for a
    link or a non-regular file, ``OSError``) propagates, for the caller to judge. Used for the
    run lock (``is_owned``) and for attempt locks (``processes.attempt_alive``).
    """
    try:
        fd = open_regular_fd(path)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def is_owned(path: str) -> bool:
    """True while a live process holds the run's lock (``runner.lock`` at ``path``)."""
    return lock_held(path)


def owner_pid(path: str) -> int | None:
    """The pid the owner wrote into its lock file (advisory: for messages and signals)."""
    try:
        with open_regular(path) as file:
            return int(file.read(64).strip() or 0) or None
    except (OSError, ValueError, StoreError):
        return None
