"""The few system calls durability rests on, in one place.

Everything that must survive a power cut goes through ``write_all`` and ``sync``. Keeping them
here (and calling them through the module) gives fault injection one seam to make a write or an
fsync fail, exactly where a real disk would.
"""

from __future__ import annotations

import os
import sys

from wf_engine.errors import UsageError

if sys.platform == "darwin":  # pragma: no cover - exercised on macOS only
    import fcntl

    def sync(fd: int) -> None:
        """Flush to stable storage; plain fsync on macOS stops at the drive's cache."""
        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)

else:

    def sync(fd: int) -> None:
        """Flush the file's data and metadata to stable storage."""
        os.fsync(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte; a short write is continued, an error propagates untouched."""
    _write_fully(fd, data)


def write_advisory(fd: int, data: bytes) -> None:
    """Write an advisory file (an attempt's lock owner): never fsynced, a seam of its own.

    Not durable, so not ``write_all``; still a call through this module, so fault injection can
    make it fail the way a full disk would (``WF_FAULT_DISK=advisory:ENOSPC:1``).
    """
    _write_fully(fd, data)


def _write_fully(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def sync_dir(path: str) -> None:
    """Make a new directory entry (file or folder created in ``path``) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        sync(fd)
    finally:
        os.close(fd)


def make_dirs(path: str) -> None:
    """``os.makedirs`` that also makes each folder it creates durable in its parent."""
    missing: list[str] = []
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        missing.append(current)
        current = os.path.dirname(current)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, dir_mode())
        except FileExistsError:
            continue
        sync_dir(os.path.dirname(folder))


#: Permissions of everything the run store creates: its owner only, unless ``WF_STORE_UMASK``
#: says otherwise. The log holds every step's ``env`` and the output files whatever steps print.
DEFAULT_STORE_UMASK = 0o077
STORE_UMASK_VAR = "WF_STORE_UMASK"


def store_umask() -> int:
    """The umask applied to run-store files and folders (``$WF_STORE_UMASK``, octal)."""
    text = os.environ.get(STORE_UMASK_VAR, "").strip()
    if not text:
        return DEFAULT_STORE_UMASK
    try:
        value = int(text, 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o777:
        raise UsageError(
            f"${STORE_UMASK_VAR} must be an octal umask such as 077 or 022, not {text!r}"
        )
    return value


def file_mode() -> int:
    return 0o666 & ~store_umask()


def dir_mode() -> int:
    return 0o777 & ~store_umask()
