"""The few system calls durability rests on, in one place.

Everything that must survive a power cut goes through ``write_all`` and ``sync``. Keeping them
here (and calling them through the module) gives fault injection one seam to make a write or an
fsync fail, exactly where a real disk would.
"""

from __future__ import annotations

import os
import sys

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
            os.mkdir(folder)
        except FileExistsError:
            continue
        sync_dir(os.path.dirname(folder))
